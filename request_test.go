package redistore

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/sessions"
)

// The tests of the request's session state (request.go), one per path real
// applications take, each interleaved by hand on every target, in both
// modes, with field TTLs on and off. TestModel drives the same paths at
// random against a model of the README.

// valuesOf loads the browser's session in a fresh request and returns its
// values, failing when it does not load.
func valuesOf(t testing.TB, s *Store, b *browser) map[any]any {
	t.Helper()
	sess, _ := b.get(t, s, "sid")
	if sess.IsNew {
		t.Fatal("the session does not load")
	}
	return sess.Values
}

// outcomes records the outcome of each Save of a store.
type outcomes struct {
	mu   sync.Mutex
	list []Outcome
}

func (o *outcomes) Observe(_ context.Context, e Event) {
	if e.Op == OpSave {
		o.mu.Lock()
		o.list = append(o.list, e.Outcome)
		o.mu.Unlock()
	}
}

func (o *outcomes) last() Outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.list) == 0 {
		return 0
	}
	return o.list[len(o.list)-1]
}

// TestLogoutThenSaveStartsAFreshSession: after a logout the session object
// is a new, empty session; a flash and a Save in the same request store
// it under a new ID, whether the application set MaxAge again or left it
// at the logout's -1 (the logout consumed it), and a middleware's Save
// after that keeps it; a Save with nothing set after the logout stores
// nothing; the logged-out cookie opens nothing, then or later.
func TestLogoutThenSaveStartsAFreshSession(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		maxAge int // set after the logout; 0: left at -1
		flash  bool
	}{
		{"MaxAge set again, a flash", 3600, true},
		{"MaxAge left at -1, a flash", 0, true},
		{"MaxAge left at -1, nothing set", 0, false},
		{"MaxAge set again, nothing set", 3600, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			forEachFleet(t, func(t *testing.T, tg *target, cfg Config) {
				cfg.UserKey = "uid"
				s := newStore(t, tg, cfg)
				s.Options.MaxAge = 7200
				b, _ := signIn(t, s, "alice")
				stolen := cookieJar(b.cookies["sid"])
				sess, r := b.get(t, s, "sid")
				oldID := sess.ID
				w := httptest.NewRecorder()
				sess.Options.MaxAge = -1
				noErr(t, s.Save(r, w, sess))
				if sess.ID != "" || len(sess.Values) != 0 || !sess.IsNew {
					t.Fatalf("after logout: ID %q, %d values, IsNew %v; want a new, empty session", sess.ID, len(sess.Values), sess.IsNew)
				}
				want := 7200 // the store's, as for any new session
				if c.maxAge != 0 {
					sess.Options.MaxAge, want = c.maxAge, c.maxAge
				}
				if c.flash {
					sess.AddFlash("you are logged out")
				}
				noErr(t, s.Save(r, w, sess))
				// The middleware's Save of every session of the request.
				noErr(t, s.Save(r, w, sess))
				cookies := w.Result().Cookies()
				if !c.flash {
					if sess.ID != "" || !sess.IsNew {
						t.Fatalf("a Save with nothing set after the logout stored the session under %q", sess.ID)
					}
					for _, ck := range cookies {
						if ck.MaxAge >= 0 {
							t.Fatalf("cookies %v: a Save with nothing set after the logout set a live cookie", cookies)
						}
					}
					ended(t, s, stolen, "the logged-out cookie")
					sameHandles(t, "alice after logout", handles(t, s, "alice"))
					return
				}
				if sess.ID == "" || sess.ID == oldID {
					t.Fatalf("the Save after logout stored the session under ID %q (old %q)", sess.ID, oldID)
				}
				if len(cookies) != 3 || cookies[0].MaxAge >= 0 || cookies[1].MaxAge != want || cookies[2].MaxAge != want {
					t.Fatalf("cookies %v: want the logout's, then the new session's (MaxAge %d) twice", cookies, want)
				}
				if id, err := s.SessionID("sid", cookies[2].Value); err != nil || id != sess.ID {
					t.Fatalf("the last cookie names %q (%v), want the new session", id, err)
				}
				b.keep(t, w)
				got := valuesOf(t, s, b)
				if len(got) != 1 || got["_flash"] == nil {
					t.Fatalf("the new session holds %v, want only the flash", got)
				}
				info, err := s.Lookup(context.Background(), sess.ID)
				noErr(t, err)
				if left := info.Expires.Sub(info.Now); left > time.Duration(want)*time.Second+2*time.Second || left < time.Duration(want)*time.Second-time.Minute {
					t.Fatalf("the new session expires in %v, want about %d s", left, want)
				}
				ended(t, s, stolen, "the logged-out cookie")
				sameHandles(t, "alice after logout", handles(t, s, "alice"))
				// Another Save of the same request changes nothing of that.
				noErr(t, s.Save(r, httptest.NewRecorder(), sess))
				ended(t, s, stolen, "the logged-out cookie after a fourth Save")
			})
		})
	}
}

