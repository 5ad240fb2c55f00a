package main

import (
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
	})
}
