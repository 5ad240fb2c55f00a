package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/internal/redistest"
)

// result is what one run of the command left behind.
type result struct {
	code           int
	stdout, stderr string
}

// runCmd runs the command in-process with the given environment.
func runCmd(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	return runCtx(t, context.Background(), env, args...)
}

func runCtx(t *testing.T, ctx context.Context, env map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, func(k string) string { return env[k] }, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

func (r result) wantCode(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
}

// wantOneErrorLine checks the failure contract: one "redistore: " line.
func (r result) wantOneErrorLine(t *testing.T) {
	t.Helper()
	if !strings.HasPrefix(r.stderr, "redistore") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("stderr is not one redistore line:\n%s", r.stderr)
	}
}

func contains(t *testing.T, what, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%s does not contain %q:\n%s", what, sub, s)
	}
}

func lacks(t *testing.T, what, s, sub string) {
	t.Helper()
	if sub != "" && strings.Contains(s, sub) {
		t.Fatalf("%s contains %q:\n%s", what, sub, s)
	}
}

// fixture is a redis-server of the test's own, a key prefix, cookie keys,
// and a client to seed sessions with.
type fixture struct {
	srv    *redistest.Server
	url    string
	prefix string
	client rueidis.Client
	pairs  [][]byte // hash key, block key
}

// forEachInstall runs fn, as parallel subtests, once for each Redis
// installation the tests run on (redistest.Installs).
func forEachInstall(t *testing.T, fn func(t *testing.T, in redistest.Install)) {
	t.Helper()
	for _, in := range redistest.NeedInstalls(t) {
		t.Run(in.Name(), func(t *testing.T) {
			t.Parallel()
			fn(t, in)
		})
	}
}

func newFixture(t *testing.T, in redistest.Install, serverArgs ...string) *fixture {
	t.Helper()
	srv := in.StartT(t, serverArgs...)
	f := &fixture{srv: srv, url: "redis://" + srv.Addr, prefix: randomPrefix(), pairs: [][]byte{randomBytes(32), randomBytes(32)}}
	c, err := redistore.NewClient(f.url)
	if err != nil {
		t.Fatalf("connecting to redis-server: %v", err)
	}
	t.Cleanup(c.Close)
	f.client = c
	return f
}

// env is the command's environment: the server's URL and the cookie keys.
func (f *fixture) env() map[string]string {
	return map[string]string{
		envURL:  f.url,
		envKeys: hex.EncodeToString(f.pairs[0]) + "," + hex.EncodeToString(f.pairs[1]),
	}
}

// run runs a command against the fixture's server, under its prefix.
func (f *fixture) run(t *testing.T, args ...string) result {
	t.Helper()
	return runCmd(t, f.env(), append(args, "--prefix", f.prefix)...)
}

func (f *fixture) store(t *testing.T, mode redistore.Mode) *redistore.Store {
	t.Helper()
	s, err := redistore.New(redistore.Config{
		Client:    f.client,
		KeyPairs:  f.pairs,
		Mode:      mode,
		KeyPrefix: f.prefix,
		FieldTTL:  redistore.FieldTTLOff, // as on Redis before 7.4, whatever the server
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// seeded is a session saved by the library, as an application saves it.
type seeded struct {
	id, cookie string
}

func seed(t *testing.T, s *redistore.Store, maxAge int, values map[string]any) seeded {
	t.Helper()
	r := httptest.NewRequest("GET", "http://example.test/", nil)
	sess, err := s.Get(r, defaultCookie)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	for k, v := range values {
		sess.Values[k] = v
	}
	sess.Options.MaxAge = maxAge
	w := httptest.NewRecorder()
	if err := s.Save(r, w, sess); err != nil {
		t.Fatalf("Save: %v", err)
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("Save set %d cookies", len(cookies))
	}
	return seeded{id: sess.ID, cookie: cookies[0].Value}
}

func seedMany(t *testing.T, s *redistore.Store, n, maxAge int) {
	t.Helper()
	for i := range n {
		seed(t, s, maxAge, map[string]any{"user": "user" + strconv.Itoa(i), "visits": i, "theme": "a value long enough to leave a 16-byte listpack"})
	}
}

// jsonDoc decodes the command's stdout, which must be one JSON object and
// nothing else, into doc, and returns it as a map too, whose keys are the
// field names scripts use.
func jsonDoc(t *testing.T, r result, doc any) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	var fields map[string]any
	if err := dec.Decode(&fields); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%s", err, r.stdout)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("stdout holds more than one JSON document:\n%s", r.stdout)
	}
	if err := json.Unmarshal([]byte(r.stdout), doc); err != nil {
		t.Fatalf("stdout does not decode into %T: %v\n%s", doc, err, r.stdout)
	}
	return fields
}

// wantNames checks that obj is a JSON object with exactly these field
// names: they are the command's interface.
func wantNames(t *testing.T, what string, obj any, names ...string) {
	t.Helper()
	m, ok := obj.(map[string]any)
	if !ok {
		t.Fatalf("%s is %T, not a JSON object", what, obj)
	}
	got := slices.Sorted(maps.Keys(m))
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Fatalf("%s has the fields %q, want %q", what, got, names)
	}
}