// TestSecondSaveWritesOnlyItsChanges: a handler's Save, another tab's
// change, then the middleware's Save (gorilla's sessions.Save): both
// changes stay, and a sign-out done meanwhile in the other tab is not
// undone.
func TestSecondSaveWritesOnlyItsChanges(t *testing.T) {
	t.Parallel()
	forEachFleet(t, func(t *testing.T, tg *target, cfg Config) {
		cfg.UserKey = "uid"
		seen := &outcomes{}
		cfg.Observer = seen
		s := newStore(t, tg, cfg)

		t.Run("another tab's change stays", func(t *testing.T) {
			b, _ := signIn(t, s, "alice")
			sess, r := b.get(t, s, "sid")
			sess.Values["a"] = 1
			noErr(t, s.Save(r, httptest.NewRecorder(), sess)) // the handler's
			other, r2 := b.get(t, s, "sid")
			other.Values["b"] = 2
			noErr(t, s.Save(r2, httptest.NewRecorder(), other))
			noErr(t, s.Save(r, httptest.NewRecorder(), sess)) // the middleware's
			equal(t, "outcome of a second Save with nothing new", seen.last(), OutcomeSkipped)
			got := valuesOf(t, s, b)
			if got["a"] != 1 || got["b"] != 2 {
				t.Fatalf("stored %v, want a and b", got)
			}
			sess.Values["c"] = 3
			noErr(t, s.Save(r, httptest.NewRecorder(), sess)) // a third, with a change
			got = valuesOf(t, s, b)
			if got["a"] != 1 || got["b"] != 2 || got["c"] != 3 {
				t.Fatalf("stored %v, want a, b and c", got)
			}
		})
		t.Run("a sign-out in another tab is not undone", func(t *testing.T) {
			b, _ := signIn(t, s, "dave")
			sess, r := b.get(t, s, "sid")
			sess.Values["a"] = 1
			noErr(t, s.Save(r, httptest.NewRecorder(), sess))
			other, r2 := b.get(t, s, "sid")
			delete(other.Values, "uid")
			noErr(t, s.Save(r2, httptest.NewRecorder(), other))
			noErr(t, s.Save(r, httptest.NewRecorder(), sess))
			if got := valuesOf(t, s, b); got["uid"] != nil {
				t.Fatalf("the second Save signed the session in again: %v", got)
			}
			sameHandles(t, "dave", handles(t, s, "dave"))
			n, err := s.DeleteUserSessions(context.Background(), "dave")
			noErr(t, err)
			equal(t, "dave's sessions ended", n, 0)
			lives(t, s, b, "the signed-out session")
		})
	})
}

// TestAccountSwitchThatMergesFollowsTheIndex: signed in as bob; another
// tab saves a change; this request switches to carol and saves, merging:
// the session is on carol's list, not bob's, and carol's "log out
// everywhere" ends it.
func TestAccountSwitchThatMergesFollowsTheIndex(t *testing.T) {
	t.Parallel()
	forEachFleet(t, func(t *testing.T, tg *target, cfg Config) {
		cfg.UserKey = "uid"
		s := newStore(t, tg, cfg)
		b, _ := signIn(t, s, "bob")
		sess, r := b.get(t, s, "sid")
		other, r2 := b.get(t, s, "sid")
		other.Values["cart"] = "3 items"
		noErr(t, s.Save(r2, httptest.NewRecorder(), other))
		sess.Values["uid"] = "carol"
		noErr(t, s.Save(r, httptest.NewRecorder(), sess))
		if got := valuesOf(t, s, b); got["uid"] != "carol" || got["cart"] != "3 items" {
			t.Fatalf("stored %v", got)
		}
		sameHandles(t, "carol", handles(t, s, "carol"), s.Handle(sess))
		sameHandles(t, "bob", handles(t, s, "bob"))
		n, err := s.DeleteUserSessions(context.Background(), "carol")
		noErr(t, err)
		equal(t, "carol's sessions ended", n, 1)
		ended(t, s, b, "carol's session after log out everywhere")
	})
}

// TestRenewalRacingAChange: a request loads alice's session with a long
// MaxAge and a renewal due; another tab switches it to bob with a short
// MaxAge; the first request saves, unchanged. The renewal must not give
// bob's session the first request's lifetime: it stays short, on bob's
// list, and ends when bob's entry would.
func TestRenewalRacingAChange(t *testing.T) {
	t.Parallel()
	forEachFleet(t, func(t *testing.T, tg *target, cfg Config) {
		cfg.UserKey = "uid"
		cfg.TouchInterval = -1 // a renewal on every Save: always due
		s := newStore(t, tg, cfg)
		s.Options.MaxAge = 86400 // the site's lifetime
		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		sess.Values["uid"] = "alice"
		b.save(t, s, r, sess)

		sess, r = b.get(t, s, "sid")
		other, r2 := b.get(t, s, "sid")
		other.Values["uid"] = "bob"
		other.Options.MaxAge = 60
		saved := time.Now()
		noErr(t, s.Save(r2, httptest.NewRecorder(), other))
		noErr(t, s.Save(r, httptest.NewRecorder(), sess))
		if ttl := storedTTL(t, tg, s, sess.ID); ttl > 61*time.Second {
			t.Fatalf("bob's session is kept %v after the stale renewal, want bob's 60 s", ttl)
		}
		nearTTL(t, storedTTL(t, tg, s, sess.ID), 60*time.Second, saved)
		sameHandles(t, "bob", handles(t, s, "bob"), s.Handle(sess))
		sameHandles(t, "alice", handles(t, s, "alice"))
		if got := valuesOf(t, s, b); got["uid"] != "bob" {
			t.Fatalf("stored %v", got)
		}
	})
}

