package lite

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sctp"
	"github.com/pion/srtp/v3"
	"github.com/pion/stun/v4"
)

// Remote is what a viewer's offer says about its side.
type Remote struct {
	Ufrag, Pwd string
	// FingerprintHash ("sha-256") and Fingerprint ("AB:CD:…") identify the
	// viewer's DTLS certificate.
	FingerprintHash, Fingerprint string
	// Active: the offer said a=setup:passive, so Glint is the DTLS client.
	Active bool
	// Candidates are the offer's a=candidate values; Glint checks the UDP
	// ones itself.
	Candidates []string
}

// ParseRemote reads the offerer's ICE credentials, certificate fingerprint
// and DTLS role (a=setup). The fingerprint must be a hash RFC 8122 names
// that DTLS can check, with well-formed hex of the hash's length.
func ParseRemote(ufrag, pwd, fp, setup string) (Remote, error) {
	r := Remote{Ufrag: ufrag, Pwd: pwd}
	hash, value, _ := strings.Cut(strings.TrimSpace(fp), " ")
	r.FingerprintHash, r.Fingerprint = strings.ToLower(hash), strings.TrimSpace(value)
	switch setup {
	case "passive":
		r.Active = true
	case "actpass", "active", "":
	default:
		return r, fmt.Errorf("a=setup:%s", setup)
	}
	if r.Fingerprint == "" {
		return r, fmt.Errorf("no DTLS fingerprint")
	}
	size, ok := map[string]int{"sha-256": 32, "sha-384": 48, "sha-512": 64}[r.FingerprintHash]
	if !ok {
		return r, fmt.Errorf("fingerprint hash %q: use sha-256, sha-384 or sha-512", hash)
	}
	parts := strings.Split(r.Fingerprint, ":")
	if len(parts) != size {
		return r, fmt.Errorf("a %s fingerprint has %d bytes, not %d", r.FingerprintHash, len(parts), size)
	}
	for _, p := range parts {
		if len(p) != 2 || !isHex(p[0]) || !isHex(p[1]) {
			return r, fmt.Errorf("fingerprint byte %q is not two hex digits", p)
		}
	}
	return r, nil
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// Config is what a Transport is made with. The callbacks are set here, so
// they are in place before the transport can receive anything.
type Config struct {
	Remote      Remote
	Certificate *tls.Certificate
	// DataChannel: the viewer offered an SCTP m-line.
	DataChannel bool
	Log         *slog.Logger

	// OnConnected is called once, when keys are agreed.
	OnConnected func()
	// OnClosed is called once, when the transport ended on its own: the
	// viewer closed DTLS, the handshake failed, consent expired.
	OnClosed func(error)
	// OnRTCP is called on the socket's reader when RTCP from the viewer is
	// waiting. It must not block: hand ReadRTCP to a goroutine of your own.
	OnRTCP func()
	// OnChannel takes a data channel the viewer opened; false closes it.
	OnChannel func(*datachannel.DataChannel) bool
	// Sender picks which of a shared socket's senders carries the viewer's
	// media and RTCP (see Mux.Socket): its fan-out lane, so lanes do not
	// take turns writing on one socket.
	Sender int

	// Spawn runs long-lived work (the DTLS handshake, then the reader that
	// hears the viewer leave) on a goroutine its owner waits for, or
	// reports false and runs nothing once the owner is closing. Nil runs
	// it on a goroutine of its own.
	Spawn func(func()) bool

	// ConsentInterval and ConsentTimeout override RFC 7675's 5 s between
	// consent checks and 30 s without an answer before media stops (tests
	// shorten them).
	ConsentInterval, ConsentTimeout time.Duration
}

// ICE timing (RFC 8445 §14, RFC 7675 §5.1).
const (
	// checkRTO is the first retransmission wait of a connectivity check;
	// it doubles up to maxCheckTries checks.
	checkRTO      = 100 * time.Millisecond
	maxCheckTries = 7
	// consentInterval is the mean wait between consent checks on the
	// selected path, randomised by ±20%.
	consentInterval = 5 * time.Second
	// consentTimeout is how long the selected path may leave consent checks
	// unanswered before media to it stops.
	consentTimeout = 30 * time.Second
	// maxPaths bounds the paths (addresses) of one transport, and
	// maxCandidates the candidates it checks itself.
	maxPaths      = 8
	maxCandidates = 8
	// hostPriority is the priority of Glint's checks (a host candidate).
	hostPriority = 126<<24 | 65535<<8 | 255
)

// sendBuf holds any packet Glint sends or accepts; larger ones are dropped.
const sendBuf = 1500 + 64

// srtpMaxTag is the longest SRTP or SRTCP trailer (GCM tag plus index).
const srtpMaxTag = 16 + 4

// maxRTCPQueue bounds the viewer's RTCP waiting for ReadRTCP; beyond it
// packets are dropped and counted.
const maxRTCPQueue = 16

// path is where a transport's packets go: a UDP address or a TCP stream.
type path interface {
	write(b []byte) error
	addr() netip.AddrPort
	close()
}

// pair is a path and what Glint knows of it (RFC 8445 §6.1.2, a candidate
// pair): whether it answered Glint's own check (only then may media go
// there), whether the viewer nominated it, and when it last gave consent.
type pair struct {
	p         path
	validated bool
	nominated bool
	lastReply time.Time // the last answer to Glint's check: consent
	nextCheck time.Time
	tries     int // checks sent since the last answer
}

// Transport is one viewer's connection.
type Transport struct {
	mux *Mux
	cfg Config
	log *slog.Logger

	lastSeen atomic.Int64 // unix ns of the last packet from the viewer

	mu         sync.Mutex // guards the fields below and the send path
	remote     Remote
	ufrags     []string // local, newest last; the older ones still route
	pwd        string
	tieBreaker uint64
	pairs      []*pair
	selected   *pair
	media      path             // selected's path as media leaves: on the viewer's sender socket
	addrs      []netip.AddrPort // the UDP addresses routed to t
	txns       map[[stun.TransactionIDSize]byte]*pair
	tcps       []*tcpPath
	out        *srtp.Context // encrypts what Glint sends
	hdr        rtp.Header
	plain      [sendBuf]byte
	sealed     [sendBuf]byte
	dconn      *dtlsConn
	dtls       *dtls.Conn
	sctp       *sctp.Association
	held       [][]byte // DTLS records waiting for a path that answered
	started    bool
	closed     bool

	qmu   sync.Mutex // the RTCP queue
	queue []*[sendBuf]byte
	qlen  []int

	rmu sync.Mutex    // the receive path: decryption in packet order
	in  *srtp.Context // decrypts the viewer's SRTCP
	rb  [sendBuf]byte

	endOnce sync.Once
}

// bufs recycles RTCP buffers between the socket reader and ReadRTCP.
var bufs = sync.Pool{New: func() any { return new([sendBuf]byte) }} //nolint:gochecknoglobals // a pool of fixed-size buffers

// New creates a transport on m for cfg.Remote. It is reachable (its ufrag
// routes to it) when New returns, and starts checking the viewer's
// candidates at the Mux's next tick.
func (m *Mux) New(cfg Config) *Transport {
	if cfg.Log == nil {
		cfg.Log = m.log
	}
	if cfg.ConsentInterval <= 0 {
		cfg.ConsentInterval = consentInterval
	}
	if cfg.ConsentTimeout <= 0 {
		cfg.ConsentTimeout = consentTimeout
	}
	t := &Transport{mux: m, cfg: cfg, log: cfg.Log, remote: cfg.Remote, txns: map[[stun.TransactionIDSize]byte]*pair{}}
	t.ufrags = []string{newUfrag()}
	t.pwd = rand.Text()
	t.tieBreaker = mrand.Uint64()
	t.lastSeen.Store(time.Now().UnixNano())
	t.mu.Lock()
	t.addCandidatesLocked(cfg.Remote.Candidates, time.Now())
	t.mu.Unlock()
	m.register(t, t.ufrags[0])
	return t
}

// Credentials returns the current local ufrag and password.
func (t *Transport) Credentials() (ufrag, pwd string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ufrags[len(t.ufrags)-1], t.pwd
}

// RemoteCredentials returns the viewer's current ufrag and password.
func (t *Transport) RemoteCredentials() (ufrag, pwd string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.remote.Ufrag, t.remote.Pwd
}

// Restart takes the viewer's new credentials and makes new local ones (an
// ICE restart, RFC 8445 §9). Keys, streams and the selected path stay
// until the viewer nominates another.
func (t *Transport) Restart(ufrag, pwd string) (string, string) {
	nu, np := newUfrag(), rand.Text()
	t.mu.Lock()
	t.remote.Ufrag, t.remote.Pwd = ufrag, pwd
	t.pwd = np
	t.ufrags = append(t.ufrags, nu)
	var old []string
	if len(t.ufrags) > 4 {
		old, t.ufrags = t.ufrags[:1], t.ufrags[1:]
	}
	closed := t.closed
	t.mu.Unlock()
	if !closed {
		t.mux.forget(t, old, nil, false)
		t.mux.addUfrag(nu, t)
	}
	return nu, np
}

// AddCandidates takes trickled candidates ("candidate:…" values) and
// checks the UDP ones.
func (t *Transport) AddCandidates(cands []string) error {
	for _, c := range cands {
		if _, _, err := parseCandidate(c); err != nil {
			return err
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addCandidatesLocked(cands, time.Now())
	return nil
}

// parseCandidate reads an RFC 8839 candidate: its transport and address.
func parseCandidate(c string) (string, netip.AddrPort, error) {
	f := strings.Fields(strings.TrimPrefix(c, "candidate:"))
	if len(f) < 8 || f[6] != "typ" {
		return "", netip.AddrPort{}, fmt.Errorf("%w: %q", ErrBadCandidate, c)
	}
	port, err := strconv.ParseUint(f[5], 10, 16)
	if err != nil {
		return "", netip.AddrPort{}, fmt.Errorf("%w: port %q", ErrBadCandidate, f[5])
	}
	// An mDNS name (RFC 8839 §5.1 allows one) cannot be checked here: the
	// candidate is taken, with no address.
	var ap netip.AddrPort
	if addr, perr := netip.ParseAddr(f[4]); perr == nil {
		ap = netip.AddrPortFrom(addr.Unmap(), uint16(port))
	}
	return strings.ToLower(f[2]), ap, nil
}

// addCandidatesLocked makes a pair for each UDP candidate, from each shared
// socket of the same address family, due for a check now.
func (t *Transport) addCandidatesLocked(cands []string, now time.Time) {
	added := 0
	for _, c := range cands {
		proto, a, err := parseCandidate(c)
		if err != nil || proto != "udp" || !a.IsValid() || a.Port() == 0 {
			continue
		}
		for _, s := range t.mux.localSockets() {
			local, ok := s.LocalAddr().(*net.UDPAddr)
			if !ok || (local.IP.To4() != nil) != a.Addr().Is4() {
				continue
			}
			if added >= maxCandidates || len(t.pairs) >= maxPaths {
				return
			}
			if t.pairOf(udpPath{conn: s, to: a}) == nil {
				t.pairs = append(t.pairs, &pair{p: udpPath{conn: s, to: a}, nextCheck: now})
				added++
			}
		}
	}
}

func (t *Transport) pairOf(p path) *pair {
	for _, x := range t.pairs {
		if x.p == p {
			return x
		}
	}
	return nil
}

// receive handles one packet from the viewer (RFC 7983 demultiplexing).
// It runs on the socket's reader and must not keep b.
func (t *Transport) receive(p path, b []byte) {
	if len(b) == 0 {
		return
	}
	switch c := b[0]; {
	case c < 4:
		t.receiveSTUN(p, b)
	case c >= 20 && c < 64:
		t.lastSeen.Store(time.Now().UnixNano())
		t.receiveDTLS(b)
	case c >= 128 && c < 192 && len(b) >= 2 && b[1] >= 192 && b[1] <= 223:
		t.enqueueRTCP(b)
	}
}

// verifyRequest reports whether b is a binding request for t's current
// credentials with a valid MESSAGE-INTEGRITY and FINGERPRINT.
func (t *Transport) verifyRequest(b []byte) bool {
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil || m.Type != stun.BindingRequest {
		return false
	}
	_, ok := t.checkRequest(m)
	return ok
}

// checkRequest verifies a decoded binding request and returns the password
// that signed it.
func (t *Transport) checkRequest(m *stun.Message) (string, bool) {
	var user stun.Username
	if user.GetFrom(m) != nil {
		return "", false
	}
	local, remote, _ := strings.Cut(string(user), ":")
	t.mu.Lock()
	// Only the newest credentials are answered after a restart.
	known := local == t.ufrags[len(t.ufrags)-1] && remote == t.remote.Ufrag
	pwd, closed := t.pwd, t.closed
	t.mu.Unlock()
	if closed || !known {
		return "", false
	}
	if stun.NewShortTermIntegrity(pwd).Check(m) != nil || stun.Fingerprint.Check(m) != nil {
		return "", false
	}
	return pwd, true
}

func (t *Transport) receiveSTUN(p path, b []byte) {
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil {
		return
	}
	switch m.Type {
	case stun.BindingRequest:
		t.receiveRequest(p, m)
	case stun.BindingSuccess:
		t.receiveResponse(p, m)
	}
}

// receiveRequest answers a viewer's connectivity check (RFC 8445 §7.3, as
// the controlled agent). A check from a new address makes a pair and
// triggers a check of Glint's own there; a nominated pair is selected once
// it has answered one.
func (t *Transport) receiveRequest(p path, m *stun.Message) {
	pwd, ok := t.checkRequest(m)
	if !ok {
		return
	}
	t.lastSeen.Store(time.Now().UnixNano())
	if m.Contains(stun.AttrICEControlled) {
		// Both sides think they are controlled (RFC 8445 §7.3.1.1). Glint
		// is always the controlled agent: the viewer must switch.
		if resp, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingError,
			stun.CodeRoleConflict, stun.NewShortTermIntegrity(pwd), stun.Fingerprint); err == nil {
			_ = p.write(resp.Raw)
		}
		return
	}
	to := p.addr()
	resp, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: to.Addr().AsSlice(), Port: int(to.Port())},
		stun.NewShortTermIntegrity(pwd), stun.Fingerprint)
	if err != nil {
		return
	}
	nominated := m.Contains(stun.AttrUseCandidate)
	now := time.Now()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	pr := t.pairOf(p)
	if pr == nil && len(t.pairs) < maxPaths {
		pr = &pair{p: p, nextCheck: now}
		t.pairs = append(t.pairs, pr)
	}
	if pr != nil {
		if up, isUDP := p.(udpPath); isUDP && !containsAddr(t.addrs, up.to) {
			t.addrs = append(t.addrs, up.to)
			t.mux.addAddr(up.to, t)
		}
		if nominated {
			pr.nominated = true
		}
		switch {
		case pr.validated && pr.nominated && t.selected != pr:
			t.selectLocked(pr, now)
		case !pr.validated && pr.tries == 0:
			// A triggered check (RFC 8445 §7.3.1.4): the viewer's agent
			// learns the pair works as soon as it sees one.
			t.checkLocked(pr, now)
		}
	}
	t.mu.Unlock()
	_ = p.write(resp.Raw)
}

