package main

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/sessions"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/internal/redistest"
)

func TestSessionsAndRevoke(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		for _, mode := range []redistore.Mode{redistore.HashMode, redistore.StringMode} {
			t.Run(mode.String(), func(t *testing.T) {
				f.prefix = randomPrefix()
				s, err := redistore.New(redistore.Config{Client: f.client, KeyPairs: f.pairs, Mode: mode, KeyPrefix: f.prefix, UserKey: "user"})
				if err != nil {
					t.Fatal(err)
				}
				seed(t, s, 3600, map[string]any{"user": "alice"})
				seed(t, s, 3600, map[string]any{"user": "alice"})
				bob := seed(t, s, 3600, map[string]any{"user": "bob"})
				list, err := s.UserSessions(context.Background(), "alice")
				if err != nil || len(list) != 2 {
					t.Fatalf("UserSessions: %v, %v", list, err)
				}
				m := "--mode=" + mode.String()

				r := f.run(t, "sessions", "--user", "alice", m)
				r.wantCode(t, 0)
				for _, us := range list {
					contains(t, "sessions", r.stdout, us.Handle)
				}
				contains(t, "sessions", r.stdout, "2 live session(s)")
				if !strings.Contains(r.stdout, "(in 59 minutes ") && !strings.Contains(r.stdout, "(in 1 hour)") {
					t.Fatalf("sessions does not say they expire in an hour:\n%s", r.stdout)
				}
				lacks(t, "sessions", r.stdout, bob.id)

				// The operator commands know the index keys.
				r = f.run(t, "stats", "--json", m)
				r.wantCode(t, 0)
				var doc statsJSON
				if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
					t.Fatal(err)
				}
				if doc.UserIndexKeys != 2 || doc.UserIndexEntries != 3 || doc.OtherKeys != 0 || doc.Sessions != 3 {
					t.Fatalf("stats: %d index keys, %d entries, %d other keys, %d sessions; want 2, 3, 0, 3", doc.UserIndexKeys, doc.UserIndexEntries, doc.OtherKeys, doc.Sessions)
				}
				r = f.run(t, "doctor", m)
				contains(t, "doctor", doctorLine(t, r.stdout, "key", "OK"), "2 user index keys")
				if mode == redistore.HashMode {
					r = f.run(t, "sweep", m)
					r.wantCode(t, 0)
					contains(t, "sweep", r.stdout, "0 keys skipped")
				}

				r = f.run(t, "revoke", "--user", "alice", "--handle", list[0].Handle, m)
				r.wantCode(t, 0)
				contains(t, "revoke", r.stdout, "ended session "+list[0].Handle)
				r = f.run(t, "sessions", "--user", "alice", m)
				lacks(t, "sessions after revoking one", r.stdout, list[0].Handle)
				contains(t, "sessions after revoking one", r.stdout, list[1].Handle)

				r = f.run(t, "revoke", "--user", "alice", "--handle", list[0].Handle, m)
				r.wantCode(t, 1)
				r.wantOneErrorLine(t)
				contains(t, "revoking an ended handle", r.stderr, "no live session")

				r = f.run(t, "revoke", "--user", "alice", m)
				r.wantCode(t, 0)
				contains(t, "revoke all", r.stdout, "ended 1 session(s)")
				r = f.run(t, "sessions", "--user", "alice", m)
				contains(t, "sessions after revoking all", r.stdout, "no live sessions")
				r = f.run(t, "sessions", "--user", "bob", m)
				contains(t, "bob's sessions", r.stdout, "1 live session(s)")

				for _, args := range [][]string{{"sessions"}, {"revoke"}, {"sessions", "--user", "alice", "extra"}, {"sessions", "--user", "x", "--user-key", ""}} {
					r = f.run(t, append(args, m)...)
					r.wantCode(t, 2)
					if !strings.Contains(r.stderr, "--user") && !strings.Contains(r.stderr, "arguments") {
						t.Fatalf("%q: %s", args, r.stderr)
					}
				}
			})
		}
	})
}