// TestADeleteDoesNotBeatALaterSet: a key one request deleted stays deleted
// only if the other did not set it meanwhile; a flash added meanwhile
// survives another request's reading its flashes.
func TestADeleteDoesNotBeatALaterSet(t *testing.T) {
	t.Parallel()
	forEachFleet(t, func(t *testing.T, tg *target, cfg Config) {
		s := newStore(t, tg, cfg)
		b := startedSession(t, s)

		sess, r := b.get(t, s, "sid")
		sess.Values["reset"] = "old"
		b.save(t, s, r, sess)
		a, ra := b.get(t, s, "sid")
		delete(a.Values, "reset")
		other, rb := b.get(t, s, "sid")
		other.Values["reset"] = "new"
		noErr(t, s.Save(rb, httptest.NewRecorder(), other))
		noErr(t, s.Save(ra, httptest.NewRecorder(), a))
		if got := valuesOf(t, s, b); got["reset"] != "new" {
			t.Fatalf("reset is %v after a delete met a later set, want new", got["reset"])
		}
		// And a delete of a key nobody else touched still deletes.
		a, ra = b.get(t, s, "sid")
		delete(a.Values, "reset")
		noErr(t, s.Save(ra, httptest.NewRecorder(), a))
		if got := valuesOf(t, s, b); got["reset"] != nil {
			t.Fatalf("reset is %v after its delete", got["reset"])
		}

		sess, r = b.get(t, s, "sid")
		sess.AddFlash("one")
		b.save(t, s, r, sess)
		reader, rr := b.get(t, s, "sid")
		if f := reader.Flashes(); len(f) != 1 {
			t.Fatalf("flashes %v", f)
		}
		adder, radd := b.get(t, s, "sid")
		adder.AddFlash("two")
		noErr(t, s.Save(radd, httptest.NewRecorder(), adder))
		noErr(t, s.Save(rr, httptest.NewRecorder(), reader))
		next, rn := b.get(t, s, "sid")
		f := next.Flashes()
		if len(f) == 0 || f[len(f)-1] != "two" {
			t.Fatalf("flashes after the reader saved: %v, want the one added meanwhile", f)
		}
		b.save(t, s, rn, next)
	})
}

// TestNaNIsNoChange: a value holding NaN that a request never touched is
// not a change: another request's change to it stands, and an unchanged
// session holding one is not written.
func TestNaNIsNoChange(t *testing.T) {
	t.Parallel()
	forEachFleet(t, func(t *testing.T, tg *target, cfg Config) {
		seen := &outcomes{}
		cfg.Observer = seen
		s := newStore(t, tg, cfg)
		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		sess.Values["x"] = math.NaN()
		sess.Values["in"] = map[string]any{"nan": math.NaN()}
		sess.Values["y"] = 1
		b.save(t, s, r, sess)

		sess, r = b.get(t, s, "sid")
		noErr(t, s.Save(r, httptest.NewRecorder(), sess))
		equal(t, "outcome of an unchanged session holding NaN", seen.last(), OutcomeSkipped)

		a, ra := b.get(t, s, "sid")
		a.Values["y"] = 2
		other, rb := b.get(t, s, "sid")
		other.Values["x"] = 5.0
		noErr(t, s.Save(rb, httptest.NewRecorder(), other))
		noErr(t, s.Save(ra, httptest.NewRecorder(), a))
		got := valuesOf(t, s, b)
		if got["x"] != 5.0 || got["y"] != 2 {
			t.Fatalf("stored %v, want x 5 (the other request's) and y 2", got)
		}
	})
}

// mapHolder is an application type holding a map, which gob writes in
// random order.
type mapHolder struct{ M map[string]int }

func init() {
	gob.Register(mapHolder{})
	gob.Register(map[string]any{})
}

// TestUnchangedSessionsAreNotRewritten: sessions whose serialized bytes
// vary from Save to Save (gob's maps, also inside an application type
// under the compact codec) are not written when nothing changed.
func TestUnchangedSessionsAreNotRewritten(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		for _, ser := range []Serializer{GobSerializer{}, CompactSerializer{}} {
			seen := &outcomes{}
			s := newStore(t, tg, Config{Mode: mode, Serializer: ser, Observer: seen})
			b := newBrowser()
			sess, r := b.get(t, s, "sid")
			sess.Values["m"] = map[string]any{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}
			sess.Values["t"] = mapHolder{M: map[string]int{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}}
			b.save(t, s, r, sess)
			for range 20 {
				sess, r := b.get(t, s, "sid")
				noErr(t, s.Save(r, httptest.NewRecorder(), sess))
				if o := seen.last(); o != OutcomeSkipped {
					t.Fatalf("%T: an unchanged session was %v", ser, o)
				}
			}
		}
	})
}