// receiveResponse takes the answer to one of Glint's checks: the pair it
// came on is validated, and has consent for another consentTimeout. An
// answer refreshes only the pair its check was sent on.
func (t *Transport) receiveResponse(p path, m *stun.Message) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	pr := t.txns[m.TransactionID]
	if pr == nil || pr.p != p || t.closed {
		return
	}
	if stun.NewShortTermIntegrity(t.remote.Pwd).Check(m) != nil || stun.Fingerprint.Check(m) != nil {
		return
	}
	delete(t.txns, m.TransactionID)
	t.mux.dropTxn(m.TransactionID)
	t.lastSeen.Store(now.UnixNano())
	pr.validated, pr.lastReply, pr.tries = true, now, 0
	if up, isUDP := p.(udpPath); isUDP && !containsAddr(t.addrs, up.to) {
		t.addrs = append(t.addrs, up.to)
		t.mux.addAddr(up.to, t)
	}
	if pr.nominated {
		t.selectLocked(pr, now)
	}
}

// selectLocked makes pr the path media and DTLS go on, and sends DTLS
// records that waited for one. Its consent checks start from now; the
// viewer's own checks (keepalives, renominations) never put them off.
func (t *Transport) selectLocked(pr *pair, now time.Time) {
	if t.selected == pr {
		return
	}
	t.log.Debug("viewer path selected", "addr", pr.p.addr())
	t.selected = pr
	t.media = t.mux.sender(pr.p, t.cfg.Sender)
	pr.nextCheck = now.Add(jitter(t.cfg.ConsentInterval))
	for _, b := range t.held {
		_ = pr.p.write(b)
	}
	t.held = nil
}

