package redistore

import "testing"

func TestSmoke(t *testing.T) {
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode})
		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		sess.Values["n"] = 1
		b.save(t, s, r, sess)
		sess, _ = b.get(t, s, "sid")
		equal(t, "n", sess.Values["n"], any(1))
		equal(t, "isnew", sess.IsNew, false)
	})
}