// TestNilValues: Values set to nil is an empty map everywhere: Save, a
// Save that merges, RegenerateID and logout.
func TestNilValues(t *testing.T) {
	t.Parallel()
	forEachFleet(t, func(t *testing.T, tg *target, cfg Config) {
		cfg.UserKey = "uid"
		s := newStore(t, tg, cfg)
		b, _ := signIn(t, s, "alice")
		a, ra := b.get(t, s, "sid")
		other, rb := b.get(t, s, "sid")
		other.Values["theme"] = "dark"
		noErr(t, s.Save(rb, httptest.NewRecorder(), other))
		a.Values = nil // a merge is needed: another request saved meanwhile
		noErr(t, s.Save(ra, httptest.NewRecorder(), a))
		if got := valuesOf(t, s, b); got["uid"] != nil || got["cart"] != nil || got["theme"] != "dark" {
			t.Fatalf("stored %v: want what the other request set, and nothing else", got)
		}
		a.Values = nil
		w := httptest.NewRecorder()
		noErr(t, s.RegenerateID(ra, w, a))
		b.keep(t, w)
		a.Values = nil
		a.Options.MaxAge = -1
		noErr(t, s.Save(ra, httptest.NewRecorder(), a))
		fresh := newBrowser()
		n, r := fresh.get(t, s, "sid")
		n.Values = nil
		fresh.save(t, s, r, n)
		if got := valuesOf(t, s, fresh); len(got) != 0 {
			t.Fatalf("a new session saved with nil Values holds %v", got)
		}
		n, r = fresh.get(t, s, "sid")
		n.Values = nil
		RegenerateOnSave(n) // as framework middleware does
		fresh.save(t, s, r, n)
		valuesOf(t, s, fresh)
	})
}

// TestSaveAfterEndedSaysEnded: once a Save found the session ended, every
// later Save and RegenerateID of the request says so and writes nothing;
// a logout still works and gives a new session.
func TestSaveAfterEndedSaysEnded(t *testing.T) {
	t.Parallel()
	forEachFleet(t, func(t *testing.T, tg *target, cfg Config) {
		s := newStore(t, tg, cfg)
		b := startedSession(t, s)
		sess, r := b.get(t, s, "sid")
		noErr(t, s.Delete(context.Background(), sess.ID))
		sess.Values["x"] = 1
		if err := s.Save(r, httptest.NewRecorder(), sess); !errors.Is(err, ErrEnded) {
			t.Fatalf("Save of a deleted session: %v", err)
		}
		for _, save := range []func(*http.Request, http.ResponseWriter, *sessions.Session) error{s.Save, s.RegenerateID} {
			w := httptest.NewRecorder()
			if err := save(r, w, sess); !errors.Is(err, ErrEnded) {
				t.Fatalf("a later Save of the ended session: %v, want ErrEnded", err)
			}
			if len(w.Result().Cookies()) != 0 {
				t.Fatal("a Save of an ended session set a cookie")
			}
		}
		sess.ID = "" // a cleared ID does not move an ended session anywhere
		if err := s.Save(r, httptest.NewRecorder(), sess); !errors.Is(err, ErrEnded) {
			t.Fatalf("a Save of the ended session with a cleared ID: %v, want ErrEnded", err)
		}
		ended(t, s, b, "the deleted session")
		sess.Options.MaxAge = -1
		noErr(t, s.Save(r, httptest.NewRecorder(), sess))
		sess.Options.MaxAge = 60
		sess.Values["fresh"] = true
		w := httptest.NewRecorder()
		noErr(t, s.Save(r, w, sess))
		b.keep(t, w)
		if got := valuesOf(t, s, b); len(got) != 1 || got["fresh"] != true {
			t.Fatalf("the session after logout holds %v", got)
		}
	})
}

// routeKey marks a request value derived by a router.
type routeKey struct{}

