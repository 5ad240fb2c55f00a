package redistore

import (
	"context"
	"errors"
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
		near(t, "expires in", info.Expires.Sub(tg.now()), time.Hour, 2*time.Second)
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
