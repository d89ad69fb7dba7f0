package sdpcheck

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Answer checks an SDP answer: the grammar of every line (Check), and what
// an answer must carry on each m-line it accepts: ICE credentials, a
// fingerprint and a setup role other than actpass (RFC 8842 §5.3), a mid in
// the BUNDLE group.
func Answer(text string) error {
	d, err := parse(text)
	if err != nil {
		return err
	}
	var errs []error
	bundled := map[string]bool{}
	for _, g := range d.session.all("group") {
		f := strings.Fields(g)
		if len(f) > 0 && f[0] == "BUNDLE" {
			for _, mid := range f[1:] {
				bundled[mid] = true
			}
		}
	}
	for i, m := range d.media {
		if m.port == 0 {
			continue
		}
		where := fmt.Sprintf("m-line %d", i)
		for _, key := range []string{"ice-ufrag", "ice-pwd", "fingerprint", "setup"} {
			if len(m.attrs.all(key)) == 0 && len(d.session.all(key)) == 0 {
				errs = append(errs, fmt.Errorf("%s: no a=%s", where, key))
			}
		}
		for _, s := range append(m.attrs.all("setup"), d.session.all("setup")...) {
			if s == "actpass" {
				errs = append(errs, fmt.Errorf("%s: an answer's a=setup must be active or passive, not actpass", where))
			}
		}
		if mids := m.attrs.all("mid"); len(mids) != 1 || !bundled[mids[0]] {
			errs = append(errs, fmt.Errorf("%s: accepted but its mid %v is not in the BUNDLE group", where, mids))
		}
	}
	return errors.Join(errs...)
}

// Check reports every place where text breaks the SDP grammar or the
// grammar of a known attribute. The error joins one error per problem.
func Check(text string) error {
	_, err := parse(text)
	return err
}

type attrs [][2]string // name, value ("" when the attribute has none)

func (a attrs) all(name string) []string {
	var out []string
	for _, kv := range a {
		if kv[0] == name {
			out = append(out, kv[1])
		}
	}
	return out
}

type media struct {
	kind    string
	port    int
	proto   string
	formats []string
	attrs   attrs
}

type description struct {
	session attrs
	media   []*media
}

// The line order RFC 8866 §9 allows, session then media level.
const (
	sessionOrder = "vosiuepcbtrzka"
	mediaOrder   = "micbka"
)

func parse(text string) (*description, error) {
	var errs []error
	fail := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("line %d: "+format, append([]any{line}, args...)...))
	}
	if !strings.HasSuffix(text, "\r\n") {
		errs = append(errs, errors.New("the last line does not end with CRLF"))
	}
	lines := strings.Split(strings.TrimSuffix(text, "\r\n"), "\r\n")
	d := &description{}
	var cur *media
	order, pos := sessionOrder, 0
	seenT := false
	for i, line := range lines {
		n := i + 1
		if strings.ContainsAny(line, "\r\n\x00") {
			fail(n, "a bare CR, LF or NUL inside the line (lines end with CRLF)")
			continue
		}
		if len(line) < 2 || line[1] != '=' || line[0] < 'a' || line[0] > 'z' {
			fail(n, "%q is not <type>=<value>", line)
			continue
		}
		typ, value := line[0], line[2:]
		if i == 0 && typ != 'v' {
			fail(n, "the first line must be v=")
		}
		if typ == 'm' {
			cur = &media{}
			d.media = append(d.media, cur)
			order = mediaOrder
			if !seenT {
				fail(n, "m= before t=")
			}
			checkMediaLine(value, cur, func(f string, a ...any) { fail(n, f, a...) })
			pos = 1
			continue
		}
		at := strings.IndexByte(order[pos:], typ)
		if at < 0 {
			if strings.IndexByte(order, typ) >= 0 {
				fail(n, "%c= out of order", typ)
			} else {
				fail(n, "%c= is not allowed at the %s level", typ, map[bool]string{true: "session", false: "media"}[cur == nil])
			}
			continue
		}
		// b=, t=, r= and a= repeat; the rest appear once.
		if at == 0 && pos > 0 && !strings.ContainsRune("btra", rune(typ)) && order[pos-1] == typ {
			fail(n, "%c= repeated", typ)
		}
		pos += at
		if !strings.ContainsRune("btra", rune(typ)) {
			pos++
		}
		lf := func(f string, a ...any) { fail(n, f, a...) }
		switch typ {
		case 'v':
			if value != "0" {
				lf("v=%s, want v=0", value)
			}
		case 'o':
			checkOrigin(value, lf)
		case 's':
			if value == "" {
				lf("s= is empty (use s=-)")
			}
		case 't':
			seenT = true
			f := strings.Fields(value)
			if len(f) != 2 || !digits(f[0], 20) || !digits(f[1], 20) {
				lf("t=%s is not two times", value)
			}
		case 'c':
			checkConnection(value, lf)
		case 'b':
			if k, v, ok := strings.Cut(value, ":"); !ok || !isToken(k) || !digits(v, 20) {
				lf("b=%s is not <type>:<bandwidth>", value)
			}
		case 'a':
			name, v, hasValue := strings.Cut(value, ":")
			if !isToken(name) {
				lf("attribute name %q is not a token", name)
				continue
			}
			if hasValue && strings.ContainsAny(v, "\x00") {
				lf("a=%s carries a NUL", name)
			}
			if cur == nil {
				d.session = append(d.session, [2]string{name, v})
			} else {
				cur.attrs = append(cur.attrs, [2]string{name, v})
			}
			checkAttribute(name, v, hasValue, cur, lf)
		}
	}
	if len(lines) < 4 {
		errs = append(errs, errors.New("too short: v=, o=, s= and t= are required"))
	}
	if !seenT {
		errs = append(errs, errors.New("no t= line"))
	}
	errs = append(errs, checkSections(d)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return d, nil
}

