package redistore

import (
	"encoding/gob"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/gorilla/sessions"
)

// flashMessage is an application type kept in flashes, as gorilla's and
// boj/redistore's examples do; gob needs it registered.
type flashMessage struct {
	Type    int
	Message string
}

func init() { gob.Register(&flashMessage{}) }

// TestFlashes: gorilla's flash messages (AddFlash, then Flashes, which
// reads and clears them) survive a round trip through every target, mode
// and serializer, strings and an application's registered type alike, and
// once read they are gone.
func TestFlashes(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		for _, ser := range []struct {
			name    string
			s       Serializer
			structs bool
		}{
			{"compact", nil, true},
			{"gob", GobSerializer{}, true},
			{"json", JSONSerializer{}, false},
		} {
			t.Run(ser.name, func(t *testing.T) {
				s := newStore(t, tg, Config{Mode: mode, Serializer: ser.s})
				b := newBrowser()
				sess, r := b.get(t, s, "sid")
				sess.AddFlash("foo")
				sess.AddFlash("bar")
				sess.AddFlash("baz", "custom_key")
				if ser.structs {
					sess.AddFlash(&flashMessage{Type: 42, Message: "foo"}, "typed")
				}
				b.save(t, s, r, sess)

				sess, r = b.get(t, s, "sid")
				flashes := sess.Flashes()
				if len(flashes) != 2 || flashes[0] != "foo" || flashes[1] != "bar" {
					t.Fatalf("flashes %#v, want foo and bar", flashes)
				}
				if f := sess.Flashes("custom_key"); len(f) != 1 || f[0] != "baz" {
					t.Fatalf("custom_key flashes %#v, want baz", f)
				}
				if ser.structs {
					f := sess.Flashes("typed")
					if len(f) != 1 {
						t.Fatalf("typed flashes %#v, want one", f)
					}
					if m, ok := f[0].(*flashMessage); !ok || m.Type != 42 || m.Message != "foo" {
						t.Fatalf("typed flash %#v, want {42 foo}", f[0])
					}
				}
				w := httptest.NewRecorder()
				noErr(t, s.Save(r, w, sess))
				b.keep(t, w)

				sess, _ = b.get(t, s, "sid")
				if f := sess.Flashes(); len(f) != 0 {
					t.Fatalf("flashes after they were read: %#v", f)
				}
				if f := sess.Flashes("custom_key"); len(f) != 0 {
					t.Fatalf("custom_key flashes after they were read: %#v", f)
				}
			})
		}
	})
}

// TestFlashesAreAQueueAcrossTabs: two tabs of one browser, each with the
// session loaded while it holds the flash f0, read and add flashes in
// either order and save one after the other: a flash one tab added is
// never lost to the other's reading or adding (it may be shown twice when
// both read it), and a flash read is gone unless another tab added it.
func TestFlashesAreAQueueAcrossTabs(t *testing.T) {
	t.Parallel()
	type tab struct {
		read bool   // Flashes() before adding
		add  string // AddFlash; "" none
	}
	cases := []struct {
		name string
		a, b tab // b saves first
		want []string
	}{
		{"A reads and adds while B adds", tab{true, "fA"}, tab{false, "fB"}, []string{"fB", "fA"}},
		{"A reads while B adds", tab{true, ""}, tab{false, "fB"}, []string{"fB"}},
		{"A adds while B reads", tab{false, "fA"}, tab{true, ""}, []string{"fA"}},
		{"both add", tab{false, "fA"}, tab{false, "fB"}, []string{"f0", "fB", "fA"}},
		{"both read and add", tab{true, "fA"}, tab{true, "fB"}, []string{"fB", "fA"}},
		{"both read", tab{true, ""}, tab{true, ""}, nil},
	}
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		for _, ser := range []Serializer{nil, JSONSerializer{}} {
			s := newStore(t, tg, Config{Mode: mode, Serializer: ser})
			for _, c := range cases {
				b := newBrowser()
				sess, r := b.get(t, s, "sid")
				sess.AddFlash("f0")
				sess.Values["n"] = 1
				b.save(t, s, r, sess)
				sa, ra := b.get(t, s, "sid")
				sb, rb := b.get(t, s, "sid")
				do := func(sess *sessions.Session, tb tab) {
					if tb.read {
						if f := sess.Flashes(); len(f) != 1 || f[0] != "f0" {
							t.Fatalf("%s: a tab read %v, want f0", c.name, f)
						}
					}
					if tb.add != "" {
						sess.AddFlash(tb.add)
					}
				}
				do(sa, c.a)
				do(sb, c.b)
				b.save(t, s, rb, sb)
				b.save(t, s, ra, sa)
				shown := shownFlashes(t, s, b)
				if !slices.Equal(shown, c.want) {
					t.Fatalf("%s (serializer %T): the next request shows %q, want %q", c.name, ser, shown, c.want)
				}
			}
		}
	})
}

