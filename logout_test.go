package redistore

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

// Logouts along the paths that are not a plain loaded session: a login
// whose reply was lost, boj/redistore sessions (Config.Legacy) moved by
// another tab, undecodable or unread, and a key of another type. Each
// logout ends every place the session may be stored.

// TestLogoutAfterALostLogin: a login (RegenerateID) whose write landed but
// whose reply was lost, then a logout in the same request: the session the
// login wrote, whose cookie nobody has, goes too, with its index entry.
func TestLogoutAfterALostLogin(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s, lc, skip := lostReplyStore(t, tg, mode, tg.client)
		user := "u-" + randomPrefix()
		b := startedSession(t, s)
		old := cookieJar(b.cookies["sid"])
		sess, r := b.get(t, s, "sid")
		sess.Values["uid"] = user
		lc.left.Store(skip)
		if err := s.RegenerateID(r, httptest.NewRecorder(), sess); err == nil {
			t.Fatal("the login with a lost reply: no error")
		}
		lc.left.Store(-1)
		landed := sess.ID
		sess.Options.MaxAge = -1
		noErr(t, s.Save(r, httptest.NewRecorder(), sess))
		info, err := s.Lookup(context.Background(), landed)
		noErr(t, err)
		if info.Found {
			t.Fatal("the logout left the session the lost login wrote")
		}
		sameHandles(t, "the user after logout", handles(t, s, user))
		ended(t, s, old, "the cookie from before the login")
	})
}

// TestLegacyLogoutEndsTheMovedSession: two tabs load a boj/redistore
// session; one saves (the session moves to its new ID), then the other
// logs out: the session ends in both places, for both cookies, and leaves
// the user's index.
func TestLegacyLogoutEndsTheMovedSession(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		prefix := "legacy_" + tg.prefix
		s := newStore(t, tg, Config{Mode: mode, UserKey: "uid", Legacy: &Legacy{KeyPrefix: prefix}})
		user := "alice-" + randomPrefix()
		lid, cookie := bojSession(t, tg, prefix, false, map[any]any{"uid": user})
		a := cookieJar(cookie)
		sa, ra := a.get(t, s, "sid")
		b := cookieJar(cookie)
		sb, rb := b.get(t, s, "sid")
		sb.Values["x"] = 1
		b.save(t, s, rb, sb) // the session moves
		sameHandles(t, "moved", handles(t, s, user), s.Handle(sb))
		sa.Options.MaxAge = -1
		noErr(t, s.Save(ra, httptest.NewRecorder(), sa))
		ended(t, s, cookieJar(cookie), "the boj/redistore cookie")
		ended(t, s, b, "the moved session's cookie")
		equal(t, "boj/redistore key", tg.do(t, "EXISTS", prefix+lid).IntMust(t), 0)
		sameHandles(t, "the user after logout", handles(t, s, user))
	})
}

// TestLegacyLogoutOfWhatGetCouldNotOpen: a boj/redistore session Get could
// not open (over MaxLength, garbage) or whose moved session is truncated:
// a logout deletes it all the same.
func TestLegacyLogoutOfWhatGetCouldNotOpen(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		prefix := "legacy_" + tg.prefix
		s := newStore(t, tg, Config{Mode: mode, Legacy: &Legacy{KeyPrefix: prefix}, MaxLength: 64})
		logout := func(t *testing.T, b *browser, want error) {
			t.Helper()
			r := b.request()
			sess, err := s.Get(r, "sid")
			if !errors.Is(err, want) || errors.Is(err, ErrUnavailable) {
				t.Fatalf("Get: %v, want %v", err, want)
			}
			sess.Options.MaxAge = -1
			noErr(t, s.Save(r, httptest.NewRecorder(), sess))
		}
		t.Run("over MaxLength", func(t *testing.T) {
			lid, cookie := bojSession(t, tg, prefix, false, map[any]any{"uid": "alice", "big": strings.Repeat("x", 200)})
			logout(t, cookieJar(cookie), ErrTooLarge)
			equal(t, "boj/redistore key", tg.do(t, "EXISTS", prefix+lid).IntMust(t), 0)
		})
		t.Run("garbage", func(t *testing.T) {
			lid, cookie := bojSession(t, tg, prefix, false, map[any]any{"uid": "alice"})
			tg.do(t, "SET", prefix+lid, "garbage", "EX", "600")
			logout(t, cookieJar(cookie), ErrCorrupt)
			equal(t, "boj/redistore key", tg.do(t, "EXISTS", prefix+lid).IntMust(t), 0)
		})
		t.Run("moved, then truncated", func(t *testing.T) {
			lid, cookie := bojSession(t, tg, prefix, false, map[any]any{"uid": "alice"})
			b := cookieJar(cookie)
			sess, r := b.get(t, s, "sid")
			b.save(t, s, r, sess)
			put(t, tg, s, s.movedID(lid), "ab")
			logout(t, cookieJar(cookie), ErrCorrupt)
			loc, err := s.locate(s.movedID(lid))
			noErr(t, err)
			if loc.field != "" {
				equal(t, "moved session", tg.do(t, "HEXISTS", loc.key, loc.field).IntMust(t), 0)
			} else {
				equal(t, "moved session", tg.do(t, "EXISTS", loc.key).IntMust(t), 0)
			}
		})
	})
}

