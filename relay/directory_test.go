package relay

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/glintlive/glint/internal/testredis"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T) (*Directory, *redis.Client, *bytes.Buffer) {
	t.Helper()
	rs := testredis.Start(t)
	var logs bytes.Buffer
	d, err := Open(context.Background(), rs.URL(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	opt, _ := redis.ParseURL(rs.URL())
	raw := redis.NewClient(opt)
	t.Cleanup(func() { _ = raw.Close() })
	return d, raw, &logs
}

// Nodes announce themselves and their origins; records expire with their
// TTL; garbage in the directory is ignored with a log line.
func TestDirectory(t *testing.T) {
	d, raw, logs := open(t)
	d.ttl = time.Second
	ctx := context.Background()
	if err := d.Announce(ctx, Node{ID: "a", URL: "http://127.0.0.1:1", Capacity: 10, Viewers: 3, Origins: []string{"demo"}}); err != nil {
		t.Fatal(err)
	}
	if err := d.Announce(ctx, Node{ID: "b", URL: "https://b.example:8443"}); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"glint:mesh:node:junk":     "not json",
		"glint:mesh:node:evil":     `{"id":"evil","url":"javascript:alert(1)"}`,
		"glint:mesh:node:imposter": `{"id":"a","url":"http://10.0.0.1"}`,
	} {
		raw.Set(ctx, k, v, time.Minute)
	}
	nodes, err := d.Nodes(ctx)
	if err != nil || len(nodes) != 2 || nodes[0].ID != "a" || nodes[1].ID != "b" || nodes[0].Viewers != 3 || !nodes[0].Room() {
		t.Fatalf("nodes %+v %v", nodes, err)
	}
	if n := strings.Count(logs.String(), "does not read"); n != 3 {
		t.Fatalf("%d log lines for 3 bad records:\n%s", n, logs)
	}
	if o, ok, err := d.Origin(ctx, "demo"); err != nil || !ok || o.ID != "a" {
		t.Fatalf("origin %+v %v %v", o, ok, err)
	}
	if _, ok, _ := d.Origin(ctx, "other"); ok {
		t.Fatal("an origin for a stream nobody publishes")
	}
	if origins, _ := d.Origins(ctx); len(origins) != 1 || origins["demo"] != "a" {
		t.Fatalf("origins %v", origins)
	}
	if !(Node{Capacity: 2, Viewers: 1}).Room() || (Node{Capacity: 2, Viewers: 2}).Room() {
		t.Fatal("room")
	}
	time.Sleep(1200 * time.Millisecond) // past the TTL without a heartbeat
	if nodes, _ := d.Nodes(ctx); len(nodes) != 0 {
		t.Fatalf("expired nodes listed: %+v", nodes)
	}
	if _, ok, _ := d.Origin(ctx, "demo"); ok {
		t.Fatal("an expired origin")
	}
	if err := d.Announce(ctx, Node{ID: "c", URL: "http://c", Origins: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	if err := d.Withdraw(ctx, "c", []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if nodes, _ := d.Nodes(ctx); len(nodes) != 0 {
		t.Fatalf("a withdrawn node listed: %+v", nodes)
	}
	// Two nodes with a publisher each: the first keeps the origin until it
	// lets go.
	_ = d.Announce(ctx, Node{ID: "p", URL: "http://p", Origins: []string{"race"}})
	_ = d.Announce(ctx, Node{ID: "q", URL: "http://q", Origins: []string{"race"}})
	if o, _ := d.Origins(ctx); o["race"] != "p" {
		t.Fatalf("the second claim took the origin: %v", o)
	}
	if err := d.Release(ctx, "q", "race"); err != nil {
		t.Fatal(err)
	}
	if o, _ := d.Origins(ctx); o["race"] != "p" {
		t.Fatalf("another node's release let go of the origin: %v", o)
	}
	_ = d.Release(ctx, "p", "race")
	_ = d.Announce(ctx, Node{ID: "q", URL: "http://q", Origins: []string{"race"}})
	if o, _ := d.Origins(ctx); o["race"] != "q" {
		t.Fatalf("after the release: %v", o)
	}
	s1, err1 := d.SharedSecret(ctx, "first")
	s2, err2 := d.SharedSecret(ctx, "second")
	if err1 != nil || err2 != nil || s1 != "first" || s2 != "first" {
		t.Fatalf("shared secret %q %q", s1, s2)
	}
}

// A member heartbeats its record, withdraws when stopped, and reports
// whether Redis answered.
func TestMember(t *testing.T) {
	d, _, _ := open(t)
	d.ttl = 600 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	m := &Member{Dir: d, Self: func() Node { return Node{ID: "m", URL: "http://m", Origins: []string{"s"}} }}
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	time.Sleep(1500 * time.Millisecond) // longer than the TTL: the heartbeat keeps it
	if nodes, _ := d.Nodes(context.Background()); len(nodes) != 1 || !m.Reachable() {
		t.Fatalf("nodes %+v reachable %v", nodes, m.Reachable())
	}
	cancel()
	<-done
	if nodes, _ := d.Nodes(context.Background()); len(nodes) != 0 {
		t.Fatalf("a stopped member is listed: %+v", nodes)
	}
	if o, _ := d.Origins(context.Background()); len(o) != 0 {
		t.Fatalf("a stopped member's origins: %v", o)
	}
}