// wantArray returns v as a JSON array, failing on anything else (null
// included: an empty list is []).
func wantArray(t *testing.T, what string, v any) []any {
	t.Helper()
	a, ok := v.([]any)
	if !ok {
		t.Fatalf("%s is %#v, not a JSON array", what, v)
	}
	return a
}

func (f *fixture) do(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.client.Do(ctx, f.client.B().Arbitrary(args...).Build()).Error(); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
}

// hashes counts the hashes on the fixture's server (its own, so every one is
// a bucket of the fixture's store).
func (f *fixture) hashes(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n := 0
	for cursor := uint64(0); ; {
		e, err := f.client.Do(ctx, f.client.B().Scan().Cursor(cursor).Type("hash").Build()).AsScanEntry()
		if err != nil {
			t.Fatalf("SCAN: %v", err)
		}
		n += len(e.Elements)
		if cursor = e.Cursor; cursor == 0 {
			return n
		}
	}
}

// expire makes a session of the default layout expired on the server's
// clock (its stored expiry 10 s past) while its bucket keeps its TTL, as a
// sweep finds a session that ended long ago, however slow the run.
func (f *fixture) expire(t *testing.T, s seeded) {
	t.Helper()
	bucket, err := redistore.BucketKeyGenerator(f.prefix)(s.id)
	if err != nil {
		t.Fatal(err)
	}
	field, err := redistore.RawKeyGenerator("")(s.id)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := f.client.Do(ctx, f.client.B().Hget().Key(bucket).Field(field).Build()).AsBytes()
	if err != nil || len(v) < 4 {
		t.Fatalf("HGET of the session: %q %v", v, err)
	}
	binary.BigEndian.PutUint32(v, uint32(f.serverNow(t).Unix()-10))
	if err := f.client.Do(ctx, f.client.B().Hset().Key(bucket).FieldValue().FieldValue(field, string(v)).Build()).Error(); err != nil {
		t.Fatalf("HSET: %v", err)
	}
}

// serverNow reads the server's clock, which decides expiry.
func (f *fixture) serverNow(t *testing.T) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	parts, err := f.client.Do(ctx, f.client.B().Time().Build()).AsStrSlice()
	if err != nil || len(parts) != 2 {
		t.Fatalf("TIME: %v %v", parts, err)
	}
	sec, _ := strconv.ParseInt(parts[0], 10, 64)
	usec, _ := strconv.ParseInt(parts[1], 10, 64)
	return time.Unix(sec, usec*1000)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func randomPrefix() string {
	return "test:" + hex.EncodeToString(randomBytes(6)) + ":"
}