// TestSessionsAndRevokeJSON: sessions --json lists exactly the user's
// sessions, by handle, with RFC 3339 times; revoke --json says what it
// ended; a failure leaves stdout empty.
func TestSessionsAndRevokeJSON(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		for _, mode := range []redistore.Mode{redistore.HashMode, redistore.StringMode} {
			t.Run(mode.String(), func(t *testing.T) {
				f.prefix = randomPrefix()
				s, err := redistore.New(redistore.Config{Client: f.client, KeyPairs: f.pairs, Mode: mode, KeyPrefix: f.prefix, UserKey: "user"})
				if err != nil {
					t.Fatal(err)
				}
				handle := func(sd seeded) string { return s.Handle(&sessions.Session{ID: sd.id}) }
				before := f.serverNow(t)
				var alice []string
				for range 3 {
					alice = append(alice, handle(seed(t, s, 3600, map[string]any{"user": "alice"})))
				}
				bob := handle(seed(t, s, 3600, map[string]any{"user": "bob"}))
				after := f.serverNow(t)
				m := "--mode=" + mode.String()

				r := f.run(t, "sessions", "--user", "alice", "--json", m)
				r.wantCode(t, 0)
				var doc sessionsJSON
				fields := jsonDoc(t, r, &doc)
				wantNames(t, "sessions --json", fields, "user", "sessions")
				for _, us := range wantArray(t, "sessions", fields["sessions"]) {
					wantNames(t, "a session", us, "handle", "started", "expires", "last_seen", "user_agent", "ip")
				}
				equal(t, "user", doc.User, "alice")
				var listed []string
				for _, us := range doc.Sessions {
					listed = append(listed, us.Handle)
					// Stored times are whole seconds, read from the server's clock.
					inRange(t, "expires", us.Expires, before.Add(time.Hour-time.Second), after.Add(time.Hour+time.Second))
					inRange(t, "started", us.Started, before.Add(-time.Second), after.Add(time.Second))
				}
				slices.Sort(listed)
				slices.Sort(alice)
				if !slices.Equal(listed, alice) {
					t.Fatalf("sessions --json lists %q, want alice's %q", listed, alice)
				}

				r = f.run(t, "revoke", "--user", "alice", "--handle", alice[0], "--json", m)
				r.wantCode(t, 0)
				var rev revokeJSON
				wantNames(t, "revoke --json", jsonDoc(t, r, &rev), "user", "handle", "ended")
				equal(t, "revoke --handle", rev, revokeJSON{User: "alice", Handle: alice[0], Ended: 1})

				r = f.run(t, "revoke", "--user", "alice", "--handle", alice[0], "--json", m)
				r.wantCode(t, 1)
				r.wantOneErrorLine(t)
				equal(t, "stdout of a failed revoke", r.stdout, "")

				r = f.run(t, "revoke", "--user", "alice", "--json", m)
				r.wantCode(t, 0)
				jsonDoc(t, r, &rev)
				equal(t, "revoke of all", rev, revokeJSON{User: "alice", Handle: "", Ended: 2})

				r = f.run(t, "sessions", "--user", "alice", "--json", m)
				r.wantCode(t, 0)
				fields = jsonDoc(t, r, &doc)
				equal(t, "alice's sessions after revoke", len(wantArray(t, "sessions", fields["sessions"])), 0)
				r = f.run(t, "sessions", "--user", "bob", "--json", m)
				jsonDoc(t, r, &doc)
				if len(doc.Sessions) != 1 || doc.Sessions[0].Handle != bob {
					t.Fatalf("bob's sessions: %+v, want his one, %s", doc.Sessions, bob)
				}
			})
		}
	})
}