// TestSaveWithADerivedRequest: gorilla's registry loads a session with the
// request value it was created with; a handler that saves with a request
// derived after that (r.WithContext in a router, http.TimeoutHandler) still
// saves the session it loaded: the same ID, conditionally, and a logout
// through it ends it.
func TestSaveWithADerivedRequest(t *testing.T) {
	t.Parallel()
	forEachFleet(t, func(t *testing.T, tg *target, cfg Config) {
		cfg.UserKey = "uid"
		s := newStore(t, tg, cfg)

		t.Run("Saves keep the ID, and a logout ends it", func(t *testing.T) {
			b, first := signIn(t, s, "alice")
			stolen := cookieJar(b.cookies["sid"])
			for i := range 3 {
				r := b.request()
				s.Get(r, "prefs") // a middleware's session: the registry is made on r
				r2 := r.WithContext(context.WithValue(r.Context(), routeKey{}, i))
				sess, err := s.Get(r2, "sid")
				noErr(t, err)
				sess.Values["n"] = i
				b.save(t, s, r2, sess)
				equal(t, "ID after a Save with a derived request", sess.ID, first.ID)
			}
			sameHandles(t, "alice", handles(t, s, "alice"), s.Handle(first))
			r := b.request()
			s.Get(r, "prefs")
			r2 := r.WithContext(context.WithValue(r.Context(), routeKey{}, "logout"))
			sess, _ := s.Get(r2, "sid")
			sess.Options.MaxAge = -1
			b.save(t, s, r2, sess)
			ended(t, s, stolen, "the cookie from before the logout")
			sameHandles(t, "alice after logout", handles(t, s, "alice"))
		})
		t.Run("a session ended meanwhile stays ended", func(t *testing.T) {
			b, _ := signIn(t, s, "bob")
			r := b.request()
			s.Get(r, "prefs")
			r2 := r.WithContext(context.WithValue(r.Context(), routeKey{}, "route"))
			sess, err := s.Get(r2, "sid")
			noErr(t, err)
			n, err := s.DeleteUserSessions(context.Background(), "bob")
			noErr(t, err)
			equal(t, "ended", n, 1)
			sess.Values["cart"] = "3 items"
			if err := s.Save(r2, httptest.NewRecorder(), sess); !errors.Is(err, ErrEnded) {
				t.Fatalf("Save with a derived request after log out everywhere: %v, want ErrEnded", err)
			}
			ended(t, s, b, "bob's session")
		})
		t.Run("through http.TimeoutHandler", func(t *testing.T) {
			b, first := signIn(t, s, "carol")
			stolen := cookieJar(b.cookies["sid"])
			inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sess, _ := s.Get(r, "sid")
				sess.Values["visits"] = 1
				if err := sess.Save(r, w); err != nil {
					t.Errorf("Save: %v", err)
				}
			})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s.Get(r, "prefs")
				http.TimeoutHandler(inner, 5*time.Second, "timeout").ServeHTTP(w, r)
			})
			w := httptest.NewRecorder()
			h.ServeHTTP(w, b.request())
			b.keep(t, w)
			lives(t, s, stolen, "the session saved through http.TimeoutHandler, under its ID")
			sameHandles(t, "carol", handles(t, s, "carol"), s.Handle(first))
		})
	})
}

// TestLogoutThatFailsCanBeRetried: a logout whose delete fails returns the
// error and leaves the session as it was, so that the application's retry
// deletes it.
func TestLogoutThatFailsCanBeRetried(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		fc := &failingClient{Client: tg.client, names: []string{"EVALSHA", "EVAL", "UNLINK"}}
		s := newStore(t, tg, Config{Mode: mode, UserKey: "uid", Client: fc})
		b, _ := signIn(t, s, "alice")
		stolen := cookieJar(b.cookies["sid"])
		sess, r := b.get(t, s, "sid")
		sess.Options.MaxAge = -1
		fc.armed.Store(true)
		if err := s.Save(r, httptest.NewRecorder(), sess); err == nil {
			t.Fatal("a logout whose delete failed: no error")
		}
		if sess.ID == "" {
			t.Fatal("a logout whose delete failed cleared the session's ID")
		}
		noErr(t, s.Save(r, httptest.NewRecorder(), sess)) // the application retries
		ended(t, s, stolen, "the session after the retried logout")
		sameHandles(t, "alice", handles(t, s, "alice"))
	})
}

// TestNegativeZeroIsAChange: 0 changed to -0 (or back) is a change: written,
// and kept through a merge.
func TestNegativeZeroIsAChange(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		for _, ser := range []Serializer{CompactSerializer{}, GobSerializer{}} {
			seen := &outcomes{}
			s := newStore(t, tg, Config{Mode: mode, Serializer: ser, Observer: seen})
			b := newBrowser()
			sess, r := b.get(t, s, "sid")
			sess.Values["f"] = 0.0
			sess.Values["t"] = mapHolder{M: map[string]int{"a": 1, "b": 2}} // gob inside: not canonical
			b.save(t, s, r, sess)
			sess, r = b.get(t, s, "sid")
			sess.Values["f"] = math.Copysign(0, -1)
			noErr(t, s.Save(r, httptest.NewRecorder(), sess))
			equal(t, "outcome of 0 -> -0", seen.last(), OutcomeWritten)
			if f := valuesOf(t, s, b)["f"].(float64); !math.Signbit(f) {
				t.Fatalf("%T: stored %v, want -0", ser, f)
			}
			a, ra := b.get(t, s, "sid")
			a.Values["f"] = 0.0
			other, rb := b.get(t, s, "sid")
			other.Values["x"] = 1
			noErr(t, s.Save(rb, httptest.NewRecorder(), other))
			noErr(t, s.Save(ra, httptest.NewRecorder(), a))
			if f := valuesOf(t, s, b)["f"].(float64); math.Signbit(f) {
				t.Fatalf("%T: a merge lost the change of -0 to 0", ser)
			}
		}
	})
}

