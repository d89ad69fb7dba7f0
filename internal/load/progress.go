package load

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress shows one status line: rewritten in place on a terminal, a line
// every few seconds elsewhere (a log, CI).
type progress struct {
	w        io.Writer
	tty      bool
	mu       sync.Mutex
	last     string
	lastShow time.Time
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) set(line string) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	} else if line != p.last && time.Since(p.lastShow) > 2*time.Second {
		fmt.Fprintln(p.w, line)
		p.lastShow = time.Now()
	}
	p.last = line
}

func (p *progress) done() {
	if p != nil && p.w != nil && p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// bar draws a 20-cell progress bar for i of n.
func bar(i, n int) string {
	if n <= 0 {
		n = 1
	}
	full := min(20*i/n, 20)
	return "[" + strings.Repeat("#", full) + strings.Repeat(".", 20-full) + "]"
}
