package main

import (
	"strings"
	"testing"
	"time"

	"github.com/redisession/redistore"
)

// TestSessionsShowTheDevice: sessions prints when each session was last
// seen and its device, and never passes a terminal what a client sent
// unescaped.
func TestSessionsShowTheDevice(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	list := []redistore.UserSession{
		{Handle: "h1", Expires: now.Add(time.Hour), LastSeen: now.Add(-3 * time.Minute), UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0", IP: "127.0.0.1"},
		{Handle: "h2", Expires: now.Add(time.Hour), UserAgent: "evil\x1b[2J\tagent"},
	}
	var out strings.Builder
	printUserSessions(&env{stdout: &out}, list, now)
	for _, want := range []string{"LAST SEEN", "3 minutes ago", "127.0.0.1", "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0", `"evil\x1b[2J\tagent"`, "unknown"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("sessions output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "\x1b") {
		t.Fatalf("an escape sequence reached the terminal:\n%q", out.String())
	}
	doc := sessionsDocument("alice", list)
	if s := doc.Sessions[0]; s.UserAgent != list[0].UserAgent || s.IP != "127.0.0.1" || s.LastSeen == nil || *s.LastSeen != "2026-01-02T03:01:05Z" {
		t.Fatalf("sessions --json: %+v", s)
	}
	if doc.Sessions[1].LastSeen != nil {
		t.Fatal("an unknown LastSeen is not null")
	}
}
