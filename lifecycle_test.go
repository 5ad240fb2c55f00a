package redistore

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/sessions"
)

// The tests of a session's life under concurrent requests: two requests of
// one browser, interleaved by hand, on every target and in both modes, with
// field TTLs on (where the server has them) and off.

// forEachFleet runs fn in both modes on every target, with FieldTTLAuto and
// FieldTTLOff stores.
func forEachFleet(t *testing.T, fn func(t *testing.T, tg *target, cfg Config)) {
	t.Helper()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		fts := []FieldTTL{FieldTTLAuto}
		if mode == HashMode {
			fts = append(fts, FieldTTLOff)
		}
		for _, ft := range fts {
			t.Run(ft.String(), func(t *testing.T) {
				tg.prefix = randomPrefix()
				fn(t, tg, Config{Mode: mode, FieldTTL: ft})
			})
		}
	})
}

func TestEndedIsEnded(t *testing.T) {
	t.Parallel()
	forEachFleet(t, func(t *testing.T, tg *target, cfg Config) {
		s := newStore(t, tg, cfg)
		// signedIn returns a browser with a saved session holding a user.
		signedIn := func() *browser {
			b := newBrowser()
			sess, r := b.get(t, s, "sid")
			sess.Values["user"] = "alice"
			b.save(t, s, r, sess)
			return b
		}
		// late loads the session in a request that will save after another
		// request ended it, and changes it.
		late := func(b *browser) (*sessions.Session, *http.Request) {
			sess, r := b.get(t, s, "sid")
			sess.Values["cart"] = "3 items"
			return sess, r
		}
		check := func(t *testing.T, b *browser, sess *sessions.Session, r *http.Request) {
			t.Helper()
			w := httptest.NewRecorder()
			err := s.Save(r, w, sess)
			if !errors.Is(err, ErrEnded) {
				t.Fatalf("Save after the session ended: %v, want ErrEnded", err)
			}
			if c := w.Result().Cookies(); len(c) != 0 {
				t.Fatalf("Save after the session ended set the cookie %v", c)
			}
			if got, _ := b.get(t, s, "sid"); !got.IsNew {
				t.Fatalf("the ended session's cookie opens it again: %v", got.Values)
			}
		}

		t.Run("a logout is not undone by a request in flight", func(t *testing.T) {
			b := signedIn()
			sess, r := late(b)
			other := cookieJar(b.cookies["sid"])
			out, r2 := other.get(t, s, "sid")
			out.Options.MaxAge = -1
			other.save(t, s, r2, out)
			check(t, b, sess, r)
		})
		t.Run("a new ID at login is not undone by a request in flight", func(t *testing.T) {
			b := signedIn()
			sess, r := late(b)
			login := cookieJar(b.cookies["sid"])
			in, r2 := login.get(t, s, "sid")
			in.Values["user"] = "bob"
			w := httptest.NewRecorder()
			noErr(t, s.RegenerateID(r2, w, in))
			login.keep(t, w)
			check(t, b, sess, r)
			got, _ := login.get(t, s, "sid")
			if got.IsNew || got.Values["user"] != "bob" || got.Values["cart"] != nil {
				t.Fatalf("the regenerated session holds %v", got.Values)
			}
		})
		t.Run("a revoked session stays revoked", func(t *testing.T) {
			b := signedIn()
			sess, r := late(b)
			loc, _ := s.locate(sess.ID)
			if loc.field != "" {
				tg.do(t, "HDEL", loc.key, loc.field)
			} else {
				tg.do(t, "DEL", loc.key)
			}
			check(t, b, sess, r)
		})
		t.Run("a renewal of an unchanged session does not bring it back", func(t *testing.T) {
			renewing := newStore(t, tg, Config{Mode: cfg.Mode, FieldTTL: cfg.FieldTTL, TouchInterval: -1})
			b := signedIn()
			sess, r := b.get(t, renewing, "sid")
			other := cookieJar(b.cookies["sid"])
			out, r2 := other.get(t, s, "sid")
			out.Options.MaxAge = -1
			other.save(t, s, r2, out)
			w := httptest.NewRecorder()
			if err := renewing.Save(r, w, sess); !errors.Is(err, ErrEnded) {
				t.Fatalf("renewal after the session ended: %v, want ErrEnded", err)
			}
			if len(w.Result().Cookies()) != 0 {
				t.Fatal("the renewal set a cookie for the ended session")
			}
			if got, _ := b.get(t, s, "sid"); !got.IsNew {
				t.Fatal("the renewal brought the session back")
			}
		})
		t.Run("an expired session is not brought back", func(t *testing.T) {
			// The late request must load the session within its second:
			// on a loaded machine that can take more tries.
			for try := 1; ; try++ {
				b := newBrowser()
				sess, r := b.get(t, s, "sid")
				sess.Options.MaxAge = 1
				sess.Values["user"] = "alice"
				b.save(t, s, r, sess)
				sess, r = late(b)
				if sess.IsNew {
					if try == 5 {
						t.Fatal("a session with a 1 s MaxAge never loaded within its second, in 5 tries")
					}
					continue
				}
				tg.advance(t, 2100*time.Millisecond)
				check(t, b, sess, r)
				return
			}
		})
		t.Run("a legacy session logged out while moving stays logged out", func(t *testing.T) {
			prefix := randomPrefix()
			legacyPrefix := "legacy_" + prefix
			ls := newStore(t, tg, Config{Mode: cfg.Mode, FieldTTL: cfg.FieldTTL, KeyPrefix: prefix, Legacy: &Legacy{KeyPrefix: legacyPrefix}})
			_, cookie := bojSession(t, tg, legacyPrefix, false, map[any]any{"user": "alice"})
			b := newBrowser()
			b.cookies["sid"] = cookie
			sess, r := b.get(t, ls, "sid")
			sess.Values["cart"] = "3 items"
			other := cookieJar(cookie)
			out, r2 := other.get(t, ls, "sid")
			out.Options.MaxAge = -1
			other.save(t, ls, r2, out)
			w := httptest.NewRecorder()
			if err := ls.Save(r, w, sess); !errors.Is(err, ErrEnded) {
				t.Fatalf("moving a logged-out legacy session: %v, want ErrEnded", err)
			}
			if got, _ := b.get(t, ls, "sid"); !got.IsNew {
				t.Fatal("the logged-out legacy session came back")
			}
			equal(t, "sessions stored", len(scanPrefix(t, tg, prefix)), 0)
		})
		t.Run("a cleared ID is a new ID, and the old one ends", func(t *testing.T) {
			b := signedIn()
			old := cookieJar(b.cookies["sid"])
			sess, r := b.get(t, s, "sid")
			oldID := sess.ID
			sess.ID = ""
			b.save(t, s, r, sess)
			if sess.ID == "" || sess.ID == oldID {
				t.Fatalf("ID %q after saving a cleared ID (was %q)", sess.ID, oldID)
			}
			if got, _ := b.get(t, s, "sid"); got.IsNew || got.Values["user"] != "alice" {
				t.Fatalf("the new ID lost the values: %v", got.Values)
			}
			if got, _ := old.get(t, s, "sid"); !got.IsNew {
				t.Fatal("the old ID still opens the session")
			}
		})
	})
}