// TestLegacyFailedLoadNeverSignsTheUserOut: with Config.Legacy, a Redis
// failure while loading a boj/redistore session makes a Save of the new
// session Get returned refuse (ErrUnavailable, no cookie), as for any
// session, and the next request finds the user's session.
func TestLegacyFailedLoadNeverSignsTheUserOut(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		prefix := "legacy_" + tg.prefix
		fc := &failingClient{Client: tg.client, names: []string{"GET"}}
		s := newStore(t, tg, Config{Mode: mode, Client: fc, Legacy: &Legacy{KeyPrefix: prefix}})
		_, cookie := bojSession(t, tg, prefix, false, map[any]any{"uid": "alice"})
		b := cookieJar(cookie)
		r := b.request()
		fc.armed.Store(true)
		sess, err := s.Get(r, "sid")
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Get with a failing read: %v, want ErrUnavailable", err)
		}
		sess.Values["visits"] = 1
		w := httptest.NewRecorder()
		if err := s.Save(r, w, sess); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Save after the failed load: %v, want ErrUnavailable", err)
		}
		equal(t, "cookies", len(w.Result().Cookies()), 0)
		if got := valuesOf(t, s, b); got["uid"] != "alice" {
			t.Fatalf("the next request finds %v, want alice's session", got)
		}
	})
}

// TestLogoutOfAKeyOfAnotherType: in StringMode the session's key is its
// own: one of another type (ErrCorrupt at Get) goes at logout. (In
// HashMode the key is a bucket, which a session never owns: it stays.)
func TestLogoutOfAKeyOfAnotherType(t *testing.T) {
	t.Parallel()
	forEachTarget(t, func(t *testing.T, tg *target) {
		s := newStore(t, tg, Config{Mode: StringMode})
		b := startedSession(t, s)
		sess, _ := b.get(t, s, "sid")
		loc, err := s.locate(sess.ID)
		noErr(t, err)
		tg.do(t, "DEL", loc.key)
		tg.do(t, "RPUSH", loc.key, "x")
		r := b.request()
		got, err := s.Get(r, "sid")
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Get: %v, want ErrCorrupt", err)
		}
		got.Options.MaxAge = -1
		noErr(t, s.Save(r, httptest.NewRecorder(), got))
		equal(t, "the key after logout", tg.do(t, "EXISTS", loc.key).IntMust(t), 0)
	})
}

// TestLegacyKeyOfAnotherTypeIsNoFailure: a boj/redistore key of another
// type is not a Redis failure: Get says ErrCorrupt alone, and a Save
// stores the new session, request after request.
func TestLegacyKeyOfAnotherTypeIsNoFailure(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		prefix := "legacy_" + tg.prefix
		s := newStore(t, tg, Config{Mode: mode, Legacy: &Legacy{KeyPrefix: prefix}})
		lid, cookie := bojSession(t, tg, prefix, false, map[any]any{"uid": "alice"})
		tg.do(t, "DEL", prefix+lid)
		tg.do(t, "RPUSH", prefix+lid, "x")
		for i := 0; i < 2; i++ {
			b := cookieJar(cookie)
			r := b.request()
			sess, err := s.Get(r, "sid")
			if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrUnavailable) {
				t.Fatalf("Get: %v, want ErrCorrupt alone", err)
			}
			sess.Values["visits"] = 1
			w := httptest.NewRecorder()
			err = s.Save(r, w, sess)
			if err != nil {
				t.Fatalf("Save #%d of the new session after a key of another type: %v (cookies %d)", i, err, len(w.Result().Cookies()))
			}
		}
	})
}

