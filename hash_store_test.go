package redistore

import (
	"encoding/binary"
	"net/http/httptest"
	"testing"
	"time"
)

func TestBucketOutlivesItsSessions(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg *target) {
		bucket := tg.prefix + "one"
		s := newStore(t, tg, Config{HashKeyGenerator: func(string) (string, error) { return bucket, nil }})
		latest := time.Duration(0)
		for _, maxAge := range []int{100, 1000, 100, 50} {
			b := newBrowser()
			sess, r := b.get(t, s, "sid")
			sess.Options.MaxAge = maxAge
			sess.Values["n"] = maxAge
			b.save(t, s, r, sess)
			latest = max(latest, time.Duration(maxAge)*time.Second)
			ttl := time.Duration(tg.do(t, "PTTL", bucket).IntMust(t)) * time.Millisecond
			if ttl < latest {
				t.Fatalf("bucket TTL %v is shorter than the latest expiry in it (%v)", ttl, latest)
			}
		}
	})
}

func TestHashModeUsesTheServersClock(t *testing.T) {
	tg := newMiniTarget(t)
	// The server's clock is four years ahead of this machine's.
	serverNow := time.Now().Add(4 * 365 * 24 * time.Hour).Truncate(time.Second)
	tg.mini.SetTime(serverNow)
	s := newStore(t, tg, Config{})
	s.Options.MaxAge = 3600
	b := newBrowser()
	sess, r := b.get(t, s, "sid")
	sess.Values["n"] = 1
	b.save(t, s, r, sess)

	loc, _ := s.locate(sess.ID)
	v, err := tg.do(t, "HGET", loc.key, loc.field).ToString()
	noErr(t, err)
	exp := time.Unix(int64(binary.BigEndian.Uint32([]byte(v[:4]))), 0)
	equal(t, "stored expiry", exp, serverNow.Add(time.Hour))

	if got, _ := b.get(t, s, "sid"); got.IsNew {
		t.Fatal("the session expired by this machine's clock")
	}
	tg.advance(t, time.Hour)
	if got, _ := b.get(t, s, "sid"); !got.IsNew {
		t.Fatal("the session outlived its expiry on the server's clock")
	}
}

func TestExpiredFieldIsAMissEvenInALiveBucket(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg *target) {
		bucket := tg.prefix + "one"
		s := newStore(t, tg, Config{HashKeyGenerator: func(string) (string, error) { return bucket, nil }})
		short := newBrowser()
		sess, r := short.get(t, s, "sid")
		sess.Options.MaxAge = 1
		sess.Values["n"] = 1
		short.save(t, s, r, sess)
		long := newBrowser()
		sess2, r2 := long.get(t, s, "sid")
		sess2.Values["n"] = 2
		long.save(t, s, r2, sess2)

		tg.advance(t, 1100*time.Millisecond)
		r = short.request()
		got, err := s.Get(r, "sid")
		noErr(t, err)
		if !got.IsNew {
			t.Fatal("an expired session was served")
		}
		// A Save of the expired session's request writes a new session, not
		// the old ID.
		got.Values["n"] = 3
		noErr(t, s.Save(r, httptest.NewRecorder(), got))
		if got.ID == sess.ID {
			t.Fatal("the expired ID was reused")
		}
		if g, _ := long.get(t, s, "sid"); g.Values["n"] != 2 {
			t.Fatal("the live session in the bucket was lost")
		}
	})
}