// TestALifetimeARequestSetsIsApplied: a request that sets the session's
// lifetime itself ("remember me") and meets another request's write
// meanwhile still gets it: the lifetime is one of its changes. The user
// index is planned for it, so the entry outlives the session.
func TestALifetimeARequestSetsIsApplied(t *testing.T) {
	t.Parallel()
	forEachFleet(t, func(t *testing.T, tg *target, cfg Config) {
		cfg.UserKey = "uid"
		s := newStore(t, tg, cfg)
		s.Options.MaxAge = 3600
		b, _ := signIn(t, s, "alice")
		sess, r := b.get(t, s, "sid")
		sess.Options.MaxAge = 30 * 86400 // remember me
		other, r2 := b.get(t, s, "sid")
		other.Values["cart"] = "3 items"
		noErr(t, s.Save(r2, httptest.NewRecorder(), other))
		saved := time.Now()
		noErr(t, s.Save(r, httptest.NewRecorder(), sess))
		nearTTL(t, storedTTL(t, tg, s, sess.ID), 30*24*time.Hour, saved)
		if got := valuesOf(t, s, b); got["cart"] != "3 items" {
			t.Fatalf("stored %v: the other request's change is lost", got)
		}
		entry, err := tg.do(t, "HGET", s.indexKey("alice"), rawField(sess.ID)).ToString()
		noErr(t, err)
		deadline, err := strconv.ParseInt(entry[:10], 10, 64)
		noErr(t, err)
		if exp := tg.now().Add(storedTTL(t, tg, s, sess.ID)); time.Unix(deadline, 0).Before(exp) {
			t.Fatalf("alice's index entry ends at %v, before her session (%v)", time.Unix(deadline, 0), exp)
		}
		sameHandles(t, "alice", handles(t, s, "alice"), s.Handle(sess))
	})
}

// TestARetryAfterALostReply: a write that landed but whose reply was lost
// (a stall past Config.Timeout), retried by the application, keeps the
// user signed in, with one session: for a login (RegenerateID), a sign-in
// on a new session, a Save, and in Redis Cluster a move whose delete of
// the old ID was the lost reply.
func TestARetryAfterALostReply(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s, lc, skip := lostReplyStore(t, tg, mode, tg.client)

		retried := func(t *testing.T, b *browser, r *http.Request, save func(*http.Request, http.ResponseWriter, *sessions.Session) error, sess *sessions.Session, skip int32) {
			t.Helper()
			lc.left.Store(skip)
			if err := save(r, httptest.NewRecorder(), sess); err == nil {
				t.Fatal("the write with a lost reply: no error")
			}
			lc.left.Store(-1)
			w := httptest.NewRecorder()
			noErr(t, save(r, w, sess)) // the application retries
			b.keep(t, w)
		}
		t.Run("login", func(t *testing.T) {
			b := startedSession(t, s)
			old := cookieJar(b.cookies["sid"])
			sess, r := b.get(t, s, "sid")
			sess.Values["uid"] = "alice"
			retried(t, b, r, s.RegenerateID, sess, skip)
			if got := valuesOf(t, s, b); got["uid"] != "alice" {
				t.Fatalf("after the retried login the browser's session holds %v", got)
			}
			ended(t, s, old, "the ID from before the login")
			sameHandles(t, "alice", handles(t, s, "alice"), s.Handle(sess))
		})
		if tg.cluster != nil {
			t.Run("login whose delete of the old ID was lost", func(t *testing.T) {
				b := startedSession(t, s)
				old := cookieJar(b.cookies["sid"])
				sess, r := b.get(t, s, "sid")
				sess.Values["uid"] = "dave"
				retried(t, b, r, s.RegenerateID, sess, 2) // the index step, the new ID, then the delete
				if got := valuesOf(t, s, b); got["uid"] != "dave" {
					t.Fatalf("after the retried login the browser's session holds %v", got)
				}
				ended(t, s, old, "the ID from before the login")
				sameHandles(t, "dave", handles(t, s, "dave"), s.Handle(sess))
			})
		}
		t.Run("sign-in on a new session", func(t *testing.T) {
			b := newBrowser()
			sess, r := b.get(t, s, "sid")
			sess.Values["uid"] = "bob"
			retried(t, b, r, s.Save, sess, skip)
			valuesOf(t, s, b)
			sameHandles(t, "bob: one browser, one sign-in", handles(t, s, "bob"), s.Handle(sess))
		})
		t.Run("save", func(t *testing.T) {
			b, _ := signIn(t, s, "carol")
			sess, r := b.get(t, s, "sid")
			sess.Values["cart"] = "9 items"
			delete(sess.Values, "uid")
			retried(t, b, r, s.Save, sess, 0)
			if got := valuesOf(t, s, b); got["cart"] != "9 items" || got["uid"] != nil {
				t.Fatalf("stored %v", got)
			}
			sameHandles(t, "carol", handles(t, s, "carol"))
		})
	})
}

