package redistore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gorilla/sessions"
	"github.com/redis/rueidis"

	"github.com/redisession/redistore/internal/redistest"
	"github.com/redisession/redistore/internal/topology"
)

// Each Redis installation the tests run on (redistest.Installs: the
// redis-server on PATH, or those REDISTORE_SERVERS names) serves every test
// of this package with one shared redis-server and one shared Redis Cluster
// (3 primaries, 3 replicas), started on first use; each test works under its
// own random key prefix.
type installServers struct {
	in redistest.Install

	srvOnce sync.Once
	srv     *redistest.Server
	srvErr  error

	clOnce sync.Once
	cl     *redistest.Cluster
	clErr  error
}

var shared struct {
	once sync.Once
	list []*installServers
}

// defaultParallel replaces go test's default -parallel (GOMAXPROCS) for this
// package: most of its tests wait on real servers' clocks, not on a CPU, so
// two at a time would leave the machine idle. An explicit -parallel wins.
const defaultParallel = "16"

func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		flag.Set("test.parallel", defaultParallel)
	}
	code := m.Run()
	for _, is := range shared.list {
		if is.srv != nil {
			is.srv.Stop()
		}
		if is.cl != nil {
			is.cl.Stop()
		}
	}
	os.Exit(code)
}

// installations returns the Redis installations the tests run on, skipping
// or failing the test where there are none (see redistest.NeedInstalls).
func installations(t testing.TB) []*installServers {
	t.Helper()
	list := redistest.NeedInstalls(t)
	shared.once.Do(func() {
		for _, in := range list {
			shared.list = append(shared.list, &installServers{in: in})
		}
	})
	return shared.list
}

func (is *installServers) server(t testing.TB) *redistest.Server {
	t.Helper()
	is.srvOnce.Do(func() {
		dir, err := os.MkdirTemp("", "redistore-test-")
		if err != nil {
			is.srvErr = err
			return
		}
		is.srv, is.srvErr = redistest.StartWith(dir, redistest.Options{Install: is.in})
	})
	if is.srvErr != nil {
		t.Fatalf("starting redis-server %s: %v", is.in.Version, is.srvErr)
	}
	return is.srv
}

func (is *installServers) cluster(t testing.TB) *redistest.Cluster {
	t.Helper()
	if _, err := is.in.Binary("redis-cli"); err != nil {
		if os.Getenv(redistest.RequireEnv) == "1" {
			t.Fatalf("%v", err)
		}
		t.Skipf("%v", err)
	}
	is.clOnce.Do(func() {
		dir, err := os.MkdirTemp("", "redistore-cluster-")
		if err != nil {
			is.clErr = err
			return
		}
		is.cl, is.clErr = is.in.StartCluster(dir, 3, 1)
	})
	if is.clErr != nil {
		t.Fatalf("starting a Redis Cluster %s: %v", is.in.Version, is.clErr)
	}
	return is.cl
}

// target is a Redis server a test runs against: miniredis, a real
// redis-server, or a Redis Cluster (of one of the installations).
type target struct {
	name    string
	client  rueidis.Client
	mini    *miniredis.Miniredis // nil on the real server
	cluster *redistest.Cluster   // set on the Redis Cluster
	install redistest.Install    // the real server's installation
	addr    string
	prefix  string // unique to the test
}

// fieldTTLs reports whether the server has hash-field TTLs (HEXPIRE, Redis
// 7.4+, Valkey 9+), as it says itself; miniredis has them.
func (tg *target) fieldTTLs() bool {
	return tg.mini != nil || installHas(tg.install, "HEXPIRE")
}

// installHas reports whether the servers of an installation have a command,
// asking one of them (COMMAND INFO): tests that depend on what a server can
// do ask it, rather than go by a version string. Installations are asked
// once.
func installHas(in redistest.Install, command string) bool {
	key := in.Dir + "\x00" + in.Version + "\x00" + strings.ToUpper(command)
	if v, ok := capabilities.Load(key); ok {
		return v.(bool)
	}
	has := false
	if srv, err := redistest.StartWith("", redistest.Options{Install: in}); err == nil {
		defer srv.Stop()
		if c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true, ForceSingleClient: true}); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			arr, err := c.Do(ctx, c.B().CommandInfo().CommandName(command).Build()).ToArray()
			cancel()
			c.Close()
			has = err == nil && len(arr) == 1 && !arr[0].IsNil()
		}
	}
	capabilities.Store(key, has)
	return has
}

