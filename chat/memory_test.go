package chat

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func fill(t *testing.T, b Backplane, n int) {
	t.Helper()
	for range n {
		if _, err := b.Append(context.Background(), "s", post("m", randomID())); err != nil {
			t.Fatal(err)
		}
	}
}

func seqs(t *testing.T, b Backplane, after uint64) []uint64 {
	t.Helper()
	es, err := b.Range(context.Background(), "s", after, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

// A torn last line (a crash mid-write): every good line stays, numbering
// goes past the torn one (a client may have seen it), the damage is set
// aside in .corrupt, and the file ends on a newline again.
func TestMemoryLogSurvivesATornTail(t *testing.T) {
	dir := t.TempDir()
	m, err := NewMemory(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, m, 5)
	_ = m.Close()
	path := filepath.Join(dir, "s.jsonl")
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	_, _ = f.WriteString(`{"v":1,"seq":6,"type":"message","bo`)
	_ = f.Close()

	m2, err := NewMemory(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if got := seqs(t, m2, 0); fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Fatalf("kept %v", got)
	}
	seq, err := m2.Append(context.Background(), "s", post("after", "new"))
	if err != nil || seq != 7 {
		t.Fatalf("the next event got %d (%v): 6 may have been seen, want 7", seq, err)
	}
	raw, _ := os.ReadFile(path)
	if !bytes.HasSuffix(raw, []byte("\n")) || bytes.Contains(raw, []byte(`"bo`+"\n")) || bytes.Count(raw, []byte("\n")) != 6 {
		t.Fatalf("the file after repair:\n%s", raw)
	}
	q, err := os.ReadFile(path + ".corrupt")
	if err != nil || !bytes.Contains(q, []byte(`"seq":6,"type":"message","bo`)) {
		t.Fatalf("the torn line was not set aside: %q %v", q, err)
	}
}

// One bad byte in the middle: only that line is lost. What came after it
// (a ban, say) stays, sequence numbers are never reused, and a client
// resuming from before the damage gets every good event without waiting
// for the missing one.
func TestMemoryLogSurvivesDamageInTheMiddle(t *testing.T) {
	dir := t.TempDir()
	m, err := NewMemory(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, m, 7)
	ban := &Envelope{V: Version, Type: TypeBan, Body: mustJSON(TargetBody{User: "guest:troll"})}
	if seq, err := m.Append(context.Background(), "s", ban); err != nil || seq != 8 {
		t.Fatalf("ban: %d %v", seq, err)
	}
	fill(t, m, 2)
	_ = m.Close()
	path := filepath.Join(dir, "s.jsonl")
	raw, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(raw), "\n")
	lines[2] = strings.Replace(lines[2], `"seq":3`, `"seq":3\x00`, 1) // not JSON any more
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}

	m2, err := NewMemory(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if got := seqs(t, m2, 0); fmt.Sprint(got) != "[1 2 4 5 6 7 8 9 10]" {
		t.Fatalf("kept %v", got)
	}
	es, _ := m2.Range(context.Background(), "s", 7, 1)
	if len(es) != 1 || es[0].Type != TypeBan {
		t.Fatalf("the ban after the damage was lost: %+v", es)
	}
	if seq, _ := m2.Append(context.Background(), "s", post("x", "new")); seq != 11 {
		t.Fatalf("next seq %d, want 11", seq)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var got []uint64
	_ = m2.Tail(ctx, "s", 2, func(e *Envelope) {
		got = append(got, e.Seq)
		if e.Seq == 11 {
			cancel()
		}
	})
	if fmt.Sprint(got) != "[4 5 6 7 8 9 10 11]" {
		t.Fatalf("a client resuming after 2 got %v", got)
	}
}

// Memory holds a bounded window; older events come back from the file.
func TestMemoryKeepsABoundedWindow(t *testing.T) {
	m, err := NewMemory(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fill(t, m, memWindow+memWindow/2+10)
	m.mu.Lock()
	held := len(m.streams["s"].recent)
	m.mu.Unlock()
	if held > memWindow {
		t.Fatalf("%d events in memory, the window is %d", held, memWindow)
	}
	if got := seqs(t, m, 0); len(got) != 1000 || got[0] != 1 || got[999] != 1000 {
		t.Fatalf("the oldest events from the file: %d, first %v", len(got), got[:min(3, len(got))])
	}
	if got := seqs(t, m, memWindow+memWindow/2); len(got) != 10 || got[0] != memWindow+memWindow/2+1 {
		t.Fatalf("the newest from memory: %v", got)
	}
}

// FuzzMemoryLoad starts the memory backplane on a log file of any bytes
// (a crash, a bad disk, a hand edit): nothing may panic, what loads is in
// order, the next event is numbered past all of it, and the file ends on
// a newline after it.
func FuzzMemoryLoad(f *testing.F) {
	for _, s := range []string{
		"{\"v\":1,\"seq\":1,\"type\":\"message\",\"body\":{\"text\":\"a\"}}\n",
		"{\"v\":1,\"seq\":1,\"type\":\"message\",\"body\":{\"text\":\"a\"}}\n{\"v\":1,\"seq\":2,\"type\":\"mess",
		"{\"v\":1,\"seq\":5,\"type\":\"ban\",\"body\":{\"user\":\"u\"}}\n\x00\xff\n{\"v\":1,\"seq\":3,\"type\":\"message\"}\n",
		"{\"v\":1,\"seq\":18446744073709551615,\"type\":\"message\"}\n",
		"\n\n\n", "[]\n", "null\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "s.jsonl")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := NewMemory(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		es, err := m.Range(context.Background(), "s", 0, 100_000)
		if err != nil {
			return // refused whole, with an error: fine
		}
		var last uint64
		for _, e := range es {
			if e.Seq <= last {
				t.Fatalf("loaded out of order: %d after %d", e.Seq, last)
			}
			last = e.Seq
		}
		head, err := m.Head(context.Background(), "s")
		if err != nil || head < last {
			t.Fatalf("head %d (%v) below the loaded %d", head, err, last)
		}
		seq, err := m.Append(context.Background(), "s", post("next", randomID()))
		if err != nil {
			if head >= maxSeq {
				return // numbering is exhausted: refused, not wrapped
			}
			t.Fatal(err)
		}
		if seq <= head {
			t.Fatalf("the next event got %d, not past %d", seq, head)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(path)
		if err != nil || !bytes.HasSuffix(raw, []byte("\n")) {
			t.Fatalf("the file does not end on a newline after an append (%v)", err)
		}
	})
}
