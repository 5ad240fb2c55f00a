package main

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redisession/redistore"
)

func TestPlatform(t *testing.T) {
	for _, tt := range []struct{ ua, want string }{
		{"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox on Linux"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome on Windows"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge on Windows"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", "Safari on macOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "Safari on iOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", "Chrome on iOS"},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", "Chrome on Android"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/114.0.0.0", "Opera on Windows"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36", "Chrome on Linux"},
		{"curl/8.5.0", "Unknown browser"},
		{"", "Unknown browser"},
		{"SomeBot (Windows)", "Unknown browser on Windows"},
	} {
		if got := platform(tt.ua); got != tt.want {
			t.Errorf("platform(%q) = %q, want %q", tt.ua, got, tt.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	us := redistore.UserSession{
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
		IP:        "127.0.0.1",
		LastSeen:  now.Add(-3*time.Minute - 10*time.Second),
	}
	for _, tt := range []struct {
		us   redistore.UserSession
		this bool
		want string
	}{
		{us, true, "Firefox on Linux, 127.0.0.1, active 3 minutes ago, this device"},
		{redistore.UserSession{LastSeen: now.Add(-25 * time.Hour)}, false, "Unknown browser, active 1 day ago"},
		{redistore.UserSession{}, true, "Unknown browser, this device"},
	} {
		if got := describe(tt.us, tt.this, now); got != tt.want {
			t.Errorf("describe: %q, want %q", got, tt.want)
		}
	}
	for d, want := range map[time.Duration]string{
		0: "just now", -time.Minute: "just now", time.Minute: "1 minute ago", 119 * time.Minute: "1 hour ago",
		5 * time.Hour: "5 hours ago", 72 * time.Hour: "3 days ago",
	} {
		if got := ago(d); got != want {
			t.Errorf("ago(%v) = %q, want %q", d, got, want)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	if got := clientIP(r); got != "192.0.2.1" {
		t.Errorf("clientIP(%q) = %q", r.RemoteAddr, got)
	}
}
