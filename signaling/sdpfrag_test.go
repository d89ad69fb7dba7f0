package signaling

import (
	"strings"
	"testing"
)

func TestFragmentRoundTrip(t *testing.T) {
	text := formatFragment("uf", "pw", "0", []string{"candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"})
	f, err := parseFragment(text)
	if err != nil {
		t.Fatal(err)
	}
	if f.Ufrag != "uf" || f.Pwd != "pw" || f.Mid != "0" || len(f.Candidates) != 1 || !f.End {
		t.Fatalf("round trip: %+v", f)
	}
	for _, bad := range []string{"hello", "v=0\r\n", "a=ice-ufrag:only\r\n", "a=candidate:\r\n", strings.Repeat("a=x\r\n", maxFragLines+1)} {
		if _, err := parseFragment(bad); err == nil {
			t.Errorf("accepted %q", bad[:min(len(bad), 30)])
		}
	}
}

// FuzzParseFragment: PATCH bodies never panic the parser, and accepted
// fragments carry credentials in pairs.
func FuzzParseFragment(f *testing.F) {
	f.Add(formatFragment("uf", "pw", "0", []string{"candidate:1 1 udp 1 127.0.0.1 9 typ host"}))
	f.Add("a=end-of-candidates\r\n")
	f.Fuzz(func(t *testing.T, body string) {
		fr, err := parseFragment(body)
		if err != nil {
			return
		}
		if (fr.Ufrag == "") != (fr.Pwd == "") {
			t.Fatal("credentials not in pairs")
		}
		for _, c := range fr.Candidates {
			if !strings.HasPrefix(c, "candidate:") {
				t.Fatalf("candidate %q", c)
			}
		}
	})
}
