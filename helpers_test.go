package redistore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gorilla/sessions"
	"github.com/redis/rueidis"

	"github.com/redisession/redistore/internal/redistest"
)

// One redis-server serves every test of this package that wants one;
// each test works under its own random key prefix.
var shared struct {
	once sync.Once
	srv  *redistest.Server
	err  error
}

// One Redis Cluster (3 primaries, 3 replicas) likewise.
var sharedCluster struct {
	once sync.Once
	c    *redistest.Cluster
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Stop()
	}
	if sharedCluster.c != nil {
		sharedCluster.c.Stop()
	}
	os.Exit(code)
}

func clusterServer(t testing.TB) *redistest.Cluster {
	t.Helper()
	redistest.Need(t, "redis-server")
	redistest.Need(t, "redis-cli")
	sharedCluster.once.Do(func() {
		dir, err := os.MkdirTemp("", "redistore-cluster-")
		if err != nil {
			sharedCluster.err = err
			return
		}
		sharedCluster.c, sharedCluster.err = redistest.StartCluster(dir, 3, 1)
	})
	if sharedCluster.err != nil {
		t.Fatalf("starting a Redis Cluster: %v", sharedCluster.err)
	}
	return sharedCluster.c
}

func realServer(t testing.TB) *redistest.Server {
	t.Helper()
	redistest.Need(t, "redis-server")
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "redistore-test-")
		if err != nil {
			shared.err = err
			return
		}
		shared.srv, shared.err = redistest.Start(dir)
	})
	if shared.err != nil {
		t.Fatalf("starting redis-server: %v", shared.err)
	}
	return shared.srv
}

// target is a Redis server a test runs against: miniredis, or the real one.
type target struct {
	name    string
	client  rueidis.Client
	mini    *miniredis.Miniredis // nil on the real server
	cluster *redistest.Cluster   // set on the Redis Cluster
	addr    string
	prefix  string // unique to the test
}

// advance moves the server's clock: miniredis jumps, the real server is
// waited for.
func (tg *target) advance(t testing.TB, d time.Duration) {
	t.Helper()
	if tg.mini != nil {
		tg.mini.SetTime(tg.now().Add(d))
		tg.mini.FastForward(d)
		return
	}
	time.Sleep(d)
}

func (tg *target) now() time.Time {
	res, err := serverTime(tg.client.Do(context.Background(), tg.client.B().Time().Build()))
	if err != nil {
		panic(err)
	}
	return res
}

// do runs one command and fails the test on a transport error.
func (tg *target) do(t testing.TB, args ...string) resultT {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b := tg.client.B().Arbitrary(args[0])
	if len(args) > 1 && !keyless[strings.ToUpper(args[0])] {
		// The first argument is the key: a cluster routes by it.
		return resultT{tg.client.Do(ctx, b.Keys(args[1]).Args(args[2:]...).Build())}
	}
	return resultT{tg.client.Do(ctx, b.Args(args[1:]...).Build())}
}

// keyless are the commands tests send whose first argument is not a key.
var keyless = map[string]bool{"DBSIZE": true, "TIME": true, "SCAN": true, "INFO": true, "CONFIG": true, "OBJECT": true}

// servers are what every behaviour test runs on.
var servers = []struct {
	name string
	open func(t *testing.T) *target
}{
	{"miniredis", func(t *testing.T) *target { return newMiniTarget(t) }},
	{"redis-server", newRealTarget},
	{"redis-cluster", newClusterTarget},
}

// forEachTarget runs fn against miniredis and the real server, as subtests.
func forEachTarget(t *testing.T, fn func(t *testing.T, tg *target)) {
	t.Helper()
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			fn(t, srv.open(t))
		})
	}
}

// forEachMode runs fn in both modes on both servers.
func forEachMode(t *testing.T, fn func(t *testing.T, tg *target, mode Mode)) {
	t.Helper()
	forEachTarget(t, func(t *testing.T, tg *target) {
		for _, mode := range []Mode{HashMode, StringMode} {
			t.Run(mode.String(), func(t *testing.T) {
				tg.prefix = randomPrefix()
				fn(t, tg, mode)
			})
		}
	})
}

func newMiniTarget(t testing.TB) *target {
	t.Helper()
	m := miniredis.RunT(t)
	m.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       []string{m.Addr()},
		DisableCache:      true,
		ForceSingleClient: true,
	})
	if err != nil {
		t.Fatalf("connecting to miniredis: %v", err)
	}
	t.Cleanup(c.Close)
	return &target{name: "miniredis", client: c, mini: m, addr: m.Addr(), prefix: randomPrefix()}
}

