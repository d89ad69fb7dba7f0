package sfu

import (
	"sync/atomic"
	"testing"
	"time"
)

// With lanes, a stream's viewers are spread over them, each gets every
// packet of its layer in order, and jobs run on the viewer's lane.
func TestLanesDeliverToEveryViewerInOrder(t *testing.T) {
	cfg := testConfig()
	cfg.Workers = 3
	reg := NewRegistry(cfg)
	defer reg.Close()
	now := second
	s := newSimulcast(t, reg, now)
	const viewers = 12
	recs := make([]*recorder, viewers)
	subs := make([]*Subscriber, viewers)
	perLane := map[int]int{}
	for i := range viewers {
		subs[i], recs[i] = subscribe(t, s.stream, now)
		subs[i].SetPreferences(Preferences{RID: "h"}, now)
		perLane[subs[i].lane]++
	}
	if len(perLane) != 3 || perLane[0] != 4 || perLane[1] != 4 || perLane[2] != 4 {
		t.Fatalf("viewers per lane %v, want 4 on each of 3", perLane)
	}
	for i := range 30 {
		now += second / 30
		s.frameAll(t, i == 0, now)
	}
	want := 30 * 3 // frames × packets on the pinned top layer
	for i, r := range recs {
		deadline := time.Now().Add(2 * time.Second)
		for len(r.all()) < want && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		pkts := r.all()
		if len(pkts) != want {
			t.Fatalf("viewer %d got %d packets, want %d", i, len(pkts), want)
		}
		checkContinuous(t, pkts)
	}
	var ran atomic.Int32
	done := make(chan struct{})
	subs[5].Post(jobFunc(func() {
		ran.Add(1)
		close(done)
	}))
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("a posted job did not run")
	}
	if reg.LaneDrops() != 0 {
		t.Fatalf("%d packets dropped by lanes", reg.LaneDrops())
	}
}

type jobFunc func()

func (f jobFunc) RunJob() { f() }

// A lane that cannot keep up drops packets for its own viewers only; the
// ingest goroutine never waits.
func TestFullLaneDropsWithoutBlocking(t *testing.T) {
	cfg := testConfig()
	cfg.Workers = 1
	reg := NewRegistry(cfg)
	defer reg.Close()
	now := second
	s := newSimulcast(t, reg, now)
	sub, _ := subscribe(t, s.stream, now)
	block := make(chan struct{})
	sub.Post(jobFunc(func() { <-block })) // the lane is stuck
	time.Sleep(10 * time.Millisecond)
	start := time.Now()
	for i := range (laneSize + 100) / 9 {
		now += second / 30
		s.frameAll(t, i == 0, now)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("ingest took %v behind a stuck lane", d)
	}
	close(block)
	if reg.LaneDrops() == 0 {
		t.Fatal("a full lane dropped nothing")
	}
}