// TestARetryNeverRevivesAnEndedID: a write under a new ID (a sign-in on a
// new session, a login with RegenerateID) lands but its reply is lost;
// "log out everywhere" ends the session it wrote before the application
// retries. The retry completes the sign-in under another new ID, or, for a
// login whose move had deleted the old ID (one atomic step outside Redis
// Cluster), says ErrEnded: that session ended. Either way the ended ID
// opens nothing, ever, and the user's list holds only the retried sign-in.
func TestARetryNeverRevivesAnEndedID(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s, lc, skip := lostReplyStore(t, tg, mode, tg.client)
		for _, c := range []struct {
			name  string
			start func() *browser
			save  func(*http.Request, http.ResponseWriter, *sessions.Session) error
		}{
			{"sign-in on a new session", newBrowser, s.Save},
			{"login with RegenerateID", func() *browser { return startedSession(t, s) }, s.RegenerateID},
		} {
			t.Run(c.name, func(t *testing.T) {
				user := "victim-" + randomPrefix()
				b := c.start()
				sess, r := b.get(t, s, "sid")
				sess.Values["uid"] = user
				lc.left.Store(skip)
				if err := c.save(r, httptest.NewRecorder(), sess); err == nil {
					t.Fatal("the write with a lost reply: no error")
				}
				lc.left.Store(-1)
				endedID, endedHandle := sess.ID, s.Handle(sess)
				sameHandles(t, "the landed write", handles(t, s, user), endedHandle)
				n, err := s.DeleteUserSessions(context.Background(), user)
				noErr(t, err)
				equal(t, "sessions ended", n, 1)
				w := httptest.NewRecorder()
				err = c.save(r, w, sess) // the application retries
				if errors.Is(err, ErrEnded) && c.name != "sign-in on a new session" {
					equal(t, "cookies of the retry that found the session ended", len(w.Result().Cookies()), 0)
					ended(t, s, b, "the browser's cookie")
					sameHandles(t, "after the retry", handles(t, s, user))
					return
				}
				noErr(t, err)
				b.keep(t, w)
				if sess.ID == endedID {
					t.Fatal("the retry wrote under the ID log out everywhere had ended")
				}
				info, err := s.Lookup(context.Background(), endedID)
				noErr(t, err)
				if info.Found {
					t.Fatal("the ended ID holds a session again")
				}
				endedCookie, err := s.codecs[0].Encode("sid", []byte(endedID))
				noErr(t, err)
				ended(t, s, cookieJar(&http.Cookie{Name: "sid", Value: endedCookie}), "the ended ID's cookie")
				sameHandles(t, "after the retry", handles(t, s, user), s.Handle(sess))
				if got := valuesOf(t, s, b); got["uid"] != user {
					t.Fatalf("after the retry the browser's session holds %v", got)
				}
			})
		}
	})
}

// TestARetryLosesToAnEndMeanwhile: the retry of a sign-in whose first
// write landed (with one more value set since) finds it, and "log out
// everywhere" ends it between that read and the retry's write: the write
// is conditional on what it read, so the end stands (ErrEnded) and the ID
// stays ended.
func TestARetryLosesToAnEndMeanwhile(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		hc := &afterReadClient{Client: tg.client}
		s, lc, skip := lostReplyStore(t, tg, mode, hc)
		admin := newStore(t, tg, Config{Mode: mode, UserKey: "uid"})
		user := "victim-" + randomPrefix()
		sess, r := newBrowser().get(t, s, "sid")
		sess.Values["uid"] = user
		lc.left.Store(skip)
		if err := s.Save(r, httptest.NewRecorder(), sess); err == nil {
			t.Fatal("the write with a lost reply: no error")
		}
		lc.left.Store(-1)
		endedID := sess.ID
		n := -1
		hc.hook = func() {
			var err error
			n, err = admin.DeleteUserSessions(context.Background(), user)
			noErr(t, err)
		}
		hc.armed.Store(true)
		sess.Values["cart"] = "1 item"
		w := httptest.NewRecorder()
		if err := s.Save(r, w, sess); !errors.Is(err, ErrEnded) {
			t.Fatalf("the retry: %v, want ErrEnded", err)
		}
		equal(t, "sessions log out everywhere ended", n, 1)
		equal(t, "cookies of the retry", len(w.Result().Cookies()), 0)
		info, err := admin.Lookup(context.Background(), endedID)
		noErr(t, err)
		if info.Found {
			t.Fatal("the ended ID holds a session again")
		}
		sameHandles(t, "after the retry", handles(t, admin, user))
	})
}