// TestLegacyLogoutTakesTheIndexEntry: a logout of a boj/redistore session
// that another tab moved and signed in (without RegenerateID), or that
// this request could not read, takes the moved session's entry out of its
// user's index at once, as every logout does.
func TestLegacyLogoutTakesTheIndexEntry(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		prefix := "legacy_" + tg.prefix
		fc := &failingClient{Client: tg.client, names: []string{"GET"}}
		s := newStore(t, tg, Config{Mode: mode, Client: fc, UserKey: "uid", Legacy: &Legacy{KeyPrefix: prefix}})
		t.Run("anonymous legacy session, other tab signs in without RegenerateID", func(t *testing.T) {
			user := "bob-" + randomPrefix()
			_, cookie := bojSession(t, tg, prefix, false, map[any]any{"cart": 1})
			a := cookieJar(cookie)
			sa, ra := a.get(t, s, "sid")
			b := cookieJar(cookie)
			sb, rb := b.get(t, s, "sid")
			sb.Values["uid"] = user
			b.save(t, s, rb, sb)
			sameHandles(t, "signed in", handles(t, s, user), s.Handle(sb))
			sa.Options.MaxAge = -1
			noErr(t, s.Save(ra, httptest.NewRecorder(), sa))
			ended(t, s, b, "the moved session")
			if n := indexEntries(t, tg, s, user); n != 0 {
				t.Fatalf("after the logout %d entries stay in the user's index (handles now %v)", n, handles(t, s, user))
			}
		})
		t.Run("unread, moved by another tab", func(t *testing.T) {
			user := "carol-" + randomPrefix()
			_, cookie := bojSession(t, tg, prefix, false, map[any]any{"uid": user})
			b := cookieJar(cookie)
			sb, rb := b.get(t, s, "sid")
			sb.Values["x"] = 1
			b.save(t, s, rb, sb)
			a := cookieJar(cookie)
			r := a.request()
			fc.armed.Store(true)
			sa, err := s.Get(r, "sid")
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Get: %v", err)
			}
			sa.Options.MaxAge = -1
			noErr(t, s.Save(r, httptest.NewRecorder(), sa))
			ended(t, s, b, "the moved session")
			if n := indexEntries(t, tg, s, user); n != 0 {
				t.Fatalf("after the logout %d entries stay in the user's index", n)
			}
			sameHandles(t, "after", handles(t, s, user))
		})
	})
}

// TestUnreadLogoutTakesTheIndexEntry: a logout on a request whose Get
// failed (ErrUnavailable) deletes the session and takes its entry out of
// its user's index, read from the stored value's metadata.
func TestUnreadLogoutTakesTheIndexEntry(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		fc := &failingClient{Client: tg.client, names: []string{"GET", "HGET"}}
		s := newStore(t, tg, Config{Mode: mode, Client: fc, UserKey: "uid"})
		user := "erin-" + randomPrefix()
		b, _ := signIn(t, s, user)
		r := b.request()
		fc.armed.Store(true)
		sess, err := s.Get(r, "sid")
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Get: %v", err)
		}
		sess.Options.MaxAge = -1
		noErr(t, s.Save(r, httptest.NewRecorder(), sess))
		ended(t, s, b, "after logout")
		n1 := indexEntries(t, tg, s, user)
		h := handles(t, s, user)
		n2 := indexEntries(t, tg, s, user)
		if n1 != 0 || n2 != 0 {
			t.Fatalf("entries after the logout %d, after UserSessions %d (handles %v)", n1, n2, h)
		}
	})
}

// indexEntries returns the number of entries (besides the cursor field "")
// in user's index key.
func indexEntries(t *testing.T, tg *target, s *Store, user string) int64 {
	t.Helper()
	key := s.indexKeyOf(userDigest(user))
	n := tg.do(t, "HLEN", key).IntMust(t)
	if tg.do(t, "HEXISTS", key, "").IntMust(t) == 1 {
		n--
	}
	return n
}
