package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/rueidis"

	"github.com/redisession/redistore"
)

// TestQuickStart drives the Quick start's routes as a browser does: visits,
// a login, more visits, a logout.
func TestQuickStart(t *testing.T) {
	m := miniredis.RunT(t)
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{m.Addr()}, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	store, err := redistore.New(redistore.Config{Client: client, KeyPairs: [][]byte{[]byte("a 32-byte hash key for the tests")}, UserKey: "user"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(routes(store))
	defer srv.Close()
	var jar []*http.Cookie
	do := func(method, path string, form url.Values) string {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for _, c := range jar {
			req.AddCookie(c)
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		for _, c := range resp.Cookies() {
			jar = []*http.Cookie{c}
			if c.MaxAge < 0 {
				jar = nil
			}
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(body)
	}
	if got := do("GET", "/", nil); !strings.Contains(got, `user "", visit 1`) {
		t.Fatalf("first visit: %q", got)
	}
	before := jar[0].Value
	do("POST", "/login", url.Values{"user": {"alice"}})
	if jar[0].Value == before {
		t.Fatal("the login kept the session's ID")
	}
	if got := do("GET", "/", nil); !strings.Contains(got, `user "alice", visit 2`) {
		t.Fatalf("after the login: %q", got)
	}
	do("POST", "/logout", nil)
	if got := do("GET", "/", nil); !strings.Contains(got, `user "", visit 1`) {
		t.Fatalf("after the logout: %q", got)
	}
}
