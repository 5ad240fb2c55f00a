package main

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/redisession/redistore"
)

// clientIP is the demo's Config.ClientIP: the host part of the address the
// request came from. Behind a proxy that would be the proxy's; an
// application there takes the address its own proxy reports instead.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// describe says what a session is as a devices page says it: "Firefox on
// Linux, 127.0.0.1, active 3 minutes ago, this device".
func describe(us redistore.UserSession, this bool, now time.Time) string {
	parts := []string{platform(us.UserAgent)}
	if us.IP != "" {
		parts = append(parts, us.IP)
	}
	if !us.LastSeen.IsZero() {
		parts = append(parts, "active "+ago(now.Sub(us.LastSeen)))
	}
	if this {
		parts = append(parts, "this device")
	}
	return strings.Join(parts, ", ")
}

// platform names the browser and the system a User-Agent says, as far as
// the tokens the common ones send tell them: "Firefox on Linux", "Unknown
// browser on Windows", "Safari", "Unknown browser". Order matters: Edge
// and Opera say Chrome too, Chrome says Safari, Android says Linux, and
// iOS says "like Mac OS X".
func platform(ua string) string {
	browser := "Unknown browser"
	for _, b := range []struct{ name, token string }{
		{"Edge", "Edg"}, // Edg/, EdgA/, EdgiOS/, and the old Edge/
		{"Opera", "OPR/"}, {"Opera", "Opera"},
		{"Firefox", "Firefox/"}, {"Firefox", "FxiOS/"},
		{"Chrome", "Chrome/"}, {"Chrome", "CriOS/"},
		{"Safari", "Safari/"},
	} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	for _, o := range []struct{ name, token string }{
		{"Windows", "Windows"},
		{"iOS", "iPhone"}, {"iOS", "iPad"}, {"iOS", "iPod"},
		{"macOS", "Macintosh"}, {"macOS", "Mac OS X"},
		{"Android", "Android"},
		{"Linux", "Linux"},
	} {
		if strings.Contains(ua, o.token) {
			return browser + " on " + o.name
		}
	}
	return browser
}

// ago says how long ago a duration was, in the largest whole unit.
func ago(d time.Duration) string {
	unit := func(n int, name string) string {
		if n == 1 {
			return "1 " + name + " ago"
		}
		return fmt.Sprintf("%d %ss ago", n, name)
	}
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return unit(int(d/time.Minute), "minute")
	case d < 24*time.Hour:
		return unit(int(d/time.Hour), "hour")
	}
	return unit(int(d/(24*time.Hour)), "day")
}
