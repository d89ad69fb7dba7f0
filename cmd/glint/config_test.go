package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func envOf(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
}

func TestDefaults(t *testing.T) {
	c, err := loadConfig(nil, envOf(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":8080" || c.RTC.Port != 8443 || !c.RTC.TCP || c.SFU.ReconnectGrace != 60*time.Second || len(c.StreamKeys) != 0 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestSampleConfigLoads(t *testing.T) {
	c, err := loadConfig([]string{"--config", "../../examples/glint.yaml"}, envOf(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.StreamKeys["studio"] != "another-long-random-key" || c.SFU.KeyframeInterval != 500*time.Millisecond {
		t.Fatalf("sample config: %+v", c)
	}
}

func TestFlagsWinOverEnvironmentOverFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "glint.yaml")
	if err := os.WriteFile(file, []byte("listen: ':1000'\nrtc-port: 1001\nreconnect-grace: 5s\nrtc-ip: [10.0.0.1, 10.0.0.2]\n"+
		"stream-key: {a: aaaaaaaaaa}\nice-server:\n  - url: turn:t.example:3478\n    username: u\n    credential: c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := envOf(map[string]string{"GLINT_CONFIG": file, "GLINT_RTC_PORT": "2001", "GLINT_RECONNECT_GRACE": "7s", "GLINT_RTC_IP": "127.0.0.1 127.0.0.2"})
	c, err := loadConfig([]string{"--reconnect-grace", "9s", "--stream-key", "b=bbbbbbbbbb"}, env, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case c.Listen != ":1000":
		t.Errorf("listen %q: the file's value should stand", c.Listen)
	case c.RTC.Port != 2001:
		t.Errorf("rtc-port %d: the environment should win over the file", c.RTC.Port)
	case c.SFU.ReconnectGrace != 9*time.Second:
		t.Errorf("reconnect-grace %v: the flag should win", c.SFU.ReconnectGrace)
	case !reflect.DeepEqual(c.RTC.IPs, []string{"127.0.0.1", "127.0.0.2"}):
		t.Errorf("rtc-ip %v: the environment's list should replace the file's", c.RTC.IPs)
	case !reflect.DeepEqual(c.StreamKeys, map[string]string{"b": "bbbbbbbbbb"}):
		t.Errorf("stream keys %v: the flags' list should replace the file's", c.StreamKeys)
	case len(c.Signaling.ICEServers) != 1 || c.Signaling.ICEServers[0].Username != "u":
		t.Errorf("ice servers %+v", c.Signaling.ICEServers)
	}
}

func TestBadConfigIsRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "glint.yaml")
	_ = os.WriteFile(file, []byte("lisen: ':1'\n"), 0o600)
	for _, args := range [][]string{
		{"--config", file},
		{"--rtc-port", "70000"},
		{"--reconnect-grace", "soon"},
		{"--stream-key", "nokey"},
		{"--public-ip", "not-an-ip"},
		{"--log-level", "loud"},
		{"stray"},
	} {
		if _, err := loadConfig(args, envOf(nil), &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestHelpDocumentsEverySetting(t *testing.T) {
	var out bytes.Buffer
	_, err := loadConfig([]string{"--help"}, envOf(nil), &out)
	if err == nil {
		t.Fatal("--help should stop")
	}
	c := defaultConfig()
	for _, s := range c.settings() {
		if !strings.Contains(out.String(), "--"+s.name+"\n") || !strings.Contains(out.String(), s.env()) || s.help == "" {
			t.Errorf("--help does not document %s", s.name)
		}
	}
}

func TestChatSettings(t *testing.T) {
	c, err := loadConfig([]string{"--badge-tier", "A=100", "--badge-tier", "B=200", "--badge-tier", "C=300", "--chat-rate", "0.5",
		"--chat-anonymous=false", "--redis", "redis://127.0.0.1:6379/2"}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Chat.Chat.Tiers[2].Name != "C" || c.Chat.Chat.Tiers[0].Cents != 100 || c.Chat.Chat.Rate != 0.5 || c.Chat.Chat.Anonymous || c.Chat.Redis == "" {
		t.Fatalf("chat settings not applied: %+v", c.Chat)
	}
	for _, bad := range [][]string{
		{"--badge-tier", "A=100"},
		{"--badge-tier", "A=x", "--badge-tier", "B=1", "--badge-tier", "C=2"},
		{"--chat-secret", "short"},
		{"--api-key", "short"},
		{"--payments", "paypal"},
		{"--payments", "webhook"},
		{"--payments", "webhook", "--payments-checkout-url", "http://pay.example/{order}", "--payments-webhook-secret", "0123456789abcdef"},
		{"--chat-max-length", "0"},
		{"--chat-send-queue", "2"},
	} {
		if _, err := loadConfig(bad, envOf(nil), io.Discard); err == nil {
			t.Errorf("%v was accepted", bad)
		}
	}
	if _, err := loadConfig([]string{"--payments", "webhook", "--payments-checkout-url", "https://pay.example/c?o={order}",
		"--payments-webhook-secret", "0123456789abcdef"}, envOf(nil), io.Discard); err != nil {
		t.Errorf("a good webhook configuration: %v", err)
	}
}

// A boolean flag alone means true, and takes =false.
func TestBooleanFlagsStandAlone(t *testing.T) {
	cfg, err := loadConfig([]string{"--hls-off", "--vod-off=false", "--rtc-tcp"}, envOf(nil), io.Discard)
	if err != nil || !cfg.HLSOff || cfg.VODOff || !cfg.RTC.TCP {
		t.Fatalf("%v: hls-off %v vod-off %v rtc-tcp %v", err, cfg.HLSOff, cfg.VODOff, cfg.RTC.TCP)
	}
}
