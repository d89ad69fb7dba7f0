package load

import (
	"math"
	"os"
	"testing"
)

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	for p, want := range map[float64]float64{50: 5, 90: 9, 99: 10, 100: 10, 1: 1} {
		if got := percentile(xs, p); got != want {
			t.Errorf("p%.0f = %v, want %v", p, got, want)
		}
	}
	if !math.IsNaN(percentile(nil, 50)) {
		t.Error("percentile of nothing should be NaN")
	}
}

func TestHistogramDelta(t *testing.T) {
	inf := math.Inf(1)
	before := histogram{0.001: 10, 0.002: 10, 0.004: 10, inf: 10}
	after := histogram{0.001: 60, 0.002: 158, 0.004: 209, inf: 210}
	q := between(before, after)
	if q.N != 200 || q.P50 != 2 || q.P99 != 4 || !math.IsInf(q.Max, 1) {
		t.Fatalf("%+v", q)
	}
}

func TestSplitAccessUnits(t *testing.T) {
	sc := []byte{0, 0, 0, 1}
	var b []byte
	for _, nal := range [][]byte{{0x09, 0xf0}, {0x67, 1, 2}, {0x68, 3}, {0x65, 4, 0, 0, 5}, {0x41, 6}, {0x41, 7, 0}} {
		b = append(append(b, sc...), nal...)
	}
	lc, err := splitAccessUnits(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(lc.aus) != 3 || !lc.keys[0] || lc.keys[1] || len(lc.aus[0]) != 3 || lc.aus[2][0][2] != 0 {
		t.Fatalf("access units %v keys %v", lc.aus, lc.keys)
	}
	c := &clip{layers: [3]*layerClip{2: lc}}
	c.Next(2, false) // the IDR
	if _, key := c.Next(2, true); !key {
		t.Fatal("a keyframe request did not jump to the IDR")
	}
	if _, err := splitAccessUnits(append(sc, 0x41, 1)); err == nil {
		t.Fatal("a clip that does not start with an IDR was accepted")
	}
}

func TestProcReadsThisProcess(t *testing.T) {
	cpu, err := procCPU(os.Getpid())
	if err != nil || cpu < 0 {
		t.Fatalf("cpu %v %v", cpu, err)
	}
	rss, err := procRSS(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Fatalf("rss %v %v", rss, err)
	}
}

func TestValidate(t *testing.T) {
	good := Config{WHIP: "http://x/whip/a", WHEP: "http://x/whep/a", Viewers: 1, Window: 1e9, Bitrate: 1e6, FPS: 30, Concurrency: 1, Media: "auto"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []func(*Config){
		func(c *Config) { c.WHEP = "" },
		func(c *Config) { c.Viewers = 0 },
		func(c *Config) { c.Window = 0 },
		func(c *Config) { c.FPS = 0 },
		func(c *Config) { c.Media = "tape" },
	} {
		c := good
		bad(&c)
		if c.Validate() == nil {
			t.Errorf("accepted %+v", c)
		}
	}
}
