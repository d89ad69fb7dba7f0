package signaling

import (
	"errors"
	"fmt"
	"strings"
)

// fragment is a parsed application/trickle-ice-sdpfrag body (RFC 8840 §9).
type fragment struct {
	Ufrag, Pwd string
	Mid        string   // the first media section's mid
	Candidates []string // "candidate:…" values
	End        bool     // a=end-of-candidates seen
}

const maxFragLines = 512

var errBadFrag = errors.New("malformed sdpfrag")

// parseFragment reads an sdpfrag: attribute lines and m= lines only.
func parseFragment(body string) (fragment, error) {
	var f fragment
	lines := strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n")
	if len(lines) > maxFragLines {
		return f, fmt.Errorf("%w: more than %d lines", errBadFrag, maxFragLines)
	}
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if len(l) < 2 || l[1] != '=' {
			return f, fmt.Errorf("%w: line %d is not an SDP line", errBadFrag, i+1)
		}
		switch l[0] {
		case 'm':
			continue
		case 'a':
		default:
			return f, fmt.Errorf("%w: line %d: only a= and m= lines belong in a fragment", errBadFrag, i+1)
		}
		key, val, _ := strings.Cut(l[2:], ":")
		switch key {
		case "ice-ufrag":
			f.Ufrag = val
		case "ice-pwd":
			f.Pwd = val
		case "mid":
			if f.Mid == "" {
				f.Mid = val
			}
		case "candidate":
			if val == "" || len(val) > 512 {
				return f, fmt.Errorf("%w: line %d: bad candidate", errBadFrag, i+1)
			}
			f.Candidates = append(f.Candidates, "candidate:"+val)
		case "end-of-candidates":
			f.End = true
		}
	}
	if (f.Ufrag == "") != (f.Pwd == "") {
		return f, fmt.Errorf("%w: ice-ufrag and ice-pwd come together", errBadFrag)
	}
	return f, nil
}

// formatFragment writes the server's ICE parameters after a restart.
func formatFragment(ufrag, pwd, mid string, cands []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", ufrag, pwd)
	fmt.Fprintf(&b, "m=audio 9 RTP/AVP 0\r\na=mid:%s\r\n", mid)
	for _, c := range cands {
		fmt.Fprintf(&b, "a=%s\r\n", c)
	}
	b.WriteString("a=end-of-candidates\r\n")
	return b.String()
}
