package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/glintlive/glint/internal/redisx"
)

// Node is one node of the mesh as the directory holds it: where it is
// reached, how much it can take and how loaded it is now.
type Node struct {
	ID string `json:"id"`
	// URL is the node's HTTP base (WHIP, WHEP, the API), as other nodes
	// and clients reach it.
	URL string `json:"url"`
	// Media is the host:port its WebRTC media uses (UDP, and ICE-TCP).
	Media string `json:"media,omitempty"`
	// Capacity is the most WebRTC viewers it takes (0: no bound but its
	// session limit); Viewers how many it has.
	Capacity int `json:"capacity"`
	Viewers  int `json:"viewers"`
	// EgressBPS is the media it sends, in bit/s; CPU the share of its
	// cores in use (0 to 1).
	EgressBPS int64   `json:"egress_bps"`
	CPU       float64 `json:"cpu"`
	// Origins are the live streams published on it; Relays those it
	// relays in, and from which node; Children the relay sessions it
	// serves to other nodes.
	Origins  []string          `json:"origins,omitempty"`
	Relays   map[string]string `json:"relays,omitempty"`
	Children int               `json:"relay_children"`
	Updated  time.Time         `json:"updated"`
}

// Room reports whether the node takes another viewer.
func (n Node) Room() bool { return n.Capacity <= 0 || n.Viewers < n.Capacity }

// Directory is the mesh's shared state in Redis: each node's record,
// kept alive by its heartbeat (a key that expires when the node stops
// refreshing it), and each live stream's origin.
type Directory struct {
	c      *redis.Client
	prefix string
	ttl    time.Duration
	log    *slog.Logger
}

// DefaultTTL is how long a node's record outlives its last heartbeat;
// nodes refresh it three times as often.
const DefaultTTL = 6 * time.Second

// Open connects to the Redis at url (redis://host:port/db).
func Open(ctx context.Context, rawURL string, log *slog.Logger) (*Directory, error) {
	c, err := redisx.Dial(ctx, rawURL, time.Second, 2*time.Second)
	if err != nil {
		return nil, err
	}
	return &Directory{c: c, prefix: "glint:mesh:", ttl: DefaultTTL, log: log}, nil
}

// Close closes the connection.
func (d *Directory) Close() error { return d.c.Close() }

func (d *Directory) nodeKey(id string) string       { return d.prefix + "node:" + id }
func (d *Directory) originKey(stream string) string { return d.prefix + "origin:" + stream }

// Announce writes n's record (one heartbeat) and claims its origins: each
// of n.Origins names n as its origin, for as long as the record lives.
func (d *Directory) Announce(ctx context.Context, n Node) error {
	n.Updated = time.Now().UTC()
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	p := d.c.Pipeline()
	p.Set(ctx, d.nodeKey(n.ID), b, d.ttl)
	for _, s := range n.Origins {
		claimScript.Eval(ctx, p, []string{d.originKey(s)}, n.ID, d.ttl.Milliseconds()) // EVAL: a pipeline cannot fall back from EVALSHA
	}
	_, err = p.Exec(ctx)
	return err
}

// claimScript sets an origin key to a node unless another node holds it
// (it expires when that node stops refreshing it): two nodes that both
// have a publisher do not take the key from each other every heartbeat.
//
//nolint:gochecknoglobals // a compiled script, read-only
var claimScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// releaseScript deletes an origin key if it names the node.
//
//nolint:gochecknoglobals // a compiled script, read-only
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Release lets go of stream's origin key if node id holds it: a node
// whose publisher moved elsewhere hands the stream on at once.
func (d *Directory) Release(ctx context.Context, id, stream string) error {
	return releaseScript.Run(ctx, d.c, []string{d.originKey(stream)}, id).Err()
}

// Withdraw removes node id's record and the origins it claims, as a node
// that stops cleanly does.
func (d *Directory) Withdraw(ctx context.Context, id string, origins []string) error {
	err := d.c.Del(ctx, d.nodeKey(id)).Err()
	for _, s := range origins {
		err = errors.Join(err, d.Release(ctx, id, s))
	}
	return err
}

// Nodes returns the live nodes, sorted by ID. A record that does not read
// as a node (garbage someone wrote, a URL that is not http(s)) is left
// out with a log line, never followed.
func (d *Directory) Nodes(ctx context.Context) ([]Node, error) {
	keys, err := d.scan(ctx, d.nodeKey("*"))
	if err != nil || len(keys) == 0 {
		return []Node{}, err
	}
	vals, err := d.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	out := []Node{}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // expired between the scan and the read
		}
		n, ok := decodeNode([]byte(s), strings.TrimPrefix(keys[i], d.nodeKey("")))
		if !ok {
			d.log.Warn("mesh: a node record that does not read is ignored", "key", keys[i])
			continue
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// validNode checks a record read back under id.
func validNode(n Node, id string) error {
	if n.ID == "" || n.ID != id || len(n.ID) > 64 {
		return errors.New("bad id")
	}
	u, err := url.Parse(n.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("bad url")
	}
	return nil
}

// Origins returns each live stream's origin node.
func (d *Directory) Origins(ctx context.Context) (map[string]string, error) {
	keys, err := d.scan(ctx, d.originKey("*"))
	out := map[string]string{}
	if err != nil || len(keys) == 0 {
		return out, err
	}
	vals, err := d.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[strings.TrimPrefix(keys[i], d.originKey(""))] = s
		}
	}
	return out, nil
}

// Origin returns the node a stream is published on, if any.
func (d *Directory) Origin(ctx context.Context, stream string) (Node, bool, error) {
	id, err := d.c.Get(ctx, d.originKey(stream)).Result()
	if errors.Is(err, redis.Nil) {
		return Node{}, false, nil
	}
	if err != nil {
		return Node{}, false, err
	}
	b, err := d.c.Get(ctx, d.nodeKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Node{}, false, nil
	}
	if err != nil {
		return Node{}, false, err
	}
	n, ok := decodeNode(b, id)
	if !ok {
		d.log.Warn("mesh: a node record that does not read is ignored", "node", id)
	}
	return n, ok, nil
}

// decodeNode reads the record stored under id, if it is a valid one.
func decodeNode(b []byte, id string) (Node, bool) {
	var n Node
	if json.Unmarshal(b, &n) != nil || validNode(n, id) != nil {
		return Node{}, false
	}
	return n, true
}

func (d *Directory) scan(ctx context.Context, match string) ([]string, error) {
	var keys []string
	iter := d.c.Scan(ctx, 0, match, 256).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	slices.Sort(keys)
	return keys, iter.Err()
}

// SharedSecret returns the cluster secret every node on this Redis uses:
// the first node's candidate, stored once.
func (d *Directory) SharedSecret(ctx context.Context, candidate string) (string, error) {
	key := d.prefix + "secret"
	if err := d.c.SetNX(ctx, key, candidate, 0).Err(); err != nil {
		return "", err
	}
	return d.c.Get(ctx, key).Result()
}

// NewID returns a node ID: the given name, or a random one.
func NewID(name string) string {
	if name != "" {
		return name
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "node-" + hex.EncodeToString(b)
}
