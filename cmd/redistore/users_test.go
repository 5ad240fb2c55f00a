package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

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