func TestConcurrentChangesMerge(t *testing.T) {
	t.Parallel()
	forEachFleet(t, func(t *testing.T, tg *target, cfg Config) {
		s := newStore(t, tg, cfg)
		start := func(values map[string]any) (*browser, *browser) {
			a := newBrowser()
			sess, r := a.get(t, s, "sid")
			for k, v := range values {
				sess.Values[k] = v
			}
			a.save(t, s, r, sess)
			return a, cookieJar(a.cookies["sid"])
		}
		t.Run("changes to different keys both stay", func(t *testing.T) {
			a, b := start(map[string]any{"n": 0})
			sa, ra := a.get(t, s, "sid")
			sb, rb := b.get(t, s, "sid")
			sa.Values["x"] = "from a"
			sb.Values["y"] = "from b"
			a.save(t, s, ra, sa)
			b.save(t, s, rb, sb)
			got, _ := a.get(t, s, "sid")
			if got.Values["x"] != "from a" || got.Values["y"] != "from b" || got.Values["n"] != 0 {
				t.Fatalf("after both saves: %v", got.Values)
			}
			equal(t, "the later Save's session sees the merge", sb.Values["x"], any("from a"))
		})
		t.Run("a key both changed ends with the later write", func(t *testing.T) {
			a, b := start(map[string]any{"k": "first"})
			sa, ra := a.get(t, s, "sid")
			sb, rb := b.get(t, s, "sid")
			sa.Values["k"] = "from a"
			sb.Values["k"] = "from b"
			a.save(t, s, ra, sa)
			b.save(t, s, rb, sb)
			got, _ := a.get(t, s, "sid")
			equal(t, "k", got.Values["k"], any("from b"))
		})
		t.Run("a key one request deleted stays deleted unless the other set it", func(t *testing.T) {
			a, b := start(map[string]any{"gone": 1, "kept": 1, "reset": 1})
			sa, ra := a.get(t, s, "sid")
			sb, rb := b.get(t, s, "sid")
			delete(sa.Values, "gone")
			delete(sa.Values, "reset")
			sb.Values["reset"] = 2
			sb.Values["other"] = true
			a.save(t, s, ra, sa)
			b.save(t, s, rb, sb)
			got, _ := a.get(t, s, "sid")
			if _, ok := got.Values["gone"]; ok {
				t.Fatalf("a deleted key came back: %v", got.Values)
			}
			if got.Values["kept"] != 1 || got.Values["reset"] != 2 || got.Values["other"] != true {
				t.Fatalf("after both saves: %v", got.Values)
			}
		})
		t.Run("a login's new ID keeps what a request in flight changed", func(t *testing.T) {
			a, b := start(map[string]any{"n": 0})
			sa, ra := a.get(t, s, "sid")
			sb, rb := b.get(t, s, "sid")
			sa.Values["x"] = "from a"
			a.save(t, s, ra, sa)
			sb.Values["user"] = "bob"
			w := httptest.NewRecorder()
			noErr(t, s.RegenerateID(rb, w, sb))
			b.keep(t, w)
			got, _ := b.get(t, s, "sid")
			if got.Values["x"] != "from a" || got.Values["user"] != "bob" {
				t.Fatalf("after the move: %v", got.Values)
			}
		})
	})
}