// checkLocked sends one connectivity (or consent) check on pr.
func (t *Transport) checkLocked(pr *pair, now time.Time) {
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest,
		stun.NewUsername(t.remote.Ufrag+":"+t.ufrags[len(t.ufrags)-1]), ice.AttrControlled(t.tieBreaker),
		ice.PriorityAttr(hostPriority), stun.NewShortTermIntegrity(t.remote.Pwd), stun.Fingerprint)
	if err != nil {
		return
	}
	// Forget this pair's older transactions: the newest check is the one
	// whose answer counts, and the table stays bounded.
	for id, x := range t.txns {
		if x == pr {
			delete(t.txns, id)
			t.mux.dropTxn(id)
		}
	}
	t.txns[req.TransactionID] = pr
	t.mux.addTxn(req.TransactionID, t)
	pr.tries++
	if pr.validated {
		pr.nextCheck = now.Add(jitter(t.cfg.ConsentInterval))
	} else {
		pr.nextCheck = now.Add(checkRTO << min(pr.tries-1, 5))
	}
	_ = pr.p.write(req.Raw)
}

// tick sends the checks that are due and ends the transport when the
// selected path's consent expired.
func (t *Transport) tick(now time.Time) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	for _, pr := range t.pairs {
		switch {
		case pr == t.selected:
			if now.Sub(pr.lastReply) > t.cfg.ConsentTimeout {
				t.selected = nil
				t.mu.Unlock()
				t.log.Info("viewer consent expired", "addr", pr.p.addr())
				t.end(ErrConsentExpired)
				return
			}
			if !now.Before(pr.nextCheck) {
				t.checkLocked(pr, now)
			}
		case !pr.validated && pr.tries < maxCheckTries && !now.Before(pr.nextCheck):
			t.checkLocked(pr, now)
		}
	}
	t.mu.Unlock()
}

