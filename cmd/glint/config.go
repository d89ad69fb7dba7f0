package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/glintlive/glint/hlsbridge"
	"github.com/glintlive/glint/sfu"
	"github.com/glintlive/glint/sfu/peer"
	"github.com/glintlive/glint/signaling"
	"github.com/glintlive/glint/transcode"
)

// Config is a node's whole configuration. Each package owns its part, with
// its own defaults and Validate; this composes them.
type Config struct {
	ConfigFile string
	Listen     string
	Debug      string
	// MetricsListen serves /metrics on an address of its own, and not on
	// Listen; empty serves it on Listen.
	MetricsListen string
	GCPercent     int
	// FanoutWorkers sets sfu.Config.Workers: 0 is one per core, -1 none.
	FanoutWorkers int
	DataDir       string
	LogLevel      string
	StreamKeys    map[string]string
	RTC           peer.Config
	SFU           sfu.Config
	Signaling     signaling.Config
	Chat          ChatConfig
	// HLS packages live streams as LL-HLS at /hls/{stream}/index.m3u8.
	HLS    hlsbridge.Config
	HLSOff bool
	VODOff bool
	// Mesh places the node among those sharing the chat's Redis.
	Mesh MeshConfig
	// RTMPListen takes RTMP publishers (OBS, hardware encoders); empty
	// turns it off. RTMPSListen takes them over TLS, with the PEM
	// certificate and key files RTMPSCert and RTMPSKey.
	RTMPListen          string
	RTMPSListen         string
	RTMPSCert, RTMPSKey string
	// SRTListen takes SRT callers (a UDP address); empty turns it off.
	SRTListen  string
	SRTLatency time.Duration
}

func defaultConfig() Config {
	return Config{
		Listen:     ":8080",
		DataDir:    "./glint-data",
		LogLevel:   "info",
		GCPercent:  25,
		StreamKeys: map[string]string{},
		RTC:        peer.DefaultConfig(),
		SFU:        sfu.DefaultConfig(),
		Signaling:  signaling.DefaultConfig(),
		Chat:       defaultChatConfig(),
		HLS:        defaultHLS(),
		Mesh:       MeshConfig{Fanout: 8, Linger: 10 * time.Second},
		RTMPListen: ":1935",
		SRTLatency: 120 * time.Millisecond,
	}
}

// defaultHLS is the bridge's defaults with the ffmpeg on PATH as the
// transcoder.
func defaultHLS() hlsbridge.Config {
	c := hlsbridge.DefaultConfig()
	c.FFmpeg = "ffmpeg"
	return c
}

// Validate checks every part.
func (c *Config) Validate() error {
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log-level %q: use debug, info, warn or error", c.LogLevel)
	}
	if c.FanoutWorkers < -1 || c.FanoutWorkers > 256 {
		return fmt.Errorf("fanout-workers %d: use -1 (none), 0 (one per core) or up to 256", c.FanoutWorkers)
	}
	if c.GCPercent < 5 || c.GCPercent > 1000 {
		return fmt.Errorf("gc-percent %d: use 5..1000", c.GCPercent)
	}
	if c.Listen == "" || c.DataDir == "" {
		return errors.New("listen and data-dir must not be empty")
	}
	return errors.Join(c.RTC.Validate(), c.SFU.Validate(), c.Signaling.Validate(), c.Chat.Validate(), c.HLS.Validate())
}

// setting is one configurable value: the same name in the YAML file, as
// GLINT_NAME in the environment and as --name on the command line.
type setting struct {
	name, help string
	flag       bool // a boolean: --name alone means true
	set        func(string) error
	reset      func() // lists: cleared before each source's first value
	show       func() string
}

