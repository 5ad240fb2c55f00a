package main

import (
	"strings"
	"testing"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/internal/redistest"
)

// TestWrongModeOrPrefixIsSaid: run against a store's keys with the wrong
// --mode or --prefix, each command says which flag to change.
func TestWrongModeOrPrefixIsSaid(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		stringed := seed(t, f.store(t, redistore.StringMode), 3600, map[string]any{"user": "alice"})
		seedMany(t, f.store(t, redistore.StringMode), 20, 3600)

		// StringMode keys read as HashMode.
		r := f.run(t, "stats")
		r.wantCode(t, 1)
		r.wantOneErrorLine(t)
		contains(t, "stats", r.stderr, "try --mode string")
		r = f.run(t, "sweep")
		r.wantCode(t, 1)
		contains(t, "sweep", r.stderr, "try --mode string")
		r = f.run(t, "inspect", stringed.id)
		r.wantCode(t, 1)
		contains(t, "inspect", r.stderr, "pass --mode string")
		r = f.run(t, "doctor")
		contains(t, "doctor", doctorLine(t, r.stdout, "key", "FAIL"), "try --mode string")
		// And with the right one, all is well.
		r = f.run(t, "stats", "--mode", "string")
		r.wantCode(t, 0)
		r = f.run(t, "inspect", stringed.id, "--mode", "string")
		r.wantCode(t, 0)

		// The right mode, a wrong prefix: a warning that names the right one.
		wrong := runCmd(t, f.env(), "stats", "--mode", "string", "--prefix", "nothing-here:")
		wrong.wantCode(t, 0)
		contains(t, "stats", wrong.stderr, "warning: no keys under \"nothing-here:\", but keys shaped like sessions under \""+f.prefix+"\"")
		contains(t, "stats", wrong.stderr, "pass --prefix")
		wrong = runCmd(t, f.env(), "doctor", "--mode", "string", "--prefix", "nothing-here:")
		contains(t, "doctor", doctorLine(t, wrong.stdout, "key", "WARN"), "pass --prefix \""+f.prefix+"\"")

		// No false alarms: an empty store beside another application's keys,
		// and a key of its own under the prefix.
		g := newFixture(t, in)
		g.do(t, "SET", "cache:a", "1")
		g.do(t, "SET", "cache:b", "2")
		g.do(t, "SET", "cache:c", "3")
		g.do(t, "SET", g.prefix+"maintenance", "on")
		for _, args := range [][]string{{"sweep"}, {"stats"}, {"sweep", "--sample", "10"}} {
			r := g.run(t, args...)
			r.wantCode(t, 0)
			lacks(t, "stderr", r.stderr, "--mode")
			lacks(t, "stderr", r.stderr, "cache:")
		}
		// --sample finds the mismatch too.
		r = f.run(t, "sweep", "--sample", "10")
		r.wantCode(t, 1)
		contains(t, "sweep --sample", r.stderr, "try --mode string")
		// stats --json stays JSON.
		r = f.run(t, "stats", "--json")
		r.wantCode(t, 1)
		if !strings.HasPrefix(strings.TrimSpace(r.stdout), "{") {
			t.Fatalf("stats --json printed:\n%s", r.stdout)
		}
	})
}

// TestValkeySchemes: valkey:// and valkeys:// URLs, which rueidis reads, are
// not usage errors.
func TestValkeySchemes(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"valkey://127.0.0.1:1", "valkeys://127.0.0.1:1"} {
		r := runCmd(t, map[string]string{}, "stats", "--url", u, "--timeout", "500ms")
		r.wantCode(t, 1) // refused by the (absent) server, not by the command
	}
}