func TestUsage(t *testing.T) {
	noServer := map[string]string{}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		out  string // in stdout when code is 0, in stderr otherwise
	}{
		{"no arguments print the usage", noServer, nil, 2, "usage: redistore <command>"},
		{"help lists the commands", noServer, []string{"help"}, 0, "sweep"},
		{"-h lists the commands", noServer, []string{"-h"}, 0, "inspect"},
		{"help names a command's flags", noServer, []string{"help", "sweep"}, 0, "-sample"},
		{"a command's -h prints its flags", noServer, []string{"stats", "-h"}, 0, "-json"},
		{"help of an unknown command", noServer, []string{"help", "bogus"}, 2, "unknown command"},
		{"an unknown command", noServer, []string{"bogus"}, 2, "unknown command"},
		{"a flag before the command", noServer, []string{"--url", "redis://x", "stats"}, 2, "flags go after the command"},
		{"an unknown flag", noServer, []string{"sweep", "--bogus"}, 2, "-bogus"},
		{"sweep takes no argument", noServer, []string{"sweep", "extra"}, 2, "no arguments"},
		{"a negative sample", noServer, []string{"sweep", "--sample", "-1"}, 2, "--sample"},
		{"a bad progress mode", noServer, []string{"sweep", "--progress", "sometimes"}, 2, "--progress"},
		{"stats takes no argument", noServer, []string{"stats", "extra"}, 2, "no arguments"},
		{"an unknown mode", noServer, []string{"stats", "--mode", "tree"}, 2, "--mode"},
		{"no URL", noServer, []string{"doctor"}, 2, envURL},
		{"inspect without an argument", noServer, []string{"inspect"}, 2, "one argument"},
		{"inspect with two arguments", noServer, []string{"inspect", "a", "b"}, 2, "one argument"},
		{"a cookie without keys", noServer, []string{"inspect", "MTcwMDAwMDAwMHxhYmN8ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo"}, 2, envKeys},
		{"inspect of an empty argument", noServer, []string{"inspect", ""}, 2, "the argument is empty: a session ID is 32 lowercase hex digits"},
		{"inspect of a 31-digit ID", noServer, []string{"inspect", strings.Repeat("a", 31)}, 2, "31 hex digits, not a session ID"},
		{"inspect of a 33-digit ID", noServer, []string{"inspect", strings.Repeat("b", 33)}, 2, "33 hex digits"},
		{"inspect of garbage", noServer, []string{"inspect", "not a cookie!"}, 2, "characters no session ID or cookie value has"},
		{"inspect of a short value", noServer, []string{"inspect", "MTcwMDAw"}, 2, "too short for a cookie value"},
		{"a timeout without a unit", noServer, []string{"stats", "--timeout", "5"}, 2, "use a unit, e.g. 5s"},
		{"a timeout that is no duration", noServer, []string{"stats", "--timeout", "soon"}, 2, "e.g. 5s or 500ms"},
		{"an http URL", noServer, []string{"stats", "--url", "http://localhost:6379"}, 2, "a http:// URL: use redis://"},
		{"a URL without a scheme", noServer, []string{"stats", "--url", "localhost:6379"}, 2, "rediss:// for TLS, unix://"},
		{"TLS flags without rediss", noServer, []string{"stats", "--url", "redis://localhost:1", "--tls-ca", "/nonexistent"}, 2, "use a rediss:// URL"},
		{"a client certificate without its key", noServer, []string{"stats", "--url", "rediss://localhost:1", "--tls-cert", "/nonexistent"}, 2, "go together"},
		{"a missing CA file", noServer, []string{"stats", "--url", "rediss://localhost:1", "--tls-ca", "/nonexistent"}, 2, "--tls-ca"},
		{"a short hash key", map[string]string{envKeys: "abcd"}, []string{"inspect", "MTcwMDAwMDAwMHxhYmN8ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo"}, 2, "2-byte hash key: the store's hash keys are at least 32 random bytes (make one with openssl rand -hex 32)"},
		{"keys that are not hex", map[string]string{envKeys: "zz,00"}, []string{"inspect", "MTcwMDAwMDAwMHxhYmN8ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo"}, 2, "not hexadecimal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCmd(t, tc.env, tc.args...)
			r.wantCode(t, tc.code)
			if tc.code == 0 {
				contains(t, "stdout", r.stdout, tc.out)
			} else {
				contains(t, "stderr", r.stderr, tc.out)
			}
		})
	}
	r := runCmd(t, noServer, "help")
	for _, c := range commands {
		contains(t, "help", r.stdout, "  "+c.name)
		h := runCmd(t, noServer, "help", c.name)
		h.wantCode(t, 0)
		contains(t, "help "+c.name, h.stdout, "  -json\n")
	}
	r = runCmd(t, map[string]string{envKeys: "zz9f,00"}, "inspect", "MTcwMDAwMDAwMHxhYmN8ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo")
	lacks(t, "stderr", r.stderr, "zz9f")
	// A flag error is one line, not the whole usage.
	r = runCmd(t, noServer, "stats", "--timeout", "5")
	r.wantOneErrorLine(t)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r = runCmd(t, noServer, args...)
		r.wantCode(t, 0)
		if !strings.HasPrefix(r.stdout, "redistore ") || !strings.Contains(r.stdout, "go1.") {
			t.Fatalf("%q: %q", args, r.stdout)
		}
	}
}

