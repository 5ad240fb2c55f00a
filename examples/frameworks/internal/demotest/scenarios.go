package demotest

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/redisession/redistore"
)

// Run checks, against an app that newApp builds on a fresh store for each
// subtest, the behaviour every example app shares: GET / counts visits and
// answers "visits: N, user: \"NAME\"\n"; POST /login (username=NAME) gives
// the session a new ID and answers 303; POST /logout deletes the session;
// cross-site POSTs are refused.
func Run(t *testing.T, name string, newApp func(*redistore.Store) http.Handler) {
	browser := func(t *testing.T) (*Browser, *redistore.Store) {
		store, _ := Store(t)
		return &Browser{T: t, App: newApp(store), Name: name}, store
	}
	want := func(t *testing.T, who, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s: body %q, want %q", who, got, want)
		}
	}

	t.Run("the counter survives across requests", func(t *testing.T) {
		b, _ := browser(t)
		want(t, "visit 1", b.Get("/"), "visits: 1, user: \"\"\n")
		want(t, "visit 2", b.Get("/"), "visits: 2, user: \"\"\n")
		want(t, "visit 3", b.Get("/"), "visits: 3, user: \"\"\n")
	})

	t.Run("login gives a new session ID and keeps the session", func(t *testing.T) {
		b, store := browser(t)
		b.Get("/")
		b.Get("/")
		before := b.Cookie
		if res := b.Post("/login", url.Values{"username": {"alice"}}); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("login: %s, want 303", res.Status)
		}
		if b.Cookie == nil || b.Cookie.Value == before.Value {
			t.Fatal("login kept the session ID")
		}
		want(t, "after login", b.Get("/"), "visits: 3, user: \"alice\"\n")

		// Whoever held the cookie from before login gets a new, anonymous
		// session: the old ID was deleted.
		old := &Browser{T: t, App: newApp(store), Name: name, Cookie: before}
		want(t, "the pre-login cookie", old.Get("/"), "visits: 1, user: \"\"\n")
	})

	t.Run("logout deletes the session and expires the cookie", func(t *testing.T) {
		b, store := browser(t)
		b.Post("/login", url.Values{"username": {"alice"}})
		loggedIn := b.Cookie
		res := b.Post("/logout", nil)
		if !Expired(res, name) {
			t.Errorf("logout did not expire the cookie: %q", res.Header.Values("Set-Cookie"))
		}
		for _, c := range res.Cookies() {
			if c.Name == name && (c.HttpOnly != loggedIn.HttpOnly || c.SameSite != loggedIn.SameSite || c.Secure != loggedIn.Secure || c.Path != loggedIn.Path) {
				t.Errorf("the expiring cookie has other attributes than the session's: %q, was %q", res.Header.Values("Set-Cookie"), loggedIn.String())
			}
		}
		want(t, "after logout", b.Get("/"), "visits: 1, user: \"\"\n")
		replay := &Browser{T: t, App: newApp(store), Name: name, Cookie: loggedIn}
		want(t, "the logged-out cookie", replay.Get("/"), "visits: 1, user: \"\"\n")
	})

	for _, tc := range []struct {
		name   string
		form   url.Values
		header http.Header
		status int
	}{
		{"login refuses an empty username", url.Values{"username": {"  "}}, nil, http.StatusBadRequest},
		{"login refuses a cross-site post", url.Values{"username": {"mallory"}}, http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := browser(t)
			b.Header = tc.header
			if res := b.Post("/login", tc.form); res.StatusCode != tc.status {
				t.Errorf("%s, want %d", res.Status, tc.status)
			}
			if b.Cookie != nil {
				t.Error("a refused login set a session cookie")
			}
		})
	}
}