func (s *setting) env() string {
	return "GLINT_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

func (c *Config) settings() []*setting {
	str := func(name, help string, p *string) *setting {
		return &setting{name: name, help: help, set: func(v string) error { *p = v; return nil }, show: func() string { return *p }}
	}
	num := func(name, help string, p *int) *setting {
		return &setting{name: name, help: help, set: func(v string) (err error) { *p, err = strconv.Atoi(v); return err },
			show: func() string { return strconv.Itoa(*p) }}
	}
	float := func(name, help string, p *float64) *setting {
		return &setting{name: name, help: help, set: func(v string) (err error) { *p, err = strconv.ParseFloat(v, 64); return err },
			show: func() string { return strconv.FormatFloat(*p, 'g', -1, 64) }}
	}
	dur := func(name, help string, p *time.Duration) *setting {
		return &setting{name: name, help: help, set: func(v string) (err error) { *p, err = time.ParseDuration(v); return err },
			show: func() string { return p.String() }}
	}
	boolean := func(name, help string, p *bool) *setting {
		return &setting{name: name, help: help, flag: true, set: func(v string) (err error) { *p, err = strconv.ParseBool(v); return err },
			show: func() string { return strconv.FormatBool(*p) }}
	}
	list := func(name, help string, p *[]string) *setting {
		return &setting{name: name, help: help,
			set:   func(v string) error { *p = append(*p, v); return nil },
			reset: func() { *p = nil },
			show:  func() string { return strings.Join(*p, ",") }}
	}
	return append([]*setting{
		str("config", "YAML file with any of these settings, by name", &c.ConfigFile),
		str("listen", "HTTP address for WHIP, WHEP, the API and the pages", &c.Listen),
		str("metrics-listen", "address for /metrics on a listener of its own (then not on listen); empty serves it on listen", &c.MetricsListen),
		str("debug-listen", "address for Go's /debug/pprof profiles (off when empty; keep it on localhost)", &c.Debug),
		str("data-dir", "directory for stream keys (streams.json) and, later, recordings", &c.DataDir),
		str("log-level", "debug, info, warn or error", &c.LogLevel),
		num("fanout-workers", "goroutines that send a stream's packets to its viewers, each with its share of the viewers, so one stream uses every core: 0 is one per core (GOMAXPROCS; none on a single core); -1 sends to every viewer from the publisher's reader, one after another", &c.FanoutWorkers),
		num("gc-percent", "Go's GC target (GOGC): heap growth before a collection, in percent. The media path allocates nothing, so a low target saves memory per viewer (395 KB at 100, 250 KB at 25 with 200 viewers) for no measurable CPU", &c.GCPercent),
		{name: "stream-key", help: "NAME=KEY defines a stream and its publishing key (repeatable); with none, a 'demo' stream with a random key is created",
			set: func(v string) error {
				name, key, ok := strings.Cut(v, "=")
				if !ok || name == "" {
					return fmt.Errorf("%q is not NAME=KEY", v)
				}
				c.StreamKeys[name] = key
				return nil
			},
			reset: func() { c.StreamKeys = map[string]string{} },
			show:  func() string { return "" }},
		str("node-id", "this node's name in the mesh of nodes sharing --redis (default a random one)", &c.Mesh.NodeID),
		num("relay-fanout", "most relay sessions of one stream a node serves to other nodes; past it, new relays attach to existing ones (a tree)", &c.Mesh.Fanout),
		dur("relay-linger", "how long a relay of a stream stays after the node's last viewer of it leaves", &c.Mesh.Linger),
		str("cluster-secret", "secret (32+ characters) nodes of a mesh authenticate relays with; every node must have the same. Empty: generated by the first node and shared through Redis", &c.Mesh.Secret),
		str("advertise-url", "the HTTP base other nodes and viewers reach this node at, for the mesh (default http:// and the listen address)", &c.Mesh.AdvertiseURL),
		num("rtc-port", "UDP port for all WebRTC media; ICE-TCP listens on the same TCP port", &c.RTC.Port),
		list("rtc-ip", "local IP to gather candidates on (repeatable; default every non-loopback interface; 127.0.0.1 for loopback only)", &c.RTC.IPs),
		list("public-ip", "IP to advertise in ICE candidates instead of the local one, behind 1:1 NAT (repeatable); no STUN lookups happen", &c.RTC.PublicIPs),
		boolean("rtc-tcp", "also accept ICE-TCP on rtc-port, for networks that block UDP", &c.RTC.TCP),
		dur("ice-disconnected-timeout", "silence after which a peer counts as disconnected", &c.RTC.ICEDisconnectedTimeout),
		dur("ice-failed-timeout", "further silence after which a peer counts as gone", &c.RTC.ICEFailedTimeout),
		boolean("hls-off", "do not package live streams as LL-HLS (/hls/{stream}/index.m3u8)", &c.HLSOff),
		boolean("vod-off", "do not record live streams (DATA_DIR/vod, served at /vod/{stream}/{start}/index.m3u8); recordings are kept until deleted", &c.VODOff),
		dur("vod-retention", "delete recordings that started longer ago than this (checked at start and hourly); 0 keeps them", &c.HLS.Retention),
		dur("hls-part", "least duration of an LL-HLS part", &c.HLS.PartDuration),
		dur("hls-segment", "least duration of an LL-HLS segment; segments end at keyframes, so publishers should send one at least this often", &c.HLS.SegmentDuration),
		boolean("hls-opus", "keep H.264 publishers' Opus as Opus in LL-HLS instead of making AAC of it with ffmpeg (AAC plays everywhere; Opus in fMP4 in browsers with Media Source Extensions and recent Safari)", &c.HLS.OpusAudio),
		str("ffmpeg", "ffmpeg binary of the HLS transcoder, which packages VP8, VP9 and AV1 publishers (and every one with hls-ladder) as H.264 and AAC; its encoder is probed at start (NVENC, VAAPI, QSV, then libx264); empty turns the transcoder off", &c.HLS.FFmpeg),
		{name: "captions-command", help: "speech-to-text program and arguments (split on spaces) run over each ended recording's audio, a 16 kHz mono WAV whose path replaces {audio} (or is added last); it prints WebVTT, which becomes the VOD's captions. Empty: no captions",
			set:  func(v string) error { c.HLS.Captions = strings.Fields(v); return nil },
			show: func() string { return strings.Join(c.HLS.Captions, " ") }},
		{name: "hls-ladder", help: "rendition heights the transcoder makes, as far as the source allows (default 1080,720,480,360, for VP8/VP9/AV1 publishers); set, H.264 publishers are transcoded into it too instead of packaging their simulcast layers",
			set: func(v string) error {
				l, err := transcode.ParseLadder(v)
				c.HLS.Ladder, c.HLS.TranscodeAll = l, err == nil
				return err
			},
			show: func() string {
				if !c.HLS.TranscodeAll {
					return ""
				}
				return strings.Trim(strings.Join(strings.Fields(fmt.Sprint(c.HLS.Ladder)), ","), "[]")
			}},
		str("rtmp-listen", "address RTMP publishers connect to (rtmp://HOST/live with the stream key, as in OBS); their H.264 and AAC go through ffmpeg into WebRTC layers and Opus. Empty turns RTMP off", &c.RTMPListen),
		str("rtmps-listen", "address RTMPS (RTMP over TLS) publishers connect to, with rtmps-cert and rtmps-key; empty: none", &c.RTMPSListen),
		str("rtmps-cert", "PEM certificate (chain) file of the RTMPS listener", &c.RTMPSCert),
		str("rtmps-key", "PEM private key file of the RTMPS listener", &c.RTMPSKey),
		str("srt-listen", "UDP address SRT encoders call (srt://HOST:PORT?streamid=publish:{stream}:{key}, MPEG-TS with H.264 or H.265 and AAC or Opus); empty: off", &c.SRTListen),
		dur("srt-latency", "SRT's receive buffer: the jitter and repair time it absorbs (added to the stream's latency)", &c.SRTLatency),
		dur("reconnect-grace", "how long viewers wait for a dropped publisher to come back", &c.SFU.ReconnectGrace),
		dur("guest-grace", "how long a Live Room guest's tile waits for the guest's dropped connection to come back (0: reconnect-grace)", &c.SFU.GuestGrace),
		dur("invite-ttl", "how long a Live Room guest invite can be used (1m to 168h)", &c.Signaling.InviteTTL),
		dur("keyframe-interval", "least time between keyframe requests to a publisher (requests coalesce)", &c.SFU.KeyframeInterval),
		dur("keyframe-cache", "a new viewer starts from a cached keyframe this recent instead of asking for one (adds up to this much latency at its start; 0 turns it off)", &c.SFU.KeyframeCache),
		num("max-sessions", "most WHIP+WHEP sessions on this node; beyond it offers get 503", &c.Signaling.MaxSessions),
		num("publisher-slots", "sessions of max-sessions kept for WHIP publishers, which viewers never take", &c.Signaling.PublisherSlots),
		num("max-viewers-per-address", "most WHEP sessions from one client address (an IPv6 /64); beyond it 429", &c.Signaling.MaxViewersPerAddress),
		num("max-viewers-per-stream", "most WHEP sessions of one stream on this node; 0 for no bound but max-sessions", &c.Signaling.MaxViewersPerStream),
		num("max-viewers", "most WHEP sessions on this node (0: only max-sessions bounds them); past it, or past max-viewers-per-stream, a stream packaged as LL-HLS sends its new viewers there (503 with a Link)", &c.Signaling.MaxViewers),
		float("offer-rate", "WHIP and WHEP offers per second one client address may make (with offer-burst at once); beyond it 429 with Retry-After; 0 turns it off", &c.Signaling.OfferRate),
		num("offer-burst", "offers one client address may make at once", &c.Signaling.OfferBurst),
		num("key-failures", "wrong stream keys one address may send before each further one blocks it for twice as long as the last (1 s up to 1 min), answered 429", &c.Signaling.KeyFailures),
		list("cors-origin", "origin allowed to call the endpoints from a browser (repeatable; * for any)", &c.Signaling.CORSOrigins),
		{name: "ice-server", help: "STUN/TURN server advertised to clients as URL[,USERNAME,CREDENTIAL] (repeatable); Glint never contacts it",
			set: func(v string) error {
				f := strings.Split(v, ",")
				s := signaling.ICEServer{URL: f[0]}
				if len(f) == 3 {
					s.Username, s.Credential = f[1], f[2]
				} else if len(f) != 1 {
					return fmt.Errorf("%q is not URL[,USERNAME,CREDENTIAL]", v)
				}
				c.Signaling.ICEServers = append(c.Signaling.ICEServers, s)
				return nil
			},
			reset: func() { c.Signaling.ICEServers = nil },
			show:  func() string { return "" }},
	}, c.Chat.settings(str, num, boolean)...)
}

// rawValue collects a flag's raw values in order, to apply after the file
// and the environment.
type rawValue struct {
	name string
	out  *[][2]string
}

func (r rawValue) String() string { return "" }
func (r rawValue) Set(v string) error {
	*r.out = append(*r.out, [2]string{r.name, v})
	return nil
}

// rawBool is a boolean setting's flag: --name alone is --name=true.
type rawBool struct{ rawValue }

func (rawBool) IsBoolFlag() bool { return true }

// loadConfig builds the configuration from defaults, then the YAML file,
// then the environment, then flags: later sources win.
func loadConfig(args []string, env func(string) (string, bool), usage io.Writer) (Config, error) {
	c := defaultConfig()
	settings := c.settings()
	fs := flag.NewFlagSet("glint serve", flag.ContinueOnError)
	fs.SetOutput(usage)
	var fromFlags [][2]string
	for _, s := range settings {
		if s.flag {
			fs.Var(rawBool{rawValue{s.name, &fromFlags}}, s.name, s.help)
		} else {
			fs.Var(rawValue{s.name, &fromFlags}, s.name, s.help)
		}
	}
	fs.Usage = func() { printUsage(usage, defaultConfig()) }
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	byName := map[string]*setting{}
	for _, s := range settings {
		byName[s.name] = s
	}
	// Which file: a flag wins over the environment.
	file, _ := env("GLINT_CONFIG")
	for _, kv := range fromFlags {
		if kv[0] == "config" {
			file = kv[1]
		}
	}
	var fromFile, fromEnv [][2]string
	if file != "" {
		var err error
		if fromFile, err = readConfigFile(file); err != nil {
			return c, err
		}
	}
	for _, s := range settings {
		v, ok := env(s.env())
		if !ok {
			continue
		}
		if s.reset != nil { // lists: space-separated
			for _, item := range strings.Fields(v) {
				fromEnv = append(fromEnv, [2]string{s.name, item})
			}
			continue
		}
		fromEnv = append(fromEnv, [2]string{s.name, v})
	}
	for _, src := range []struct {
		what string
		kvs  [][2]string
	}{{"config file", fromFile}, {"environment", fromEnv}, {"flag", fromFlags}} {
		cleared := map[string]bool{}
		for _, kv := range src.kvs {
			s := byName[kv[0]]
			if s == nil {
				return c, fmt.Errorf("%s: unknown setting %q", src.what, kv[0])
			}
			if s.reset != nil && !cleared[s.name] {
				s.reset()
				cleared[s.name] = true
			}
			if err := s.set(kv[1]); err != nil {
				return c, fmt.Errorf("%s: %s: %w", src.what, s.name, err)
			}
		}
	}
	c.ConfigFile = file
	err := c.Validate()
	return c, err
}

// readConfigFile reads a YAML mapping of setting names to values; lists are
// YAML sequences, stream-key a mapping of names to keys.
func readConfigFile(path string) ([][2]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: top level must be a mapping of setting names", path)
	}
	var out [][2]string
	for i := 0; i+1 < len(m.Content); i += 2 {
		name, v := m.Content[i].Value, m.Content[i+1]
		switch v.Kind {
		case yaml.ScalarNode:
			out = append(out, [2]string{name, v.Value})
		case yaml.SequenceNode:
			for _, item := range v.Content {
				if item.Kind == yaml.MappingNode { // ice-server: {url, username, credential}
					var s signaling.ICEServer
					if err := item.Decode(&s); err != nil {
						return nil, fmt.Errorf("%s: %s: %w", path, name, err)
					}
					val := s.URL
					if s.Username != "" {
						val += "," + s.Username + "," + s.Credential
					}
					out = append(out, [2]string{name, val})
					continue
				}
				out = append(out, [2]string{name, item.Value})
			}
		case yaml.MappingNode:
			for j := 0; j+1 < len(v.Content); j += 2 {
				out = append(out, [2]string{name, v.Content[j].Value + "=" + v.Content[j+1].Value})
			}
		default:
			return nil, fmt.Errorf("%s: %s: unsupported value", path, name)
		}
	}
	return out, nil
}

func printUsage(w io.Writer, def Config) {
	fmt.Fprint(w, `Usage: glint serve [flags]

Runs one Glint node: WHIP ingest, WHEP playback, the API and the web pages.
Every setting can also come from the YAML file given by --config (same
names) or from the environment (GLINT_ and the name in capitals, '-' as '_';
lists space-separated). Flags win over the environment, which wins over the
file.

`)
	for _, s := range def.settings() {
		fmt.Fprintf(w, "  --%s\n      %s\n      env %s", s.name, s.help, s.env())
		if d := s.show(); d != "" {
			fmt.Fprintf(w, "; default %s", d)
		}
		fmt.Fprintln(w)
	}
}
