package redistore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redisession/redistore/internal/redistest"
)

// TestServersThatRefuseScripts: on a server that runs no Lua (Valkey 9
// built without its engine) and for an ACL user denied @scripting, a write
// that needs a script fails with ErrNoScripting, which names the cause and
// the fix, while reads keep working; StringMode without UserKey works fully
// where the server has compare-and-set for strings (Valkey 8.1+).
func TestServersThatRefuseScripts(t *testing.T) {
	t.Parallel()
	t.Run("an ACL user denied @scripting", func(t *testing.T) {
		forEachReal(t, func(t *testing.T, tg *target) {
			var b [6]byte
			rand.Read(b[:])
			user := "noscripts" + hex.EncodeToString(b[:])
			tg.do(t, "ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-@scripting")
			c, err := NewClient("redis://" + user + ":pw@" + tg.addr)
			noErr(t, err)
			t.Cleanup(c.Close)
			refused := &target{name: tg.name, client: c, install: tg.install, addr: tg.addr, prefix: tg.prefix}
			checkRefusedScripts(t, refused, tg, tg.install.Valkey() && installHas(tg.install, "DELIFEQ"))
		})
	})
	t.Run("a server without a scripting engine", func(t *testing.T) {
		in := redistest.NeedNoScripting(t)
		srv := in.StartT(t)
		c, err := NewClient("redis://" + srv.Addr)
		noErr(t, err)
		t.Cleanup(c.Close)
		tg := &target{name: in.Name() + "-nolua", client: c, install: in, addr: srv.Addr, prefix: randomPrefix()}
		checkRefusedScripts(t, tg, nil, installHas(in, "DELIFEQ"))
	})
}

// checkRefusedScripts runs the checks on tg, whose client may not run
// scripts; admin, when not nil, may (it writes a HashMode session for the
// refused store to read).
func checkRefusedScripts(t *testing.T, tg, admin *target, cas bool) {
	t.Helper()
	refusal := func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, ErrNoScripting) {
			t.Fatalf("a write that needs a script: %v, want ErrNoScripting", err)
		}
		for _, fix := range []string{"Lua engine", "@scripting", "StringMode without UserKey"} {
			if !strings.Contains(err.Error(), fix) {
				t.Fatalf("the error does not say %q: %v", fix, err)
			}
		}
	}
	t.Run("HashMode writes fail with ErrNoScripting; reads work", func(t *testing.T) {
		s := newStore(t, tg, Config{})
		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		sess.Values["n"] = 1
		w := httptest.NewRecorder()
		refusal(t, s.Save(r, w, sess))
		if len(w.Result().Cookies()) != 0 {
			t.Fatal("a refused write set a cookie")
		}
		if admin != nil {
			writer := newStore(t, admin, Config{})
			b := startedSession(t, writer)
			sess, _ := b.get(t, s, "sid") // read by the refused store
			if sess.IsNew || sess.Values["start"] != true {
				t.Fatalf("a read with scripts refused: %v", sess.Values)
			}
			equal(t, "sessions walked with scripts refused", len(walk(t, s)), 1)
		}
	})
	t.Run("StringMode with UserKey: a sign-in fails with ErrNoScripting", func(t *testing.T) {
		s := newStore(t, tg, Config{Mode: StringMode, UserKey: "uid"})
		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		sess.Values["uid"] = "alice"
		refusal(t, s.Save(r, httptest.NewRecorder(), sess))
	})
	t.Run("StringMode without UserKey", func(t *testing.T) {
		s := newStore(t, tg, Config{Mode: StringMode})
		b := startedSession(t, s) // a new session is one SET
		sess, r := b.get(t, s, "sid")
		sess.Values["n"] = 1
		err := s.Save(r, httptest.NewRecorder(), sess)
		if !cas {
			refusal(t, err)
			return
		}
		noErr(t, err)
		// Concurrent changes merge; a second Save writes what changed since.
		a, ra := b.get(t, s, "sid")
		other, rb := b.get(t, s, "sid")
		a.Values["a"] = 1
		other.Values["b"] = 2
		noErr(t, s.Save(rb, httptest.NewRecorder(), other))
		noErr(t, s.Save(ra, httptest.NewRecorder(), a))
		other, rb = b.get(t, s, "sid")
		other.Values["c"] = 3
		noErr(t, s.Save(rb, httptest.NewRecorder(), other))
		a.Values["d"] = 4
		noErr(t, s.Save(ra, httptest.NewRecorder(), a))
		if got := valuesOf(t, s, b); got["a"] != 1 || got["b"] != 2 || got["c"] != 3 || got["d"] != 4 {
			t.Fatalf("after merges: %v", got)
		}
		// Renewals, a new ID, logout: ended is ended.
		renewing := newStore(t, tg, Config{Mode: StringMode, TouchInterval: -1})
		sess, r = b.get(t, renewing, "sid")
		noErr(t, renewing.Save(r, httptest.NewRecorder(), sess))
		old := cookieJar(b.cookies["sid"])
		sess, r = b.get(t, s, "sid")
		w := httptest.NewRecorder()
		noErr(t, s.RegenerateID(r, w, sess))
		b.keep(t, w)
		ended(t, s, old, "the ID before RegenerateID")
		inFlight, rf := b.get(t, s, "sid")
		out, ro := b.get(t, s, "sid")
		out.Options.MaxAge = -1
		b.save(t, s, ro, out)
		inFlight.Values["late"] = true
		if err := s.Save(rf, httptest.NewRecorder(), inFlight); !errors.Is(err, ErrEnded) {
			t.Fatalf("a Save after logout: %v, want ErrEnded", err)
		}
		ended(t, s, old, "the session after logout")
		b2 := startedSession(t, s)
		sess, _ = b2.get(t, s, "sid")
		noErr(t, s.Delete(context.Background(), sess.ID))
		ended(t, s, b2, "the session after Delete")
		// Sessions reads without scripts; DeleteSessions ends with DELIFEQ.
		b3 := startedSession(t, s)
		equal(t, "sessions walked", len(walk(t, s)), 1)
		n, err := s.DeleteSessions(context.Background(), func(SessionInfo) bool { return true })
		noErr(t, err)
		equal(t, "sessions ended", n, 1)
		ended(t, s, b3, "the session after DeleteSessions")
	})
}