func newRealTarget(t *testing.T) *target {
	t.Helper()
	srv := realServer(t)
	c, err := NewClient("redis://" + srv.Addr)
	if err != nil {
		t.Fatalf("connecting to redis-server: %v", err)
	}
	t.Cleanup(c.Close)
	return &target{name: "redis-server", client: c, addr: srv.Addr, prefix: randomPrefix()}
}

func newClusterTarget(t *testing.T) *target {
	t.Helper()
	cl := clusterServer(t)
	addrs := cl.Addrs()
	url := "redis://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr=")
	c, err := NewClient(url)
	if err != nil {
		t.Fatalf("connecting to the cluster: %v", err)
	}
	t.Cleanup(c.Close)
	if c.Mode() != rueidis.ClientModeCluster {
		t.Fatalf("client mode %s, want cluster", c.Mode())
	}
	return &target{name: "redis-cluster", client: c, cluster: cl, addr: addrs[0], prefix: randomPrefix()}
}

// roundTripsToMove is what moving a session to another key costs: one atomic
// script, or in a cluster, where the keys live on different nodes, a write
// and then a delete.
func (tg *target) roundTripsToMove() int64 {
	if tg.cluster != nil {
		return 2
	}
	return 1
}

// primaries returns a client for each primary of the target.
func (tg *target) primaries(t testing.TB) []rueidis.Client {
	t.Helper()
	nodes, err := primaries(context.Background(), tg.client)
	noErr(t, err)
	return nodes
}

func randomPrefix() string {
	var b [6]byte
	rand.Read(b[:])
	return "test:" + hex.EncodeToString(b[:]) + ":"
}

var testKeys = [][]byte{[]byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210")}

// newStore builds a store on tg under the test's prefix.
func newStore(t testing.TB, tg *target, cfg Config) *Store {
	t.Helper()
	if cfg.Client == nil {
		cfg.Client = tg.client
	}
	if cfg.KeyPairs == nil {
		cfg.KeyPairs = testKeys
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = tg.prefix
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if tg.mini != nil {
		// Tests move miniredis's clock at will: never trust an estimate,
		// and let StringMode's informational expiry follow it too.
		s.clock.refresh = 0
		if sb, ok := s.backend.(*stringBackend); ok {
			sb.now = tg.now
		}
	}
	return s
}

// browser carries cookies between requests, like a client would.
type browser struct {
	cookies map[string]*http.Cookie
}

func newBrowser() *browser { return &browser{cookies: map[string]*http.Cookie{}} }

func (b *browser) request() *http.Request {
	r := httptest.NewRequest("GET", "http://example.test/", nil)
	for _, c := range b.cookies {
		r.AddCookie(c)
	}
	return r
}

func (b *browser) keep(t testing.TB, w *httptest.ResponseRecorder) {
	t.Helper()
	for _, c := range w.Result().Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
}

// get loads the session of a fresh request, failing on error.
func (b *browser) get(t testing.TB, s *Store, name string) (*sessions.Session, *http.Request) {
	t.Helper()
	r := b.request()
	sess, err := s.Get(r, name)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return sess, r
}

// save saves the session and keeps the cookie it sets.
func (b *browser) save(t testing.TB, s *Store, r *http.Request, sess *sessions.Session) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	if err := s.Save(r, w, sess); err != nil {
		t.Fatalf("Save: %v", err)
	}
	b.keep(t, w)
	return w
}

// countingClient counts the calls that reach Redis: one Do or DoMulti is one
// round trip. An EVAL is not counted: the store sends one only to load a
// script that a node does not have yet (after EVALSHA answered NOSCRIPT),
// once per script and node.
type countingClient struct {
	rueidis.Client
	calls    atomic.Int64
	commands atomic.Int64
	names    sync.Map
}

func (c *countingClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	if !strings.EqualFold(cmd.Commands()[0], "EVAL") {
		c.calls.Add(1)
	}
	c.note(cmd)
	return c.Client.Do(ctx, cmd)
}

func (c *countingClient) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	c.calls.Add(1)
	for _, cmd := range cmds {
		c.note(cmd)
	}
	return c.Client.DoMulti(ctx, cmds...)
}

func (c *countingClient) note(cmd rueidis.Completed) {
	c.commands.Add(1)
	c.names.Store(strings.ToUpper(cmd.Commands()[0]), true)
}

// reset zeroes the counters and returns the calls made since the last reset.
func (c *countingClient) reset() int64 {
	c.commands.Store(0)
	return c.calls.Swap(0)
}

func equal[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}
