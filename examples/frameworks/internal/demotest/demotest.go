// Package demotest is what the example apps' tests share: a redistore Store
// on a fresh miniredis, and a browser that keeps one cookie.
package demotest

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

// Store returns a Store on a miniredis of its own, both closed when the
// test ends.
func Store(t *testing.T) (*redistore.Store, *miniredis.Miniredis) {
	t.Helper()
	mr := miniredis.RunT(t)
	client, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress: []string{mr.Addr()}, DisableCache: true, ForceSingleClient: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	store, err := redistore.New(redistore.Config{
		Client:   client,
		KeyPairs: [][]byte{[]byte("a 32-byte hash key for the tests")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return store, mr
}

// Browser sends requests to an app and keeps its session cookie, as a
// browser would.
type Browser struct {
	T      *testing.T
	App    http.Handler
	Name   string       // the session cookie's name
	Cookie *http.Cookie // the session cookie, nil before the first or after an expiring one
	Header http.Header  // more headers for every request
}

// Get requests path and returns the body of the answer, which must be 200.
func (b *Browser) Get(path string) string {
	b.T.Helper()
	res, body := b.Do(http.MethodGet, path, nil)
	if res.StatusCode != http.StatusOK {
		b.T.Fatalf("GET %s: %s: %s", path, res.Status, body)
	}
	return body
}

// Post posts form to path and returns the response.
func (b *Browser) Post(path string, form url.Values) *http.Response {
	b.T.Helper()
	res, _ := b.Do(http.MethodPost, path, form)
	return res
}

// Do sends one request with the cookie, takes the session cookie of the
// answer, and returns the answer and its body.
func (b *Browser) Do(method, path string, form url.Values) (*http.Response, string) {
	b.T.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range b.Header {
		req.Header[k] = v
	}
	if b.Cookie != nil {
		req.AddCookie(b.Cookie)
	}
	w := httptest.NewRecorder()
	b.App.ServeHTTP(w, req)
	res := w.Result()
	for _, c := range res.Cookies() {
		if c.Name != b.Name {
			continue
		}
		if c.MaxAge < 0 {
			b.Cookie = nil
		} else {
			b.Cookie = c
		}
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		b.T.Fatal(err)
	}
	return res, string(body)
}

// Expired reports whether the response expires the named cookie.
func Expired(res *http.Response, name string) bool {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c.MaxAge < 0
		}
	}
	return false
}