// TestAnUnansweredCASProbeIsAFailureOfRedis: on a server without
// scripting, a store's first conditional write asks whether the server has
// compare-and-set; when that probe gets no answer (a lost connection), the
// call fails as Redis failed (ErrUnavailable), not with ErrNoScripting's
// advice, and the next call, answered, works.
func TestAnUnansweredCASProbeIsAFailureOfRedis(t *testing.T) {
	t.Parallel()
	tg := casTarget(t)
	setup := newStore(t, tg, Config{Mode: StringMode})
	for range 3 {
		newSession(t, setup, map[any]any{"n": 1}, 0)
	}
	fc := &failingClient{Client: tg.client, names: []string{"DELIFEQ"}}
	s := newStore(t, tg, Config{Mode: StringMode, Client: fc})
	fc.armed.Store(true)
	_, err := s.DeleteSessions(context.Background(), func(SessionInfo) bool { return true })
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNoScripting) {
		t.Fatalf("DeleteSessions with the probe unanswered: %v, want ErrUnavailable alone", err)
	}
	n, err := s.DeleteSessions(context.Background(), func(SessionInfo) bool { return true })
	noErr(t, err)
	equal(t, "sessions ended by the next call", n, 3)
}

// TestStatsWithoutScripting: Stats reads its sample without a script, so
// on a server without scripting a StringMode store's figures are the
// values' own, not zeros.
func TestStatsWithoutScripting(t *testing.T) {
	t.Parallel()
	tg := casTarget(t)
	s := newStore(t, tg, Config{Mode: StringMode})
	for range 5 {
		newSession(t, s, map[any]any{"cart": strings.Repeat("book ", 100)}, 0)
	}
	st, err := s.Stats(context.Background(), 10)
	noErr(t, err)
	equal(t, "sessions", st.Sessions, 5)
	equal(t, "sampled", st.Sampled, 5)
	if st.ValueBytes < 20 || st.MaxValueBytes < 20 || st.BytesPerSession == 0 {
		t.Fatalf("figures %+v: want the sampled values' sizes", st)
	}
	if n := st.Compressors["lz4"]; n != 5 {
		t.Fatalf("compressors %v, want lz4 for the 5 sessions", st.Compressors)
	}
}
