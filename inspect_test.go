package redistore

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestLookup(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode})
		s.Options.MaxAge = 3600
		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		sess.Values["user"] = "alice"
		b.save(t, s, r, sess)

		info, err := s.Lookup(context.Background(), sess.ID)
		noErr(t, err)
		loc, _ := s.locate(sess.ID)
		equal(t, "key", info.Key, loc.key)
		equal(t, "field", info.Field, loc.field)
		equal(t, "found", info.Found, true)
		equal(t, "expired", info.Expired, false)
		near(t, "expires in", info.Expires.Sub(tg.now()), time.Hour, 5*time.Second)
		equal(t, "codec", info.Codec, "compact")
		equal(t, "user", info.Values["user"], any("alice"))

		id, err := s.SessionID("sid", b.cookies["sid"].Value)
		noErr(t, err)
		equal(t, "SessionID", id, sess.ID)
		if _, err := s.SessionID("sid", "garbage"); !errors.Is(err, ErrInvalidCookie) {
			t.Fatalf("SessionID(garbage): %v", err)
		}

		missing, err := s.Lookup(context.Background(), newID())
		noErr(t, err)
		equal(t, "missing found", missing.Found, false)
		if _, err := s.Lookup(context.Background(), "nope"); !errors.Is(err, ErrInvalidID) {
			t.Fatalf("Lookup(nope): %v", err)
		}
	})
}

// TestDelete: Delete ends a session by ID in both modes: its cookie gets a
// new session, a request that had loaded it cannot save it back, the other
// sessions of its bucket stay; a malformed ID is ErrInvalidID, an unknown
// one no error.
func TestDelete(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		cfg := Config{Mode: mode}
		if mode == HashMode { // both sessions in one bucket
			bucket := tg.prefix + "one"
			cfg.HashKeyGenerator = func(string) (string, error) { return bucket, nil }
		}
		s := newStore(t, tg, cfg)
		victim, other := newBrowser(), newBrowser()
		for _, b := range []*browser{victim, other} {
			sess, r := b.get(t, s, "sid")
			sess.Values["user"] = "alice"
			b.save(t, s, r, sess)
		}
		inFlight, r := victim.get(t, s, "sid")
		equal(t, "loaded before the Delete", inFlight.IsNew, false)

		noErr(t, s.Delete(context.Background(), inFlight.ID))
		got, _ := victim.get(t, s, "sid")
		equal(t, "the deleted session's cookie opens a new session", got.IsNew, true)
		inFlight.Values["user"] = "mallory"
		w := httptest.NewRecorder()
		if err := s.Save(r, w, inFlight); !errors.Is(err, ErrEnded) {
			t.Fatalf("Save of a session loaded before its Delete: %v, want ErrEnded", err)
		}
		equal(t, "cookies set by that Save", len(w.Result().Cookies()), 0)
		got, _ = victim.get(t, s, "sid")
		equal(t, "still ended after that Save", got.IsNew, true)
		kept, _ := other.get(t, s, "sid")
		equal(t, "the other session", kept.Values["user"], any("alice"))

		noErr(t, s.Delete(context.Background(), newID()))
		noErr(t, s.Delete(context.Background(), inFlight.ID)) // again
		for _, bad := range []string{"", "short", strings.Repeat("!", 26)} {
			if err := s.Delete(context.Background(), bad); !errors.Is(err, ErrInvalidID) {
				t.Fatalf("Delete(%q): %v, want ErrInvalidID", bad, err)
			}
		}
	})
}