// TestAFailedLoadNeverSignsTheUserOut: the Quick start's handler, whose Get
// fails once (Redis stalled): it goes on with the new session Get returns,
// whose Save refuses to replace the browser's cookie (ErrUnavailable), so
// the next request finds the user's session again.
func TestAFailedLoadNeverSignsTheUserOut(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		fc := &failingClient{Client: tg.client, names: []string{"GET", "HGET"}}
		store := newStore(t, tg, Config{Mode: mode, Client: fc})
		handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			session, err := store.Get(r, "session")
			if err != nil {
				// A bad cookie or a Redis failure: session is a usable new one.
				t.Logf("session: %v", err)
			}
			n, _ := session.Values["visits"].(int)
			session.Values["visits"] = n + 1
			if err := session.Save(r, w); err != nil {
				http.Error(w, "could not save the session", http.StatusInternalServerError)
				return
			}
			fmt.Fprintf(w, "visits: %d", n+1)
		})
		b := newBrowser()
		visit := func() *httptest.ResponseRecorder {
			w := httptest.NewRecorder()
			handler.ServeHTTP(w, b.request())
			b.keep(t, w)
			return w
		}
		visit()
		sess, r := b.get(t, store, "session")
		sess.Values["user"] = "alice"
		w := httptest.NewRecorder()
		noErr(t, store.RegenerateID(r, w, sess))
		b.keep(t, w)
		fc.armed.Store(true) // the next read of the session fails
		if w := visit(); w.Code != http.StatusInternalServerError || len(w.Result().Cookies()) != 0 {
			t.Fatalf("the request whose read failed: status %d, cookies %v; want 500 and no cookie", w.Code, w.Result().Cookies())
		}
		if body := visit().Body.String(); body != "visits: 2" {
			t.Fatalf("after the failed read: %q, want visits: 2", body)
		}
		if got, _ := b.get(t, store, "session"); got.Values["user"] != "alice" {
			t.Fatalf("one failed read signed alice out: %v", got.Values)
		}
	})
}

// TestLogoutOfASessionGetCouldNotOpen: a request whose Get found the
// cookie's session but could not open it (sealed by a key this store
// lacks, a lowered MaxLength, garbage, a truncated value) gets a new
// session and an error that says so (never ErrUnavailable: Redis
// answered), a Save stores a new session, and a logout deletes the one the
// cookie names, with its entry in the user's index: the old cookie opens
// nothing afterwards, through any store.
func TestLogoutOfASessionGetCouldNotOpen(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		full := newStore(t, tg, Config{Mode: mode, UserKey: "uid", EncryptionKeys: testSealKeys[:1]})
		cases := []struct {
			name    string
			reader  *Store
			spoil   func(t *testing.T, id string) // nil: left as written
			wantErr error
		}{
			{"sealed by a key the store lacks", newStore(t, tg, Config{Mode: mode, UserKey: "uid"}), nil, ErrCorrupt},
			{"longer than MaxLength", newStore(t, tg, Config{Mode: mode, UserKey: "uid", EncryptionKeys: testSealKeys[:1], MaxLength: 16}), nil, ErrTooLarge},
			// A far expiry in front, then what no release wrote.
			{"garbage", full, func(t *testing.T, id string) { put(t, tg, full, id, "\x7f\x00\x00\x00\xffgarbage") }, ErrUnknownFormat},
			{"truncated", full, func(t *testing.T, id string) { put(t, tg, full, id, "ab") }, ErrCorrupt},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				for _, logout := range []bool{false, true} {
					user := "alice-" + randomPrefix()
					b, _ := signIn(t, full, user)
					r := b.request()
					got, err := full.Get(r, "sid")
					noErr(t, err)
					got.Values["cart"] = strings.Repeat("x", 40)
					b.save(t, full, r, got)
					id := got.ID
					stolen := cookieJar(b.cookies["sid"])
					if c.spoil != nil {
						c.spoil(t, id)
					}
					r = b.request()
					got, err = c.reader.Get(r, "sid")
					if !errors.Is(err, c.wantErr) || errors.Is(err, ErrUnavailable) || !got.IsNew {
						t.Fatalf("Get: %v (new %v), want %v and a new session", err, got.IsNew, c.wantErr)
					}
					w := httptest.NewRecorder()
					if !logout {
						got.Values["n"] = 1
						noErr(t, c.reader.Save(r, w, got))
						if got.ID == "" || got.ID == id {
							t.Fatalf("the Save stored the new session under %q", got.ID)
						}
						continue
					}
					got.Options.MaxAge = -1
					noErr(t, c.reader.Save(r, w, got))
					ended(t, full, stolen, "the logged-out cookie")
					info, err := full.Lookup(context.Background(), id)
					noErr(t, err)
					if info.Found {
						t.Fatal("the logout left the session in Redis")
					}
					if c.spoil == nil {
						sameHandles(t, "the user after logout", handles(t, full, user))
					}
				}
			})
		}
	})
}

// put writes v as the stored value of session id, where the store keeps it.
func put(t *testing.T, tg *target, s *Store, id, v string) {
	t.Helper()
	loc, err := s.locate(id)
	noErr(t, err)
	if loc.field != "" {
		tg.do(t, "HSET", loc.key, loc.field, v)
	} else {
		tg.do(t, "SET", loc.key, v, "EX", "600")
	}
}
