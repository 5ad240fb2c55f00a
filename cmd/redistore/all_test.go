package main

import (
	"strings"
	"testing"

	"github.com/gorilla/sessions"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/internal/redistest"
)

// TestSessionsAll: sessions --all lists every session, each user's and the
// anonymous ones, by handle and never by ID; --json is one document; a
// progress counter goes to stderr only when asked (stderr is no terminal
// here).
func TestSessionsAll(t *testing.T) {
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
				users := map[string]string{}
				var ids []string
				for _, v := range []map[string]any{{"user": "alice"}, {"user": "alice"}, {"user": "bob"}, {"cart": "2 items"}} {
					sd := seed(t, s, 3600, v)
					ids = append(ids, sd.id)
					u, _ := v["user"].(string)
					users[handle(sd)] = u
				}
				m := "--mode=" + mode.String()

				r := f.run(t, "sessions", "--all", m)
				r.wantCode(t, 0)
				for h, u := range users {
					line := ""
					for _, l := range strings.Split(r.stdout, "\n") {
						if strings.HasPrefix(l, h) {
							line = l
						}
					}
					if line == "" || !strings.HasSuffix(strings.TrimSpace(line), u) || !strings.Contains(line, "(in ") {
						t.Fatalf("sessions --all: no line for %s (user %q):\n%s", h, u, r.stdout)
					}
				}
				contains(t, "sessions --all", r.stdout, "4 live session(s)")
				for _, id := range ids {
					lacks(t, "sessions --all", r.stdout, id)
				}
				if r.stderr != "" {
					t.Fatalf("sessions --all wrote on stderr, which is no terminal:\n%q", r.stderr)
				}

				r = f.run(t, "sessions", "--all", "--json", m)
				r.wantCode(t, 0)
				var doc allSessionsJSON
				fields := jsonDoc(t, r, &doc)
				wantNames(t, "sessions --all --json", fields, "sessions")
				for _, us := range wantArray(t, "sessions", fields["sessions"]) {
					wantNames(t, "a session", us, "handle", "user", "started", "expires", "stored_bytes", "compressor")
				}
				equal(t, "sessions listed", len(doc.Sessions), len(users))
				for _, us := range doc.Sessions {
					if u, ok := users[us.Handle]; !ok || u != us.User || us.Started == nil || us.Expires == nil || us.StoredBytes == 0 || us.Compressor == "" {
						t.Fatalf("sessions --all --json: %+v", us)
					}
				}

				r = f.run(t, "sessions", "--all", "--progress", "always", m)
				r.wantCode(t, 0)
				contains(t, "progress", r.stderr, "listing sessions [")
				contains(t, "progress", r.stderr, "4/4 100%")

				for _, args := range [][]string{{"sessions", "--all", "--user", "alice"}, {"sessions", "--all", "extra"}, {"sessions", "--all", "--progress", "sometimes"}} {
					f.run(t, append(args, m)...).wantCode(t, 2)
				}
			})
		}
	})
}

// A user ID is the user's choice: sessions --all escapes it, so that it
// cannot drive the operator's terminal.
func TestAllEscapesUserIDs(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		s, err := redistore.New(redistore.Config{Client: f.client, KeyPairs: f.pairs, Mode: redistore.HashMode, KeyPrefix: f.prefix, UserKey: "user"})
		if err != nil {
			t.Fatal(err)
		}
		seed(t, s, 3600, map[string]any{"user": "mallory\x1b]0;pwned\x07\x1b[2J\rroot"})
		r := f.run(t, "sessions", "--all")
		r.wantCode(t, 0)
		if strings.ContainsAny(r.stdout, "\x1b\x07\r") {
			t.Fatalf("sessions --all wrote control characters of a user ID to the terminal: %q", r.stdout)
		}
		contains(t, "stdout", r.stdout, "mallory")
	})
}