func checkOrigin(v string, fail func(string, ...any)) {
	f := strings.Split(v, " ")
	if len(f) != 6 {
		fail("o=%s: want <username> <sess-id> <sess-version> IN <addrtype> <address>", v)
		return
	}
	if !isNonWS(f[0]) {
		fail("o= username %q", f[0])
	}
	if !digits(f[1], 20) || !digits(f[2], 20) {
		fail("o= session id and version must be digits: %q %q", f[1], f[2])
	}
	if f[3] != "IN" || (f[4] != "IP4" && f[4] != "IP6") || f[5] == "" {
		fail("o= network %q %q %q", f[3], f[4], f[5])
	}
}

func checkConnection(v string, fail func(string, ...any)) {
	f := strings.Split(v, " ")
	if len(f) != 3 || f[0] != "IN" || (f[1] != "IP4" && f[1] != "IP6") {
		fail("c=%s: want IN IP4|IP6 <address>", v)
		return
	}
	a, err := netip.ParseAddr(f[2])
	if err != nil || (f[1] == "IP4") != a.Is4() {
		fail("c= address %q is not an %s address", f[2], f[1])
	}
}

func checkMediaLine(v string, m *media, fail func(string, ...any)) {
	f := strings.Split(v, " ")
	if len(f) < 4 {
		fail("m=%s: want <media> <port> <proto> <fmt> ...", v)
		return
	}
	m.kind, m.proto, m.formats = f[0], f[2], f[3:]
	if !isToken(m.kind) {
		fail("m= media %q", m.kind)
	}
	port, err := strconv.Atoi(f[1])
	if err != nil || port < 0 || port > 65535 || !digits(f[1], 5) {
		fail("m= port %q", f[1])
	}
	m.port = port
	for _, p := range strings.Split(m.proto, "/") {
		if !isToken(p) {
			fail("m= proto %q", m.proto)
		}
	}
	for _, x := range m.formats {
		if x == "" || !isToken(x) {
			fail("m= format %q", x)
		}
		if strings.Contains(m.proto, "RTP") && !digits(x, 3) {
			fail("m= RTP format %q is not a payload type", x)
		}
		if strings.Contains(m.proto, "RTP") {
			if pt, _ := strconv.Atoi(x); pt > 127 {
				fail("m= payload type %s > 127", x)
			}
		}
	}
	if strings.HasSuffix(m.proto, "SCTP") && m.port != 0 && (len(m.formats) != 1 || m.formats[0] != "webrtc-datachannel") {
		fail("m= SCTP formats %v, want webrtc-datachannel", m.formats)
	}
	if len(m.formats) != len(uniq(m.formats)) {
		fail("m= repeats a format: %v", m.formats)
	}
}

