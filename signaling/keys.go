package signaling

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
)

var (
	// ErrUnknownStream is returned for a stream that is not configured.
	ErrUnknownStream = errors.New("unknown stream")
	// ErrNoKey is returned when the request carried no bearer token.
	ErrNoKey = errors.New("missing stream key")
	// ErrBadKey is returned when the bearer token is not the stream's key.
	ErrBadKey = errors.New("wrong stream key")
)

// MinKeyLength is the shortest stream key accepted for a new stream.
const MinKeyLength = 16

// streamName is what a stream may be called: it appears in URLs and logs.
var streamName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidStreamName reports whether name can name a stream.
func ValidStreamName(name string) bool { return streamName.MatchString(name) }

// KeyFile holds each stream's key, persisted in the data directory so a
// generated key survives restarts. It is the node's own StreamKeys.
type KeyFile struct {
	path string
	mu   sync.RWMutex
	keys map[string]string
}

// keysFile is the file under the data directory that holds the keys.
const keysFile = "streams.json"

// LoadKeys reads the keys saved in dataDir, applies configured ones (which
// win), and, when no stream exists at all, creates "demo" with a random
// key. It returns the names of streams it created.
func LoadKeys(dataDir string, configured map[string]string) (*KeyFile, []string, error) {
	k := &KeyFile{path: filepath.Join(dataDir, keysFile), keys: map[string]string{}}
	raw, err := os.ReadFile(k.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, nil, err
	default:
		var saved struct {
			Streams map[string]string `json:"streams"`
		}
		if err := json.Unmarshal(raw, &saved); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", k.path, err)
		}
		maps.Copy(k.keys, saved.Streams)
	}
	changed := false
	for name, key := range configured {
		if !ValidStreamName(name) {
			return nil, nil, fmt.Errorf("stream name %q: use 1-64 letters, digits, '-' or '_'", name)
		}
		// A new key must be long enough not to be guessed; a shorter one
		// already in streams.json keeps working.
		if len(key) < MinKeyLength && k.keys[name] != key {
			return nil, nil, fmt.Errorf("stream %q: a new key must be at least %d characters", name, MinKeyLength)
		}
		if k.keys[name] != key {
			k.keys[name] = key
			changed = true
		}
	}
	var created []string
	if len(k.keys) == 0 {
		k.keys["demo"] = randomHex(16)
		created = append(created, "demo")
		changed = true
	}
	if changed {
		if err := k.save(); err != nil {
			return nil, nil, err
		}
	}
	return k, created, nil
}

// save writes the keys atomically: a crash leaves the old file or the new.
func (k *KeyFile) save() error {
	if err := os.MkdirAll(filepath.Dir(k.path), 0o700); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(struct {
		Streams map[string]string `json:"streams"`
	}{k.keys}, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(k.path), ".streams-*.json")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), k.path)
}

// Known reports whether a stream is configured.
func (k *KeyFile) Known(stream string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	_, ok := k.keys[stream]
	return ok
}

// Check verifies a bearer token for a stream in constant time.
func (k *KeyFile) Check(stream, token string) error {
	k.mu.RLock()
	key, ok := k.keys[stream]
	k.mu.RUnlock()
	switch {
	case !ok:
		return ErrUnknownStream
	case token == "":
		return ErrNoKey
	case subtle.ConstantTimeCompare([]byte(key), []byte(token)) != 1:
		return ErrBadKey
	}
	return nil
}

// StreamOf returns the stream a key opens, for encoders that are given a
// key alone (RTMP: rtmp://host/live and the key). Every stream's key is
// compared, in constant time, whatever matches: ErrNoKey or ErrBadKey
// when none does.
func (k *KeyFile) StreamOf(key string) (string, error) {
	if key == "" {
		return "", ErrNoKey
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	found := ""
	for name, want := range k.keys {
		if subtle.ConstantTimeCompare([]byte(want), []byte(key)) == 1 {
			found = name
		}
	}
	if found == "" {
		return "", ErrBadKey
	}
	return found, nil
}

// Names returns the stream names, sorted.
func (k *KeyFile) Names() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return slices.Sorted(maps.Keys(k.keys))
}

// Path returns the file the keys are kept in.
func (k *KeyFile) Path() string { return k.path }

// Key returns a stream's key, for printing when it is created.
func (k *KeyFile) Key(stream string) string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keys[stream]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