// inRange checks that a JSON time is RFC 3339, in UTC, within [lo, hi].
func inRange(t *testing.T, what string, s *string, lo, hi time.Time) {
	t.Helper()
	if s == nil {
		t.Fatalf("%s is null", what)
	}
	v, err := time.Parse(time.RFC3339, *s)
	if err != nil || !strings.HasSuffix(*s, "Z") {
		t.Fatalf("%s %q is not an RFC 3339 time in UTC: %v", what, *s, err)
	}
	if v.Before(lo.Truncate(time.Second)) || v.After(hi) {
		t.Fatalf("%s %s is not within [%s, %s]", what, *s, lo.UTC().Format(time.RFC3339Nano), hi.UTC().Format(time.RFC3339Nano))
	}
}

// appSecret is an application's type, registered with gob in this test
// process only: the command, a separate binary, has never heard of it.
type appSecret struct {
	Token  string
	Scopes map[string]bool
}

func init() { gob.Register(appSecret{}) }

// appCompressor is an application's compressor (LZ4 under an ID of its
// own), which the command does not have.
type appCompressor struct{ redistore.Compressor }

func (appCompressor) ID() byte     { return 0x90 }
func (appCompressor) Name() string { return "app" }

// appSerializer is an application's serializer: gob under another name.
type appSerializer struct{ redistore.GobSerializer }

// TestRevokeEndsSessionsOfAnyType: the command, built as the binary
// operators run, lists and ends a user's sessions whatever their values
// hold (a type it never saw), whoever serialized them (an application's
// Serializer) and however they are compressed (an application's
// Compressor): whose session it is comes from the stored metadata, not
// from the values.
func TestRevokeEndsSessionsOfAnyType(t *testing.T) {
	t.Parallel()
	bin := buildCommand(t)
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		for _, mode := range []redistore.Mode{redistore.HashMode, redistore.StringMode} {
			t.Run(mode.String(), func(t *testing.T) {
				f.prefix = randomPrefix()
				long := strings.Repeat("a scope that compresses well, ", 30)
				values := map[string]any{"user": "alice", "secret": appSecret{Token: "t0k3n", Scopes: map[string]bool{"read": true, long: true}}}
				var stores []*redistore.Store
				var cookies []string
				for _, cfg := range []redistore.Config{
					{},                            // an application type, through the compact codec's gob
					{Serializer: appSerializer{}}, // an application's Serializer
					{Compressor: appCompressor{redistore.LZ4()}}, // an application's Compressor
				} {
					cfg.Client, cfg.KeyPairs, cfg.Mode, cfg.KeyPrefix, cfg.UserKey = f.client, f.pairs, mode, f.prefix, "user"
					s, err := redistore.New(cfg)
					if err != nil {
						t.Fatal(err)
					}
					stores = append(stores, s)
					cookies = append(cookies, seed(t, s, 3600, values).cookie)
				}
				m := "--mode=" + mode.String()
				r := runBinary(t, bin, f, "sessions", "--user", "alice", m)
				r.wantCode(t, 0)
				contains(t, "sessions", r.stdout, "3 live session(s)")
				r = runBinary(t, bin, f, "revoke", "--user", "alice", m)
				r.wantCode(t, 0)
				contains(t, "revoke", r.stdout, "ended 3 session(s)")
				r = runBinary(t, bin, f, "sessions", "--user", "alice", m)
				contains(t, "sessions after revoke", r.stdout, "no live sessions")
				for i, s := range stores {
					req := httptest.NewRequest("GET", "http://example.test/", nil)
					req.AddCookie(&http.Cookie{Name: defaultCookie, Value: cookies[i]})
					if sess, _ := s.Get(req, defaultCookie); !sess.IsNew {
						t.Fatalf("session %d still opens after revoke", i)
					}
				}
			})
		}
	})
}

// buildCommand builds the command as operators run it, a binary of its
// own, and returns its path.
func buildCommand(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "redistore")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runBinary runs the built command against the fixture's server, under
// its prefix.
func runBinary(t *testing.T, bin string, f *fixture, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, append(args, "--prefix", f.prefix)...)
	cmd.Env = os.Environ()
	for k, v := range f.env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s: %v", bin, err)
	}
	return result{code, stdout.String(), stderr.String()}
}