// capabilities caches installHas.
var capabilities sync.Map

// expiredFields reads the server's count of hash fields its own expiry
// removed: expired_subkeys on Redis, expired_fields on Valkey.
func expiredFields(t testing.TB, tg *target) int64 {
	t.Helper()
	info, err := tg.do(t, "INFO", "stats").ToString()
	noErr(t, err)
	for _, line := range strings.Split(info, "\n") {
		for _, field := range []string{"expired_subkeys:", "expired_fields:"} {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), field); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				noErr(t, err)
				return n
			}
		}
	}
	t.Fatal("INFO stats counts no expired hash fields (expired_subkeys, expired_fields)")
	return 0
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
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
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

// forEachTarget runs fn, as parallel subtests, against miniredis, then a
// redis-server and a Redis Cluster of each installation.
func forEachTarget(t *testing.T, fn func(t *testing.T, tg *target)) {
	t.Helper()
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		fn(t, newMiniTarget(t))
	})
	for _, is := range installations(t) {
		t.Run(is.in.Name(), func(t *testing.T) {
			t.Parallel()
			fn(t, newRealTarget(t, is))
		})
		t.Run("cluster-"+is.in.Version, func(t *testing.T) {
			t.Parallel()
			fn(t, newClusterTarget(t, is))
		})
	}
}

// forEachReal runs fn, as parallel subtests, against a redis-server of each
// installation: for what only a real server shows (TTLs in real time,
// cursors, encodings, memory).
func forEachReal(t *testing.T, fn func(t *testing.T, tg *target)) {
	t.Helper()
	for _, is := range installations(t) {
		t.Run(is.in.Name(), func(t *testing.T) {
			t.Parallel()
			fn(t, newRealTarget(t, is))
		})
	}
}

// miniAndReal runs fn, as parallel subtests, against miniredis and a
// redis-server of each installation: for behaviour a cluster adds nothing to.
func miniAndReal(t *testing.T, fn func(t *testing.T, tg *target)) {
	t.Helper()
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		fn(t, newMiniTarget(t))
	})
	forEachReal(t, fn)
}

// forEachInstall runs fn, as parallel subtests, once per installation, for
// tests that start servers of their own.
func forEachInstall(t *testing.T, fn func(t *testing.T, in redistest.Install)) {
	t.Helper()
	for _, is := range installations(t) {
		t.Run(is.in.Name(), func(t *testing.T) {
			t.Parallel()
			fn(t, is.in)
		})
	}
}

// forEachMode runs fn in both modes on every target.
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

