package archtest

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/glintlive/glint"

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func packages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	var ps []pkg
	dec := json.NewDecoder(&out)
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if len(ps) < 6 {
		t.Fatalf("go list found only %d packages", len(ps))
	}
	return ps
}

// rule says what a folder's packages may not depend on, directly or not.
type rule struct {
	folder  string   // package path under the module, and everything below it
	except  []string // sub-packages the rule does not cover
	forbid  []string // import path prefixes
	because string
}

// allowed are packages a folder may use although a forbidden prefix covers
// them: the codec readers are a leaf every media package shares.
var allowed = map[string][]string{
	"internal/client": {module + "/internal/codec"},
}

var rules = []rule{
	{"sfu", []string{"sfu/peer"}, []string{"net/http", "os/exec", "github.com/pion/webrtc", "github.com/redis", "github.com/prometheus",
		module + "/signaling", module + "/relay", module + "/hlsbridge", module + "/transcode", module + "/chat", module + "/cmd"},
		"the media core does no I/O: WebRTC lives in sfu/peer, HTTP in signaling"},
	{"sfu/peer", nil, []string{"net/http", module + "/signaling", module + "/relay", module + "/hlsbridge", module + "/chat", module + "/cmd"},
		"sfu/peer is the pion glue; HTTP and services sit above it"},
	{"signaling", nil, []string{module + "/hlsbridge", module + "/transcode", module + "/cmd", module + "/examples"},
		"signaling turns requests into sfu calls"},
	{"chat", nil, []string{module + "/sfu", module + "/signaling", module + "/cmd", module + "/relay", module + "/hlsbridge", "github.com/pion/"},
		"chat reaches media only through an interface; transports plug in as chat.Transport"},
	{"internal/httpx", nil, []string{module + "/"}, "HTTP helpers depend on no other Glint package"},
	{"internal/testredis", nil, []string{module + "/"}, "a test helper depends on no other Glint package"},
	{"internal/testnet", nil, []string{module + "/"}, "a test helper depends on no other Glint package"},
	{"internal/sdpcheck", nil, []string{module + "/", "github.com/pion/"}, "the grammar check stands alone, so it cannot share a parser's mistakes"},
	{"transcode", nil, []string{module + "/"}, "transcode depends on no other Glint package"},
	{"relay", nil, []string{module + "/signaling", module + "/hlsbridge", module + "/chat", module + "/cmd"}, "relay plugs into sfu only"},
	{"hlsbridge", nil, []string{module + "/signaling", module + "/relay", module + "/chat", module + "/cmd"}, "the HLS bridge is a subscriber of sfu"},
	{"ingest", nil, []string{module + "/signaling", module + "/relay", module + "/hlsbridge", module + "/chat", module + "/cmd", "github.com/pion/webrtc"},
		"ingest makes publications of non-WebRTC sources: sfu and the transcoder, no HTTP services"},
	{"examples", nil, []string{module + "/"}, "examples stand alone"},
	{"internal/client", nil, []string{module + "/"}, "the client speaks only WHIP/WHEP, so it can measure any server"},
	{"internal/codec", nil, []string{module + "/"}, "the codec readers are a leaf every media package shares"},
	{"internal/load", nil, []string{module + "/sfu", module + "/signaling", module + "/cmd", module + "/relay", module + "/chat"},
		"the load tool measures servers from outside, through the client"},
}

func TestImportsPointOneWay(t *testing.T) {
	for _, p := range packages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		for _, r := range rules {
			if rel != r.folder && !strings.HasPrefix(rel, r.folder+"/") {
				continue
			}
			excepted := false
			for _, e := range r.except {
				excepted = excepted || rel == e || strings.HasPrefix(rel, e+"/")
			}
			if excepted {
				continue
			}
			for _, d := range p.Deps {
				if slices.Contains(allowed[r.folder], d) {
					continue
				}
				for _, f := range r.forbid {
					if d == f || strings.HasPrefix(d, f) && (strings.HasSuffix(f, "/") || strings.HasPrefix(d, f+"/")) {
						t.Errorf("%s depends on %s: %s", rel, d, r.because)
					}
				}
			}
		}
	}
}

func TestEveryPackageStatesItsJob(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}\t{{.Doc}}", module+"/...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, doc, _ := strings.Cut(line, "\t")
		if doc == "" {
			t.Errorf("%s has no package comment (doc.go)", path)
		}
	}
}