// jitter randomises d by ±20% (RFC 7675 §5.1).
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*mrand.Float64()))
}

func containsAddr(as []netip.AddrPort, a netip.AddrPort) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// addTCP takes an ICE-TCP connection whose first request for t verified;
// at most maxTCPPaths, and none once t is closed.
func (t *Transport) addTCP(p *tcpPath) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || len(t.tcps) >= maxTCPPaths {
		return false
	}
	t.tcps = append(t.tcps, p)
	return true
}

// pathClosed forgets a TCP path that ended.
func (t *Transport) pathClosed(p path) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.selected != nil && t.selected.p == p {
		t.selected = nil
	}
	for i, x := range t.pairs {
		if x.p == p {
			t.pairs = append(t.pairs[:i], t.pairs[i+1:]...)
			break
		}
	}
}

// enqueueRTCP keeps a copy of one SRTCP packet for ReadRTCP and tells the
// owner when the queue was empty. A full queue drops the packet.
func (t *Transport) enqueueRTCP(b []byte) {
	if len(b) > sendBuf {
		return
	}
	t.qmu.Lock()
	if len(t.queue) >= maxRTCPQueue {
		t.qmu.Unlock()
		t.mux.rtcpDropped.Add(1)
		return
	}
	buf, _ := bufs.Get().(*[sendBuf]byte)
	n := copy(buf[:], b)
	wasEmpty := len(t.queue) == 0
	t.queue = append(t.queue, buf)
	t.qlen = append(t.qlen, n)
	t.qmu.Unlock()
	if wasEmpty && t.cfg.OnRTCP != nil {
		t.cfg.OnRTCP()
	}
}