// TestARetryAddsItsFlashesOnce: a Save (of a new session, a login, a
// plain Save) whose write landed but whose reply was lost, retried: the
// flash it added is stored once, not once per attempt.
func TestARetryAddsItsFlashesOnce(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s, lc, skip := lostReplyStore(t, tg, mode, tg.client)
		cases := []struct {
			name  string
			start func() *browser
			save  func(*http.Request, http.ResponseWriter, *sessions.Session) error
			skip  int32
		}{
			{"new session", newBrowser, s.Save, skip},
			{"login", func() *browser { return startedSession(t, s) }, s.RegenerateID, skip},
			{"plain save", func() *browser { b, _ := signIn(t, s, "pat"); return b }, s.Save, 0},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				b := c.start()
				sess, r := b.get(t, s, "sid")
				sess.Values["uid"] = "flashy"
				sess.AddFlash("welcome")
				lc.left.Store(c.skip)
				if err := c.save(r, httptest.NewRecorder(), sess); err == nil {
					t.Fatal("the write with a lost reply: no error")
				}
				lc.left.Store(-1)
				w := httptest.NewRecorder()
				noErr(t, c.save(r, w, sess))
				b.keep(t, w)
				got := valuesOf(t, s, b)
				fl, _ := got["_flash"].([]any)
				if len(fl) != 1 {
					t.Fatalf("after a retried Save the flash queue is %v, want [welcome]", fl)
				}
			})
		}
	})
}

// TestARetriedMoveAddsItsFlashesOnce: the same for the first Save of a
// boj/redistore session, which moves it (Config.Legacy).
func TestARetriedMoveAddsItsFlashesOnce(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		prefix := "legacy_" + tg.prefix
		lc := newLostReplyClient(tg.client)
		s := newStore(t, tg, Config{Mode: mode, Client: lc, Legacy: &Legacy{KeyPrefix: prefix}})
		_, warm := bojSession(t, tg, prefix, false, map[any]any{})
		wb := cookieJar(warm)
		ws, wr := wb.get(t, s, "sid")
		wb.save(t, s, wr, ws)
		_, cookie := bojSession(t, tg, prefix, false, map[any]any{"uid": "alice"})
		b := cookieJar(cookie)
		sess, r := b.get(t, s, "sid")
		sess.AddFlash("moved")
		lc.left.Store(0)
		if err := s.Save(r, httptest.NewRecorder(), sess); err == nil {
			t.Fatal("the write with a lost reply: no error")
		}
		lc.left.Store(-1)
		w := httptest.NewRecorder()
		noErr(t, s.Save(r, w, sess))
		b.keep(t, w)
		fl, _ := valuesOf(t, s, b)["_flash"].([]any)
		if len(fl) != 1 {
			t.Fatalf("after a retried move the flash queue is %v, want [moved]", fl)
		}
	})
}

// TestARetryAddsItsFlashesOnceAmongOthers: a Save whose write landed but
// whose reply was lost, then another tab adds a flash, then the retry: the
// queue holds each flash once, in the order they landed.
func TestARetryAddsItsFlashesOnceAmongOthers(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		lc := newLostReplyClient(tg.client)
		s := newStore(t, tg, Config{Mode: mode, Client: lc})
		b := startedSession(t, s)
		sess, r := b.get(t, s, "sid")
		sess.AddFlash("once")
		lc.left.Store(0)
		if err := s.Save(r, httptest.NewRecorder(), sess); err == nil {
			t.Fatal("the write with a lost reply: no error")
		}
		lc.left.Store(-1)
		other := cookieJar(b.cookies["sid"])
		os, or := other.get(t, s, "sid")
		os.AddFlash("other")
		other.save(t, s, or, os)
		w := httptest.NewRecorder()
		noErr(t, s.Save(r, w, sess)) // the application retries
		b.keep(t, w)
		shown := shownFlashes(t, s, b)
		if !slices.Equal(shown, []string{"once", "other"}) {
			t.Fatalf("flashes %q, want once and other, each once", shown)
		}
	})
}

// TestARetryOfAWriteThatNeverLandedAddsItsFlashes: a Save whose write did
// not land (no answer, or the server's error), retried after another tab
// added a flash: its flash, equal to one it loaded, is added all the same.
// After the server's own error nothing can have landed, so even a flash
// the other tab added alike is not taken for it.
func TestARetryOfAWriteThatNeverLandedAddsItsFlashes(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		for _, answer := range []bool{false, true} {
			rc := &refusingWriteClient{Client: tg.client, answer: answer}
			s := newStore(t, tg, Config{Mode: mode, Client: rc})
			b := startedSession(t, s)
			first, r := b.get(t, s, "sid")
			first.AddFlash("item added")
			b.save(t, s, r, first)
			sess, r := b.get(t, s, "sid")
			sess.AddFlash("item added")
			rc.armed.Store(true)
			if err := s.Save(r, httptest.NewRecorder(), sess); err == nil {
				t.Fatal("the refused write: no error")
			}
			others := "other"
			if answer {
				others = "item added"
			}
			other := cookieJar(b.cookies["sid"])
			os, or := other.get(t, s, "sid")
			os.AddFlash(others)
			other.save(t, s, or, os)
			w := httptest.NewRecorder()
			noErr(t, s.Save(r, w, sess)) // the application retries
			b.keep(t, w)
			shown := shownFlashes(t, s, b)
			if want := []string{"item added", others, "item added"}; !slices.Equal(shown, want) {
				t.Fatalf("server answered %v: flashes %q, want %q", answer, shown, want)
			}
		}
	})
}