// TestConcurrentCountersStayExact: many requests at once, each incrementing
// its own key of one shared session many times: every count ends exact. A
// Save that could not merge after MaxMergeAttempts returns ErrConflict, and
// the request is then retried as an application would.
func TestConcurrentCountersStayExact(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode})
		owner := startedSession(t, s)
		cookie := owner.cookies["sid"]
		const workers, increments = 12, 25
		var conflicts atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for i := 0; i < workers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := cookieJar(cookie)
				key := fmt.Sprint("counter", i)
				for n := 0; n < increments; {
					r := b.request()
					sess, err := s.Get(r, "sid")
					if err != nil || sess.IsNew {
						errs <- fmt.Errorf("Get: %v (new: %v)", err, sess.IsNew)
						return
					}
					c, _ := sess.Values[key].(int)
					sess.Values[key] = c + 1
					err = s.Save(r, httptest.NewRecorder(), sess)
					switch {
					case errors.Is(err, ErrConflict):
						conflicts.Add(1)
					case err != nil:
						errs <- err
						return
					default:
						n++
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got, _ := owner.get(t, s, "sid")
		for i := 0; i < workers; i++ {
			equal(t, fmt.Sprint("counter", i), got.Values[fmt.Sprint("counter", i)], any(increments))
		}
		t.Logf("%d increments by %d requests at once; %d Saves gave up with ErrConflict and were retried", workers*increments, workers, conflicts.Load())
	})
}

// TestSimultaneousSavesAllMerge: up to MaxMergeAttempts requests that save
// one session at the same moment all keep their change, with no
// ErrConflict: each failed attempt means another request's save went
// through, so the last of N needs at most N attempts.
func TestSimultaneousSavesAllMerge(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode})
		owner := startedSession(t, s)
		for round := 0; round < 5; round++ {
			var ready, wg sync.WaitGroup
			gate := make(chan struct{})
			errs := make(chan error, MaxMergeAttempts)
			for i := 0; i < MaxMergeAttempts; i++ {
				ready.Add(1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					b := cookieJar(owner.cookies["sid"])
					r := b.request()
					sess, err := s.Get(r, "sid")
					ready.Done()
					if err != nil {
						errs <- err
						return
					}
					sess.Values[fmt.Sprint("r", round, "k", i)] = i
					<-gate
					if err := s.Save(r, httptest.NewRecorder(), sess); err != nil {
						errs <- err
					}
				}()
			}
			ready.Wait() // every request has loaded the session
			close(gate)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		got, _ := owner.get(t, s, "sid")
		equal(t, "values", len(got.Values), 1+5*MaxMergeAttempts)
	})
}

// startedSession returns a browser holding the cookie of a saved session
// {"start": true}, for tests of requests that share it.
func startedSession(t testing.TB, s *Store) *browser {
	t.Helper()
	owner := newBrowser()
	sess, r := owner.get(t, s, "sid")
	sess.Values["start"] = true
	owner.save(t, s, r, sess)
	return owner
}