// checkAttribute checks the value of the attributes WebRTC uses.
func checkAttribute(name, v string, hasValue bool, m *media, fail func(string, ...any)) {
	flag := func() {
		if hasValue {
			fail("a=%s takes no value, has %q", name, v)
		}
	}
	inFormats := func(pt string) bool { return m != nil && slices.Contains(m.formats, pt) }
	switch name {
	case "sendrecv", "sendonly", "recvonly", "inactive", "rtcp-mux", "rtcp-rsize", "end-of-candidates", "extmap-allow-mixed", "ice-lite", "rtcp-mux-only":
		flag()
	case "fingerprint":
		checkFingerprint(v, fail)
	case "setup":
		if !slices.Contains([]string{"active", "passive", "actpass", "holdconn"}, v) {
			fail("a=setup:%s", v)
		}
	case "ice-ufrag":
		if !iceChars(v, 4, 256) {
			fail("a=ice-ufrag:%s is not 4-256 ice-chars", v)
		}
	case "ice-pwd":
		if !iceChars(v, 22, 256) {
			fail("a=ice-pwd is not 22-256 ice-chars (%d)", len(v))
		}
	case "ice-options":
		for _, o := range strings.Split(v, " ") {
			if !iceChars(o, 1, 256) {
				fail("a=ice-options:%s", v)
			}
		}
	case "candidate":
		checkCandidate(v, fail)
	case "mid":
		if !isToken(v) || len(v) > 32 {
			fail("a=mid:%q is not a token (at most 32 characters)", v)
		}
	case "group":
		f := strings.Split(v, " ")
		if !isToken(f[0]) {
			fail("a=group semantics %q", f[0])
		}
		for _, id := range f[1:] {
			if !isToken(id) {
				fail("a=group member %q", id)
			}
		}
	case "msid":
		f := strings.Split(v, " ")
		if len(f) < 1 || len(f) > 2 || !msidID(f[0]) || (len(f) == 2 && !msidID(f[1])) {
			fail("a=msid:%s is not <id> [<appdata>] of 1-64 token characters", v)
		}
	case "msid-semantic":
		f := strings.Fields(v)
		if len(f) == 0 || !isToken(f[0]) {
			fail("a=msid-semantic:%s", v)
		}
		for _, id := range f[1:] {
			if id != "*" && !msidID(id) {
				fail("a=msid-semantic id %q", id)
			}
		}
	case "ssrc":
		id, rest, ok := strings.Cut(v, " ")
		n, err := strconv.ParseUint(id, 10, 32)
		if !ok || err != nil || !digits(id, 10) {
			fail("a=ssrc:%s: want <ssrc-id> <attribute>[:<value>]", v)
			return
		}
		_ = n
		an, av, hv := strings.Cut(rest, ":")
		if !isToken(an) {
			fail("a=ssrc attribute %q", an)
		}
		if an == "cname" && (!hv || av == "" || !isNonWS(av)) {
			fail("a=ssrc cname %q", av)
		}
		if an == "msid" {
			f := strings.Split(av, " ")
			if len(f) > 2 || !msidID(f[0]) || (len(f) == 2 && !msidID(f[1])) {
				fail("a=ssrc msid %q", av)
			}
		}
	case "ssrc-group":
		f := strings.Split(v, " ")
		if len(f) < 2 || !isToken(f[0]) {
			fail("a=ssrc-group:%s", v)
		}
		for _, id := range f[1:] {
			if !digits(id, 10) {
				fail("a=ssrc-group ssrc %q", id)
			}
		}
	case "rtpmap":
		pt, enc, ok := strings.Cut(v, " ")
		parts := strings.Split(enc, "/")
		if !ok || !digits(pt, 3) || len(parts) < 2 || len(parts) > 3 || !isToken(parts[0]) || !digits(parts[1], 10) ||
			(len(parts) == 3 && !digits(parts[2], 3)) {
			fail("a=rtpmap:%s: want <pt> <name>/<clock>[/<channels>]", v)
			return
		}
		if !inFormats(pt) {
			fail("a=rtpmap for payload type %s, not on the m-line", pt)
		}
	case "fmtp":
		pt, params, ok := strings.Cut(v, " ")
		if !ok || params == "" || !digits(pt, 3) {
			fail("a=fmtp:%s: want <pt> <parameters>", v)
			return
		}
		if !inFormats(pt) {
			fail("a=fmtp for payload type %s, not on the m-line", pt)
		}
		if strings.ContainsAny(params, " \t") {
			fail("a=fmtp:%s: parameters contain white space", v)
		}
		for _, kv := range strings.Split(params, ";") {
			if kv == "" {
				fail("a=fmtp:%s: an empty parameter", v)
			}
		}
	case "rtcp-fb":
		f := strings.Split(v, " ")
		if len(f) < 2 || len(f) > 3 || (f[0] != "*" && !digits(f[0], 3)) {
			fail("a=rtcp-fb:%s: want <pt>|* <type> [<param>]", v)
			return
		}
		if f[0] != "*" && !inFormats(f[0]) {
			fail("a=rtcp-fb for payload type %s, not on the m-line", f[0])
		}
		for _, x := range f[1:] {
			if !isToken(x) {
				fail("a=rtcp-fb:%s: %q is not a token", v, x)
			}
		}
		if f[1] == "ccm" && (len(f) != 3) {
			fail("a=rtcp-fb:%s: ccm needs a parameter", v)
		}
	case "extmap":
		f := strings.Split(v, " ")
		if len(f) < 2 {
			fail("a=extmap:%s: want <id>[/<direction>] <uri>", v)
			return
		}
		id, dir, hasDir := strings.Cut(f[0], "/")
		n, err := strconv.Atoi(id)
		if err != nil || !digits(id, 3) || n < 1 || n > 255 || n == 15 {
			fail("a=extmap id %q (1-14, or 16-255 with two-byte headers)", id)
		}
		if hasDir && !slices.Contains([]string{"sendrecv", "sendonly", "recvonly", "inactive"}, dir) {
			fail("a=extmap direction %q", dir)
		}
		if !strings.Contains(f[1], ":") || strings.ContainsAny(f[1], "\t") {
			fail("a=extmap URI %q", f[1])
		}
	case "rtcp":
		f := strings.Split(v, " ")
		if !digits(f[0], 5) || (len(f) != 1 && len(f) != 4) {
			fail("a=rtcp:%s", v)
		}
	case "sctp-port":
		if n, err := strconv.Atoi(v); err != nil || !digits(v, 5) || n > 65535 {
			fail("a=sctp-port:%s", v)
		}
		if m == nil || !strings.HasSuffix(m.proto, "SCTP") {
			fail("a=sctp-port outside an SCTP m-line")
		}
	case "max-message-size":
		if !digits(v, 20) {
			fail("a=max-message-size:%s", v)
		}
		if m == nil || !strings.HasSuffix(m.proto, "SCTP") {
			fail("a=max-message-size outside an SCTP m-line")
		}
	case "rid":
		f := strings.Split(v, " ")
		if len(f) < 2 || (f[1] != "send" && f[1] != "recv") {
			fail("a=rid:%s", v)
		}
	}
}