// TestJSONIsWholeOrNothing: a document that cannot be encoded leaves
// nothing on stdout for a script to half-read.
func TestJSONIsWholeOrNothing(t *testing.T) {
	var out bytes.Buffer
	e := &env{stdout: &out}
	if err := e.printJSON(map[string]any{"sessions": []int{1, 2}, "broken": func() {}}); err == nil {
		t.Fatal("printJSON encoded a func")
	}
	equal(t, "stdout after a failed encoding", out.String(), "")
	doc := struct {
		User     string   `json:"user"`
		Sessions []string `json:"sessions"`
	}{"alice", []string{}}
	if err := e.printJSON(doc); err != nil {
		t.Fatal(err)
	}
	equal(t, "a document", out.String(), "{\n  \"user\": \"alice\",\n  \"sessions\": []\n}\n")
}

// TestPasswordHint: a server with a password, and none (or a wrong one) in
// the URL, is a failure that says where the password goes.
func TestPasswordHint(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		srv := in.StartT(t, "--requirepass", "s3cret-pw")
		r := runCmd(t, map[string]string{envURL: "redis://" + srv.Addr}, "stats")
		r.wantCode(t, 1)
		r.wantOneErrorLine(t)
		contains(t, "stderr", r.stderr, "put it in the URL, redis://:PASSWORD@host:port, or in REDIS_URL")
		r = runCmd(t, map[string]string{envURL: "redis://:wrong@" + srv.Addr}, "stats")
		r.wantCode(t, 1)
		contains(t, "stderr", r.stderr, "password in the URL is wrong")
		lacks(t, "stderr", r.stderr, "wrong@")
		r = runCmd(t, map[string]string{envURL: "redis://:s3cret-pw@" + srv.Addr}, "stats")
		r.wantCode(t, 0)
		lacks(t, "stdout", r.stdout, "s3cret-pw")
	})
}

func TestUnreachableServerFailsFast(t *testing.T) {
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{envURL: "redis://app:s3cret-pw@127.0.0.1:" + strconv.Itoa(port)}
	for _, args := range [][]string{
		{"sweep"},
		{"stats"},
		{"doctor"},
		{"inspect", strings.Repeat("ab", 16)},
	} {
		t.Run(args[0], func(t *testing.T) {
			start := time.Now()
			r := runCmd(t, env, args...)
			r.wantCode(t, 1)
			r.wantOneErrorLine(t)
			lacks(t, "stderr", r.stderr, "s3cret-pw")
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("took %v to fail", d)
			}
		})
	}
}

func TestURLFlagWinsOverEnvironment(t *testing.T) {
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		env := map[string]string{envURL: "redis://127.0.0.1:1"}
		r := runCmd(t, env, "stats", "--url", f.url, "--prefix", f.prefix)
		r.wantCode(t, 0)
		contains(t, "stdout", r.stdout, "0 sessions")
	})
}

func TestStalledServerFailsWithinTheTimeout(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		p, err := redistest.NewProxy(f.srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)

		t.Run("from the start", func(t *testing.T) {
			p.Stall()
			defer p.Heal()
			start := time.Now()
			r := runCmd(t, map[string]string{envURL: "redis://" + p.Addr}, "stats", "--timeout", "300ms")
			r.wantCode(t, 1)
			r.wantOneErrorLine(t)
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %v with --timeout 300ms", d)
			}
		})

		// rueidis would retry a SCAN forever on a stalled server: the command's
		// client (redistore.TimeoutClient) bounds it.
		t.Run("in the middle of a SCAN", func(t *testing.T) {
			c, err := redistore.NewClient("redis://" + p.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			bounded := redistore.TimeoutClient(c, 300*time.Millisecond)
			p.Stall()
			defer p.Heal()
			start := time.Now()
			err = redistore.ScanBuckets()(context.Background(), bounded, f.prefix, func([]string) error { return nil })
			if err == nil {
				t.Fatal("SCAN on a stalled server succeeded")
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %v with a 300ms bound", d)
			}
		})
	})
}
