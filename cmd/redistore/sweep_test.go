package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/internal/redistest"
)

func TestSweepRemovesExpiredSessions(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		s := f.store(t, redistore.HashMode)
		seedMany(t, s, 5, 3600)
		for range 10 {
			f.expire(t, seed(t, s, 3600, map[string]any{"user": "gone"}))
		}

		r := f.run(t, "sweep")
		r.wantCode(t, 0)
		contains(t, "stdout", r.stdout, "5 live sessions, 10 expired removed, 0 keys skipped, 0 errors")
		if r.stderr != "" {
			t.Fatalf("progress or errors on stderr when stdout is not a terminal:\n%q", r.stderr)
		}
		if strings.Count(r.stdout, "\n") != 1 {
			t.Fatalf("more than the summary line:\n%s", r.stdout)
		}

		r = f.run(t, "stats", "--json")
		r.wantCode(t, 0)
		var doc statsJSON
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Sessions != 5 {
			t.Fatalf("%d sessions left after the sweep, want 5", doc.Sessions)
		}
	})
}

// TestSweepJSON: sweep --json prints SweepStats's figures, and only them on
// stdout, whatever the progress bar does on stderr.
func TestSweepJSON(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		s := f.store(t, redistore.HashMode)
		seedMany(t, s, 5, 3600)
		for range 10 {
			f.expire(t, seed(t, s, 3600, map[string]any{"user": "gone"}))
		}
		f.do(t, "SET", f.prefix+"not-a-bucket", "x")
		buckets := f.hashes(t) // before the sweep empties some

		r := f.run(t, "sweep", "--json", "--progress", "always")
		r.wantCode(t, 0)
		var doc sweepJSON
		fields := jsonDoc(t, r, &doc)
		wantNames(t, "sweep --json", fields, "buckets", "live", "removed", "skipped", "errors", "nothing_to_do", "duration_ms")
		equal(t, "buckets", doc.Buckets, buckets)
		equal(t, "live", doc.Live, 5)
		equal(t, "removed", doc.Removed, 10)
		equal(t, "skipped", doc.Skipped, 1)
		equal(t, "errors", doc.Errors, 0)
		equal(t, "nothing to do", doc.NothingToDo, false)
		if doc.DurationMS <= 0 {
			t.Fatalf("duration_ms %v", doc.DurationMS)
		}
		contains(t, "stderr", r.stderr, "\r") // the bar asked for, where it belongs

		r = f.run(t, "sweep", "--json")
		r.wantCode(t, 0)
		jsonDoc(t, r, &doc)
		equal(t, "removed by a second sweep", doc.Removed, 0)
		equal(t, "live after the sweep", doc.Live, 5)
		equal(t, "stderr", r.stderr, "")

		r = f.run(t, "sweep", "--json", "--mode", "string")
		r.wantCode(t, 0)
		jsonDoc(t, r, &doc)
		equal(t, "StringMode", doc, sweepJSON{NothingToDo: true})
	})
}

func TestShowProgress(t *testing.T) {
	for _, tc := range []struct {
		progress          string
		asJSON, terminals bool
		want              bool
	}{
		{"auto", false, true, true},
		{"auto", false, false, false},
		{"auto", true, true, false}, // a document for a program: no bar
		{"always", true, false, true},
		{"never", false, true, false},
	} {
		got, err := showProgress(tc.progress, tc.asJSON, tc.terminals)
		if err != nil || got != tc.want {
			t.Errorf("showProgress(%q, json %v, terminals %v) = %v, %v; want %v", tc.progress, tc.asJSON, tc.terminals, got, err, tc.want)
		}
	}
	if _, err := showProgress("sometimes", false, true); err == nil {
		t.Error("--progress sometimes accepted")
	}
}

func TestSweepProgress(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		seedMany(t, f.store(t, redistore.HashMode), 20, 3600)

		r := f.run(t, "sweep", "--progress", "always")
		r.wantCode(t, 0)
		contains(t, "stdout", r.stdout, "20 live sessions")
		contains(t, "stderr", r.stderr, "\r")
		if !strings.HasSuffix(r.stderr, "\r\x1b[K") {
			t.Fatalf("the progress line is not erased before the summary: %q", r.stderr)
		}

		r = f.run(t, "sweep", "--progress", "always", "--sample", "50")
		r.wantCode(t, 0)
		contains(t, "stdout", r.stdout, "50 buckets")
		contains(t, "stderr", r.stderr, "sweeping [")
		contains(t, "stderr", r.stderr, "/50 buckets")

		r = f.run(t, "sweep", "--progress", "never")
		r.wantCode(t, 0)
		equal(t, "stderr", r.stderr, "")
	})
}

func TestSweepStringModeHasNothingToDo(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		r := f.run(t, "sweep", "--mode", "string")
		r.wantCode(t, 0)
		contains(t, "stdout", r.stdout, "nothing to sweep")
	})
}

func TestSweepInterruptedPrintsWhatItDid(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		seedMany(t, f.store(t, redistore.HashMode), 3, 3600)
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // as if Ctrl-C came at once
		r := runCtx(t, ctx, f.env(), "sweep", "--prefix", f.prefix)
		r.wantCode(t, 1)
		r.wantOneErrorLine(t)
		contains(t, "stderr", r.stderr, "interrupted")
		contains(t, "stdout", r.stdout, "expired removed")

		r = runCtx(t, ctx, f.env(), "sweep", "--json", "--prefix", f.prefix)
		r.wantCode(t, 1)
		r.wantOneErrorLine(t)
		contains(t, "stderr", r.stderr, "interrupted: the sweep stopped early; the document printed is what it did")
		var doc sweepJSON
		jsonDoc(t, r, &doc)
		equal(t, "sessions removed by an interrupted sweep", doc.Removed, 0)
	})
}

func equal[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}