// checkFingerprint checks RFC 8122 §5: a hash function name and upper-case
// hex byte pairs, as many as the hash gives.
func checkFingerprint(v string, fail func(string, ...any)) {
	hash, fp, ok := strings.Cut(v, " ")
	if !ok {
		fail("a=fingerprint:%s: want <hash-func> <fingerprint>", v)
		return
	}
	sizes := map[string]int{"sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64, "md5": 16, "md2": 16}
	want, known := sizes[hash]
	if !known {
		fail("a=fingerprint hash function %q", hash)
	}
	pairs := strings.Split(fp, ":")
	for _, p := range pairs {
		if len(p) != 2 || !isUpperHex(p[0]) || !isUpperHex(p[1]) {
			fail("a=fingerprint %q: each byte is two upper-case hex digits (RFC 8122 §5)", p)
			return
		}
	}
	if known && len(pairs) != want {
		fail("a=fingerprint %s has %d bytes, want %d", hash, len(pairs), want)
	}
}

// checkCandidate checks RFC 8839 §5.1 (and RFC 6544 for TCP).
func checkCandidate(v string, fail func(string, ...any)) {
	f := strings.Split(v, " ")
	if len(f) < 8 || f[6] != "typ" {
		fail("a=candidate:%s: want <foundation> <component> <transport> <priority> <address> <port> typ <type>", v)
		return
	}
	if !iceChars(f[0], 1, 32) {
		fail("candidate foundation %q", f[0])
	}
	if !digits(f[1], 5) {
		fail("candidate component %q", f[1])
	}
	transport := strings.ToLower(f[2])
	if transport != "udp" && transport != "tcp" {
		fail("candidate transport %q", f[2])
	}
	if p, err := strconv.ParseUint(f[3], 10, 32); err != nil || !digits(f[3], 10) || p == 0 {
		fail("candidate priority %q", f[3])
	}
	if f[4] == "" {
		fail("candidate address is empty")
	}
	if n, err := strconv.Atoi(f[5]); err != nil || !digits(f[5], 5) || n > 65535 {
		fail("candidate port %q", f[5])
	}
	if !slices.Contains([]string{"host", "srflx", "prflx", "relay"}, f[7]) {
		fail("candidate type %q", f[7])
	}
	rest := f[8:]
	if len(rest)%2 != 0 {
		fail("candidate extensions are not name/value pairs: %q", strings.Join(rest, " "))
		return
	}
	tcptype := ""
	for i := 0; i < len(rest); i += 2 {
		if !isToken(rest[i]) || rest[i+1] == "" || !isNonWS(rest[i+1]) {
			fail("candidate extension %q %q", rest[i], rest[i+1])
		}
		if rest[i] == "tcptype" {
			tcptype = rest[i+1]
		}
	}
	if transport == "tcp" && !slices.Contains([]string{"active", "passive", "so"}, tcptype) {
		fail("TCP candidate without tcptype active|passive|so")
	}
}

// checkSections checks what spans lines: formats with rtpmaps, unique
// directions and extmap ids per m-line, group members that exist.
func checkSections(d *description) []error {
	var errs []error
	mids := map[string]int{}
	for i, m := range d.media {
		where := fmt.Sprintf("m-line %d", i)
		dirs := 0
		for _, kv := range m.attrs {
			switch kv[0] {
			case "sendrecv", "sendonly", "recvonly", "inactive":
				dirs++
			}
		}
		if dirs > 1 {
			errs = append(errs, fmt.Errorf("%s: %d direction attributes", where, dirs))
		}
		for _, mid := range m.attrs.all("mid") {
			if _, dup := mids[mid]; dup {
				errs = append(errs, fmt.Errorf("%s: mid %q used twice", where, mid))
			}
			mids[mid] = i
		}
		if len(m.attrs.all("mid")) > 1 {
			errs = append(errs, fmt.Errorf("%s: more than one a=mid", where))
		}
		ids := map[string]bool{}
		for _, e := range m.attrs.all("extmap") {
			id, _, _ := strings.Cut(strings.Fields(e + " ")[0], "/")
			if ids[id] {
				errs = append(errs, fmt.Errorf("%s: extmap id %s used twice", where, id))
			}
			ids[id] = true
		}
		if !strings.Contains(m.proto, "RTP") || m.port == 0 {
			continue
		}
		mapped := map[string]int{}
		for _, r := range m.attrs.all("rtpmap") {
			pt, _, _ := strings.Cut(r, " ")
			mapped[pt]++
		}
		for _, pt := range m.formats {
			if n, _ := strconv.Atoi(pt); n >= 96 && mapped[pt] == 0 {
				errs = append(errs, fmt.Errorf("%s: dynamic payload type %s has no a=rtpmap", where, pt))
			}
			if mapped[pt] > 1 {
				errs = append(errs, fmt.Errorf("%s: payload type %s has %d a=rtpmap lines", where, pt, mapped[pt]))
			}
		}
	}
	for _, g := range d.session.all("group") {
		f := strings.Split(g, " ")
		for _, mid := range f[1:] {
			i, ok := mids[mid]
			if !ok {
				errs = append(errs, fmt.Errorf("a=group:%s names mid %q, which no m-line has", g, mid))
			} else if f[0] == "BUNDLE" && d.media[i].port == 0 {
				errs = append(errs, fmt.Errorf("a=group:%s bundles mid %q, whose m-line is rejected", g, mid))
			}
		}
	}
	return errs
}

func uniq(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// digits reports whether s is 1 to maxLen decimal digits.
func digits(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

// isToken reports whether s is an RFC 8866 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// msidID is RFC 8830's 1*64token-char.
func msidID(s string) bool { return len(s) <= 64 && isToken(s) }

func isNonWS(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] <= 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// iceChars reports whether s is minLen to maxLen of RFC 8839's ice-char:
// ALPHA / DIGIT / "+" / "/".
func iceChars(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '+' && c != '/' {
			return false
		}
	}
	return true
}