// ReadRTCP decrypts and parses the RTCP waiting from the viewer and hands
// each compound packet to fn, on the caller's goroutine. Packets that fail
// authentication or replay protection are dropped.
func (t *Transport) ReadRTCP(fn func([]rtcp.Packet)) {
	for {
		t.qmu.Lock()
		if len(t.queue) == 0 {
			t.qmu.Unlock()
			return
		}
		buf, n := t.queue[0], t.qlen[0]
		t.queue, t.qlen = t.queue[1:], t.qlen[1:]
		t.qmu.Unlock()
		t.rmu.Lock()
		var pkts []rtcp.Packet
		if t.in != nil {
			if plain, err := t.in.DecryptRTCP(t.rb[:0], buf[:n], nil); err == nil {
				t.lastSeen.Store(time.Now().UnixNano())
				var perr error
				if pkts, perr = rtcp.Unmarshal(plain); perr != nil {
					t.mux.malformed.Add(1)
					pkts = nil
				}
			}
		}
		t.rmu.Unlock()
		bufs.Put(buf)
		if len(pkts) > 0 {
			fn(pkts)
		}
	}
}

// WriteRTP encrypts one packet and sends it on the selected path
// (sfu.RTPWriter).
func (t *Transport) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.out == nil || t.selected == nil || t.closed {
		return 0, ErrNotConnected
	}
	n, err := h.MarshalTo(t.plain[:])
	if err != nil {
		return 0, err
	}
	pad := 0
	if h.Padding {
		pad = int(h.PaddingSize)
	}
	if n+len(payload)+pad+srtpMaxTag > len(t.plain) {
		return 0, ErrTooLarge
	}
	n += copy(t.plain[n:], payload)
	if pad > 0 {
		clear(t.plain[n : n+pad-1])
		t.plain[n+pad-1] = byte(pad)
		n += pad
	}
	sealed, err := t.out.EncryptRTP(t.sealed[:0], t.plain[:n], &t.hdr)
	if err != nil {
		return 0, err
	}
	if err := t.media.write(sealed); err != nil {
		return 0, err
	}
	return n, nil
}

