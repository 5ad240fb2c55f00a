package ginstore_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
	"github.com/redis/rueidis"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/ginstore"
)

const cookieName = "session"

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	gin.DefaultWriter = io.Discard
	os.Exit(m.Run())
}

// newStore returns an adapter over a redistore Store on a fresh miniredis.
func newStore(t *testing.T) (*ginstore.Store, *miniredis.Miniredis) {
	t.Helper()
	mr := miniredis.RunT(t)
	client, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress: []string{mr.Addr()}, DisableCache: true, ForceSingleClient: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	rs, err := redistore.New(redistore.Config{
		Client:   client,
		KeyPairs: [][]byte{[]byte("a 32-byte hash key for the tests")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return ginstore.New(rs), mr
}

// newRouter serves GET / (a visit counter) and POST /login (a new session ID
// through Store.RegenerateID) from sessions in store. Middlewares go after
// the sessions middleware.
func newRouter(store *ginstore.Store, middlewares ...gin.HandlerFunc) *gin.Engine {
	r := gin.New()
	r.Use(sessions.Sessions(cookieName, store))
	r.Use(middlewares...)
	r.GET("/", func(c *gin.Context) {
		session := sessions.Default(c)
		n, _ := session.Get("visits").(int)
		session.Set("visits", n+1)
		if err := session.Save(); err != nil {
			c.String(http.StatusInternalServerError, "saving: %v", err)
			return
		}
		user, _ := session.Get("user").(string)
		c.String(http.StatusOK, "%d %s", n+1, user)
	})
	r.POST("/login", func(c *gin.Context) {
		session := sessions.Default(c)
		session.Set("user", "alice")
		if err := store.RegenerateID(c, session); err != nil {
			c.String(http.StatusInternalServerError, "saving: %v", err)
			return
		}
		c.Status(http.StatusNoContent)
	})
	return r
}

// serve runs one request with cookie (if any) and returns the response.
func serve(t *testing.T, h http.Handler, method string, cookie *http.Cookie) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, "/", nil)
	if method == http.MethodPost {
		req.URL.Path = "/login"
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	res := w.Result()
	if res.StatusCode >= 300 {
		t.Fatalf("%s %s: %s: %s", method, req.URL.Path, res.Status, w.Body)
	}
	return res
}

// sessionCookie returns the response's session cookie.
func sessionCookie(t *testing.T, res *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range res.Cookies() {
		if c.Name == cookieName {
			return c
		}
	}
	t.Fatalf("no %q cookie in %q", cookieName, res.Header.Values("Set-Cookie"))
	return nil
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCounterSurvivesAcrossRequests(t *testing.T) {
	store, mr := newStore(t)
	r := newRouter(store)
	var cookie *http.Cookie
	for want := 1; want <= 3; want++ {
		res := serve(t, r, http.MethodGet, cookie)
		if got := body(t, res); got != strconv.Itoa(want)+" " {
			t.Fatalf("visit %d: body %q", want, got)
		}
		cookie = sessionCookie(t, res)
	}
	if n := len(mr.Keys()); n != 1 {
		t.Errorf("Redis holds %d keys, want the one bucket of the session", n)
	}
}

func TestDefaultCookieIsRedistores(t *testing.T) {
	store, _ := newStore(t)
	c := sessionCookie(t, serve(t, newRouter(store), http.MethodGet, nil))
	if c.Path != "/" || c.MaxAge != redistore.DefaultMaxAge || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure {
		t.Errorf("cookie %+v: want redistore's defaults (Path /, MaxAge %d, HttpOnly, SameSite Lax)", c, redistore.DefaultMaxAge)
	}
}

func TestOptionsChangeTheCookie(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts sessions.Options
	}{
		{"one hour, Secure, HttpOnly, under /app", sessions.Options{
			Path: "/app", MaxAge: 3600, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		}},
		{"browser session, script-readable, with a domain", sessions.Options{
			Path: "/", Domain: "example.com", MaxAge: 0, SameSite: http.SameSiteNoneMode, Secure: true,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, _ := newStore(t)
			store.Options(tc.opts)
			c := sessionCookie(t, serve(t, newRouter(store), http.MethodGet, nil))
			o := tc.opts
			if c.Path != o.Path || c.Domain != o.Domain || c.MaxAge != o.MaxAge ||
				c.Secure != o.Secure || c.HttpOnly != o.HttpOnly || c.SameSite != o.SameSite {
				t.Errorf("cookie %+v, want the attributes of %+v", c, o)
			}
			if o.MaxAge == 0 && !c.Expires.IsZero() {
				t.Errorf("cookie expires %v, want a browser-session cookie", c.Expires)
			}
		})
	}
}

func TestOptionsMaxAgeIsTheServersLifetime(t *testing.T) {
	store, mr := newStore(t)
	store.Options(sessions.Options{Path: "/", MaxAge: 60, HttpOnly: true})
	r := newRouter(store)
	cookie := sessionCookie(t, serve(t, r, http.MethodGet, nil))

	mr.FastForward(30 * time.Second)
	if got := body(t, serve(t, r, http.MethodGet, cookie)); got != "2 " {
		t.Fatalf("after 30s: body %q, want the session's second visit", got)
	}
	mr.FastForward(61 * time.Second)
	if got := body(t, serve(t, r, http.MethodGet, cookie)); got != "1 " {
		t.Fatalf("61s after the last write: body %q, want a new session", got)
	}
}

func TestOptionsKeepPartitioned(t *testing.T) {
	store, _ := newStore(t)
	store.Redistore().Options.Partitioned = true
	store.Options(sessions.Options{Path: "/", MaxAge: 3600, Secure: true, HttpOnly: true})
	c := sessionCookie(t, serve(t, newRouter(store), http.MethodGet, nil))
	if !c.Partitioned || c.MaxAge != 3600 {
		t.Errorf("cookie %+v: want Partitioned kept and MaxAge 3600", c)
	}
}

func TestOptionsLeaveSessionsInHandAlone(t *testing.T) {
	store, _ := newStore(t)
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	before, _ := store.Get(req, cookieName)
	store.Options(sessions.Options{Path: "/x", MaxAge: 5})
	if before.Options.Path != "/" || before.Options.MaxAge != redistore.DefaultMaxAge {
		t.Errorf("a session loaded before Options has %+v, want the options it was loaded with", before.Options)
	}
}

type traceKey struct{}

// TestRegenerateID: a login through Store.RegenerateID moves the session,
// user and counter, to a new ID and ends the old one, also when a
// middleware (a tracer's, a timeout's) has replaced c.Request with a
// derived request before the session loaded.
func TestRegenerateID(t *testing.T) {
	derive := func(c *gin.Context) {
		c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), traceKey{}, 1))
		c.Next()
	}
	for name, mw := range map[string][]gin.HandlerFunc{"the request as served": nil, "a derived request": {derive}} {
		t.Run(name, func(t *testing.T) {
			store, _ := newStore(t)
			r := newRouter(store, mw...)
			before := sessionCookie(t, serve(t, r, http.MethodGet, nil))
			after := sessionCookie(t, serve(t, r, http.MethodPost, before))
			if after.Value == before.Value {
				t.Fatal("login kept the session ID")
			}
			if got := body(t, serve(t, r, http.MethodGet, after)); got != "2 alice" {
				t.Errorf("after login: body %q, want the counter kept and the user set", got)
			}
			if got := body(t, serve(t, r, http.MethodGet, before)); got != "1 " {
				t.Errorf("the pre-login cookie: body %q, want a new, anonymous session", got)
			}
		})
	}
}

func TestGorillaIsTheSessionGinHolds(t *testing.T) {
	store, _ := newStore(t)
	r := gin.New()
	r.Use(sessions.Sessions(cookieName, store))
	r.GET("/", func(c *gin.Context) {
		session := sessions.Default(c)
		session.Set("k", "v")
		gs := ginstore.Gorilla(session)
		if gs == nil || gs.Values["k"] != "v" {
			c.String(http.StatusInternalServerError, "Gorilla gave %v", gs)
			return
		}
		c.Status(http.StatusNoContent)
	})
	serve(t, r, http.MethodGet, nil)
	if ginstore.Gorilla(nil) != nil {
		t.Error("Gorilla(nil) is not nil")
	}
}

func TestNewNilPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New(nil) did not panic")
		}
	}()
	ginstore.New(nil)
}