// casTarget starts a server without any scripting engine that has
// compare-and-set for strings (SET IFEQ, DELIFEQ: Valkey 8.1+), skipping
// the test where there is none (see redistest.NeedNoScripting).
func casTarget(t *testing.T) *target {
	t.Helper()
	in := redistest.NeedNoScripting(t)
	if !installHas(in, "DELIFEQ") {
		t.Skipf("%s has no compare-and-set for strings (DELIFEQ)", in.Name())
	}
	srv := in.StartT(t)
	c, err := NewClient("redis://" + srv.Addr)
	noErr(t, err)
	t.Cleanup(c.Close)
	return &target{name: in.Name() + "-nolua", client: c, install: in, addr: srv.Addr, prefix: randomPrefix()}
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

func newRealTarget(t testing.TB, is *installServers) *target {
	t.Helper()
	srv := is.server(t)
	c, err := NewClient("redis://" + srv.Addr)
	if err != nil {
		t.Fatalf("connecting to redis-server: %v", err)
	}
	t.Cleanup(c.Close)
	return &target{name: is.in.Name(), client: c, install: is.in, addr: srv.Addr, prefix: randomPrefix()}
}

func newClusterTarget(t *testing.T, is *installServers) *target {
	t.Helper()
	cl := is.cluster(t)
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
	return &target{name: "cluster-" + is.in.Version, client: c, cluster: cl, install: is.in, addr: addrs[0], prefix: randomPrefix()}
}

// roundTripsToMove is what moving a session to another key costs with s:
// one atomic script, or, where the two keys live on different nodes (Redis
// Cluster) or StringMode moves without Lua (compare-and-set, Valkey 8.1+),
// a write and then a delete.
func (tg *target) roundTripsToMove(s *Store) int64 {
	if sl, ok := s.layout.(*stringLayout); tg.cluster != nil || ok && sl.cas.Load() == 1 {
		return 2
	}
	return 1
}

// primaries returns a client for each primary of the target.
func (tg *target) primaries(t testing.TB) []rueidis.Client {
	t.Helper()
	nodes, err := topology.Primaries(context.Background(), tg.client)
	noErr(t, err)
	return nodes
}

func randomPrefix() string {
	var b [6]byte
	rand.Read(b[:])
	return "test:" + hex.EncodeToString(b[:]) + ":"
}

var testKeys = [][]byte{[]byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210")}

// testSealKeys are EncryptionKeys for the tests: three, to rotate.
var testSealKeys = [][]byte{
	[]byte("sealing key one, 32 bytes long.."),
	[]byte("sealing key two, 32 bytes long.."),
	[]byte("sealing key 3, not in most rings"),
}

// testTimeout bounds a call of the tests that do not test timeouts. The
// suite runs 16 tests at once on two cores under -race, and miniredis runs
// every script in this process with gopher-lua: a Save has been seen to wait
// more than five seconds for a CPU on a loaded machine. The bound is there to
// turn a hang into a failure, not to measure; tests of timeouts set their own.
const testTimeout = 30 * time.Second

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
	if cfg.Timeout == 0 {
		cfg.Timeout = testTimeout
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if tg.mini != nil {
		followMiniredisClock(s, tg)
	}
	return s
}

// The test switches: what tests change inside a Store, in one place.

// hashLayoutOf returns a HashMode store's layout.
func hashLayoutOf(s *Store) *hashLayout { return s.layout.(*hashLayout) }

// withoutCleaning turns off (or on) the cleaning of buckets by writes, for
// tests and benchmarks that must leave expired sessions in place.
func withoutCleaning(s *Store, off bool) { hashLayoutOf(s).noClean = off }

// withWalkCount makes Sessions SCAN count keys a call, so that a few
// sessions take many replies.
func withWalkCount(s *Store, count int) { s.walkCount = count }

// followMiniredisClock makes a store on miniredis never trust its estimate
// of the server's clock (tests move miniredis's clock at will), and lets
// StringMode's informational expiry follow miniredis's clock too.
func followMiniredisClock(s *Store, tg *target) {
	s.clock.refresh = 0
	if sl, ok := s.layout.(*stringLayout); ok {
		sl.now = tg.now
	}
}

// withFakeClock gives a store on miniredis a local monotonic clock that
// moves with miniredis's, so that it trusts its estimate of the server's
// clock as it does on a real server (and writes plainly).
func withFakeClock(t testing.TB, tg *target, s *Store) *fakeMonotonic {
	t.Helper()
	if tg.mini == nil {
		t.Fatal("withFakeClock is for miniredis")
	}
	mono := &fakeMonotonic{}
	s.clock.local = mono.now
	s.clock.refresh = DefaultClockRefresh
	return mono
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

// allLoad fails the test, saying what, when any browser's session does not
// load from s.
func allLoad(t testing.TB, s *Store, browsers []*browser, what string) {
	t.Helper()
	for _, b := range browsers {
		if sess, _ := b.get(t, s, "sid"); sess.IsNew {
			t.Fatal(what)
		}
	}
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

// failingClient fails the next command named one of names, once armed.
type failingClient struct {
	rueidis.Client
	armed atomic.Bool
	names []string
}

func (c *failingClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	name := cmd.Commands()[0]
	for _, n := range c.names {
		if strings.EqualFold(n, name) && c.armed.CompareAndSwap(true, false) {
			return rueidis.NewErrorResult(errors.New("injected: connection reset"))
		}
	}
	return c.Client.Do(ctx, cmd)
}

func (c *failingClient) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	name := cmds[0].Commands()[0]
	for _, n := range c.names {
		if strings.EqualFold(n, name) && c.armed.CompareAndSwap(true, false) {
			out := make([]rueidis.RedisResult, len(cmds))
			for i := range out {
				out[i] = rueidis.NewErrorResult(errors.New("injected: connection reset"))
			}
			return out
		}
	}
	return c.Client.DoMulti(ctx, cmds...)
}

// lostReplyClient lets the write it is armed for (a script, a SET or a
// DELIFEQ; after left more of them) land, and answers it with a timeout,
// as a latency spike past Config.Timeout would.
type lostReplyClient struct {
	rueidis.Client
	left atomic.Int32 // script calls to let through before the lost one; -1: none
}

func newLostReplyClient(c rueidis.Client) *lostReplyClient {
	lc := &lostReplyClient{Client: c}
	lc.left.Store(-1)
	return lc
}

func (c *lostReplyClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	name := cmd.Commands()[0]
	res := c.Client.Do(ctx, cmd)
	switch strings.ToUpper(name) {
	case "EVALSHA", "EVAL", "SET", "DELIFEQ":
	default:
		return res
	}
	if err := res.Error(); err != nil && strings.Contains(err.Error(), "NOSCRIPT") {
		return res // EVAL follows
	}
	if n := c.left.Load(); n >= 0 {
		c.left.Add(-1)
		if n == 0 {
			return rueidis.NewErrorResult(context.DeadlineExceeded)
		}
	}
	return res
}

// afterReadClient runs hook once, after the first session read (GET or
// HGET) it passes on while armed: something another request does between
// a Save's read and its write.
type afterReadClient struct {
	rueidis.Client
	armed atomic.Bool
	hook  func()
}

func (c *afterReadClient) fire(name string) {
	if (name == "GET" || name == "HGET") && c.armed.CompareAndSwap(true, false) {
		c.hook()
	}
}

// (The name is read before the call: the client recycles a command once
// it has run.)
func (c *afterReadClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	name := strings.ToUpper(cmd.Commands()[0])
	res := c.Client.Do(ctx, cmd)
	c.fire(name)
	return res
}

func (c *afterReadClient) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	name := strings.ToUpper(cmds[0].Commands()[0])
	res := c.Client.DoMulti(ctx, cmds...)
	c.fire(name)
	return res
}

// refusingWriteClient fails the next write (a script or a SET) while armed,
// without sending it: with no answer (answer false: a timeout), or with
// the server's own error for it (answer true: the server is asked an
// unknown command in its place).
type refusingWriteClient struct {
	rueidis.Client
	armed  atomic.Bool
	answer bool
}

func (c *refusingWriteClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	switch strings.ToUpper(cmd.Commands()[0]) {
	case "EVALSHA", "EVAL", "SET":
		if c.armed.CompareAndSwap(true, false) {
			if c.answer {
				return c.Client.Do(ctx, c.Client.B().Arbitrary("REDISTORE-NO-SUCH-COMMAND").Build())
			}
			return rueidis.NewErrorResult(context.DeadlineExceeded)
		}
	}
	return c.Client.Do(ctx, cmd)
}

// lostReplyStore returns a store on tg (UserKey "uid") whose client, over
// under, loses the reply of the write armed through lc.left, with every
// script loaded on every node already so that each armed call is one; and
// how many script calls a sign-in lets through before its write (in Redis
// Cluster the index step goes first).
func lostReplyStore(t *testing.T, tg *target, mode Mode, under rueidis.Client) (s *Store, lc *lostReplyClient, skip int32) {
	t.Helper()
	lc = newLostReplyClient(under)
	s = newStore(t, tg, Config{Mode: mode, UserKey: "uid", Client: lc})
	wb, _ := signIn(t, s, "warm")
	ws, wr := wb.get(t, s, "sid")
	noErr(t, s.RegenerateID(wr, httptest.NewRecorder(), ws))
	if tg.cluster != nil {
		skip = 1
	}
	return s, lc, skip
}

// shownFlashes returns the flashes b's next request shows (strings).
func shownFlashes(t testing.TB, s *Store, b *browser) []string {
	t.Helper()
	got, _ := b.get(t, s, "sid")
	var shown []string
	for _, f := range got.Flashes() {
		shown = append(shown, f.(string))
	}
	return shown
}