// WriteRTCP encrypts and sends compound RTCP on the selected path.
func (t *Transport) WriteRTCP(pkts []rtcp.Packet) error {
	raw, err := rtcp.Marshal(pkts)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.out == nil || t.selected == nil || t.closed {
		return ErrNotConnected
	}
	if len(raw)+srtpMaxTag > len(t.sealed) {
		return ErrTooLarge
	}
	sealed, err := t.out.EncryptRTCP(t.sealed[:0], raw, nil)
	if err != nil {
		return err
	}
	return t.media.write(sealed)
}

// Idle reports whether the viewer has sent nothing for longer than d.
func (t *Transport) Idle(now time.Time, d time.Duration) bool {
	return now.UnixNano()-t.lastSeen.Load() > int64(d)
}

// Connected reports whether keys are agreed.
func (t *Transport) Connected() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.out != nil
}

// Addr returns the address media goes to, if a path is selected.
func (t *Transport) Addr() (netip.AddrPort, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.selected == nil {
		return netip.AddrPort{}, false
	}
	return t.selected.p.addr(), true
}

// end closes the transport because it ended on its own, and tells the
// owner once.
func (t *Transport) end(err error) {
	t.Close()
	t.endOnce.Do(func() {
		if t.cfg.OnClosed != nil {
			t.cfg.OnClosed(err)
		}
	})
}

// Close ends the transport: the data channel association, DTLS with a
// close_notify when it is still up, and every path. It does not wait for
// the handshake goroutine, and does not call OnClosed.
func (t *Transport) Close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	a, conn, dc := t.sctp, t.dtls, t.dconn
	ufrags, addrs, tcps := t.ufrags, t.addrs, t.tcps
	txns := t.txns
	t.txns = map[[stun.TransactionIDSize]byte]*pair{}
	t.held = nil
	t.mu.Unlock()
	for id := range txns {
		t.mux.dropTxn(id)
	}
	for _, tp := range tcps {
		tp.close()
	}
	t.mux.forget(t, ufrags, addrs, true)
	if a != nil {
		_ = a.Close()
	}
	if conn != nil {
		_ = conn.Close()
	}
	if dc != nil {
		_ = dc.buf.Close()
	}
	t.qmu.Lock()
	for _, b := range t.queue {
		bufs.Put(b)
	}
	t.queue, t.qlen = nil, nil
	t.qmu.Unlock()
}

// newUfrag returns an ICE username fragment: 8 random characters of
// ICE's alphabet (RFC 8839 §5.4); passwords are a whole rand.Text.
func newUfrag() string { return rand.Text()[:8] }
