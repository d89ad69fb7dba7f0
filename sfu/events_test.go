package sfu

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A stream's life reaches a watcher as events, in order: live, its layers,
// a dropped connection, the publisher's return, a takeover, the end.
func TestWatcherFollowsAStreamsLife(t *testing.T) {
	reg := NewRegistry(testConfig())
	w := reg.Watch()
	defer w.Close()
	st := reg.Stream("demo")
	changed := st.Changed()

	pub := st.StartPublication(HostID, &testSource{}, 1*second)
	select {
	case <-changed:
	default:
		t.Fatal("Changed was not closed when the stream went live")
	}
	if _, err := pub.AddLayer("", Codec{MimeType: "audio/opus", ClockRate: 48000}, ExtIDs{}, 1*second); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.AddLayer("h", Codec{MimeType: "video/VP8", ClockRate: 90000}, ExtIDs{}, 1*second); err != nil {
		t.Fatal(err)
	}
	pub.Lost(2 * second)
	back := st.StartPublication(HostID, &testSource{}, 3*second)
	st.StartPublication(HostID, &testSource{}, 4*second) // takeover
	back.End(5 * second)                                 // the taken-over one: no event
	reg.Stream("demo").parts[HostID].pub.End(6 * second)

	want := []struct {
		kind   EventKind
		at     int64
		layers int
	}{
		{EventLive, 1 * second, 0}, {EventLayers, 1 * second, 1}, {EventLayers, 1 * second, 2},
		{EventReconnecting, 2 * second, 0}, {EventPublication, 3 * second, 0}, {EventPublication, 4 * second, 0},
		{EventEnded, 6 * second, 0},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for i, wt := range want {
		ev, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if ev.Kind != wt.kind || ev.At != wt.at || ev.Stream != "demo" || ev.Participant != HostID || ev.Layers != wt.layers {
			t.Fatalf("event %d: %+v (%v), want %v at %d with %d layers", i, ev, ev.Kind, wt.kind, wt.at, wt.layers)
		}
	}
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if ev, err := w.Next(short); err == nil {
		t.Fatalf("an extra event: %+v", ev)
	}
	w.Close()
	if _, err := w.Next(context.Background()); !errors.Is(err, ErrWatcherClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
}

// A watcher that does not read never slows the core: it loses its oldest
// events, counted.
func TestSlowWatcherDropsOldest(t *testing.T) {
	reg := NewRegistry(testConfig())
	w := reg.Watch()
	defer w.Close()
	st := reg.Stream("demo")
	for i := range maxPending + 10 {
		st.StartPublication(HostID, &testSource{}, int64(i+1))
	}
	if w.Dropped() != 10 {
		t.Fatalf("dropped %d, want 10", w.Dropped())
	}
	ev, err := w.Next(context.Background())
	if err != nil || ev.At != 11 {
		t.Fatalf("first kept event %+v %v, want the 11th", ev, err)
	}
}
