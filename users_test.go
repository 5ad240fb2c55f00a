package redistore

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/sessions"
	"github.com/redis/rueidis"
)

// signIn returns a browser with a saved session of user (Values["uid"]).
func signIn(t testing.TB, s *Store, user any) (*browser, *sessions.Session) {
	t.Helper()
	b := newBrowser()
	sess, r := b.get(t, s, "sid")
	sess.Values["uid"] = user
	sess.Values["cart"] = "2 items"
	b.save(t, s, r, sess)
	return b, sess
}

// handles returns the handles UserSessions lists for user, sorted.
func handles(t testing.TB, s *Store, user string) []string {
	t.Helper()
	list, err := s.UserSessions(context.Background(), user)
	noErr(t, err)
	var hs []string
	for _, us := range list {
		hs = append(hs, us.Handle)
	}
	slices.Sort(hs)
	return hs
}

func sameHandles(t testing.TB, what string, got []string, want ...string) {
	t.Helper()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s: handles %q, want %q", what, got, want)
	}
}

// ended fails the test unless the browser's cookie opens a new session.
func ended(t testing.TB, s *Store, b *browser, what string) {
	t.Helper()
	if sess, _ := b.get(t, s, "sid"); !sess.IsNew {
		t.Fatalf("%s: the session still opens (%v)", what, sess.Values)
	}
}

func lives(t testing.TB, s *Store, b *browser, what string) {
	t.Helper()
	if sess, _ := b.get(t, s, "sid"); sess.IsNew {
		t.Fatalf("%s: the session ended", what)
	}
}

func TestUserSessions(t *testing.T) {
	t.Parallel()
	forEachFleet(t, func(t *testing.T, tg *target, cfg Config) {
		cfg.UserKey = "uid"
		s := newStore(t, tg, cfg)
		s.Options.MaxAge = 3600
		phone, phoneSess := signIn(t, s, "alice")
		laptop, laptopSess := signIn(t, s, "alice")
		tablet, tabletSess := signIn(t, s, "alice")
		bob, bobSess := signIn(t, s, 42) // an integer user ID
		anon := newBrowser()
		sess, r := anon.get(t, s, "sid")
		sess.Values["cart"] = "1 item"
		anon.save(t, s, r, sess)

		h := s.Handle(phoneSess)
		if len(h) != 16 || h == phoneSess.ID || s.Handle(sess) == h {
			t.Fatalf("handle %q of session %q", h, "[redacted]")
		}
		equal(t, "handle before the first Save", s.Handle(sessions.NewSession(s, "sid")), "")
		sameHandles(t, "alice", handles(t, s, "alice"), h, s.Handle(laptopSess), s.Handle(tabletSess))
		sameHandles(t, "bob", handles(t, s, "42"), s.Handle(bobSess))
		sameHandles(t, "nobody", handles(t, s, "carol"))
		list, err := s.UserSessions(context.Background(), "alice")
		noErr(t, err)
		for _, us := range list {
			near(t, "expires in", us.Expires.Sub(tg.now()), time.Hour, 5*time.Second)
			near(t, "started", time.Since(us.Started), 0, 5*time.Second)
		}

		// Another user's handle does nothing to that user's session.
		noErr(t, s.DeleteUserSession(context.Background(), "alice", s.Handle(bobSess)))
		lives(t, s, bob, "bob's session after alice deleted its handle")

		// A request in flight on the laptop when alice signs out the others.
		inFlight, r := laptop.get(t, s, "sid")
		n, err := s.DeleteUserSessions(context.Background(), "alice", h)
		noErr(t, err)
		equal(t, "sessions ended", n, 2)
		lives(t, s, phone, "the kept session")
		ended(t, s, laptop, "laptop")
		ended(t, s, tablet, "tablet")
		inFlight.Values["cart"] = "5 items"
		w := httptest.NewRecorder()
		if err := s.Save(r, w, inFlight); !errors.Is(err, ErrEnded) {
			t.Fatalf("Save of a session ended by DeleteUserSessions: %v, want ErrEnded", err)
		}
		ended(t, s, laptop, "laptop after the in-flight Save")
		sameHandles(t, "alice after signing out the others", handles(t, s, "alice"), h)

		noErr(t, s.DeleteUserSession(context.Background(), "alice", h))
		ended(t, s, phone, "phone")
		sameHandles(t, "alice after signing out the last", handles(t, s, "alice"))
		lives(t, s, anon, "the anonymous session")
		lives(t, s, bob, "bob's session")

		// No handles: every session.
		signIn(t, s, "alice")
		signIn(t, s, "alice")
		n, err = s.DeleteUserSessions(context.Background(), "alice")
		noErr(t, err)
		equal(t, "log out everywhere", n, 2)
		sameHandles(t, "alice after log out everywhere", handles(t, s, "alice"))
		equal(t, "index entries left", tg.do(t, "HLEN", s.indexKey("alice")).IntMust(t), 0)
	})
}

// TestUserIndexFollowsTheSession: switching account, signing out by
// deleting the value, logging out, RegenerateID, Delete and expiry each
// take the session off its user's list, and put it on the new one's.
func TestUserIndexFollowsTheSession(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode, UserKey: "uid"})
		b, sess := signIn(t, s, "alice")

		sess, r := b.get(t, s, "sid")
		sess.Values["uid"] = "bob"
		b.save(t, s, r, sess)
		sameHandles(t, "alice after switching to bob", handles(t, s, "alice"))
		sameHandles(t, "bob after the switch", handles(t, s, "bob"), s.Handle(sess))
		if tg.cluster == nil {
			// In Redis Cluster the entry stays until its deadline (the
			// session may come back to alice before a step after the write
			// could drop it), passed over by the user methods.
			equal(t, "alice's index entries", tg.do(t, "HLEN", s.indexKey("alice")).IntMust(t), 0)
		}

		old := s.Handle(sess)
		sess, r = b.get(t, s, "sid")
		w := httptest.NewRecorder()
		noErr(t, s.RegenerateID(r, w, sess))
		b.keep(t, w)
		if s.Handle(sess) == old {
			t.Fatal("RegenerateID kept the handle")
		}
		sameHandles(t, "bob after RegenerateID", handles(t, s, "bob"), s.Handle(sess))
		equal(t, "bob's index entries", tg.do(t, "HLEN", s.indexKey("bob")).IntMust(t), 1)

		sess, r = b.get(t, s, "sid")
		delete(sess.Values, "uid")
		b.save(t, s, r, sess)
		sameHandles(t, "bob after deleting the value", handles(t, s, "bob"))
		lives(t, s, b, "the session signed out by deleting the value")

		b, sess = signIn(t, s, "carol")
		sess, r = b.get(t, s, "sid")
		sess.Options.MaxAge = -1
		b.save(t, s, r, sess)
		sameHandles(t, "carol after logging out", handles(t, s, "carol"))
		equal(t, "carol's index entries", tg.do(t, "HLEN", s.indexKey("carol")).IntMust(t), 0)

		_, sess = signIn(t, s, "dave")
		noErr(t, s.Delete(context.Background(), sess.ID))
		sameHandles(t, "dave after Delete", handles(t, s, "dave"))
		equal(t, "dave's index entries", tg.do(t, "HLEN", s.indexKey("dave")).IntMust(t), 0)

		// A cleared ID is a new ID: the index follows.
		b, sess = signIn(t, s, "erin")
		sess, r = b.get(t, s, "sid")
		sess.ID = ""
		b.save(t, s, r, sess)
		sameHandles(t, "erin after clearing the ID", handles(t, s, "erin"), s.Handle(sess))
	})
}

// TestUserSessionsNeverListsAnEndedSession: sessions that expired are not
// listed, their entries go, and an index of a user who never comes back
// expires by itself.
func TestUserSessionsNeverListsAnEndedSession(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode, UserKey: "uid"})
		s.Options.MaxAge = 3 // seconds: time to list them alive on a loaded machine
		signIn(t, s, "alice")
		signIn(t, s, "alice")
		equal(t, "listed while alive", len(handles(t, s, "alice")), 2)
		tg.advance(t, 4100*time.Millisecond)
		sameHandles(t, "alice after her sessions expired", handles(t, s, "alice"))

		// The index key ends with its last entry (twice the lifetime plus a
		// minute), with or without Sweep.
		pttl := tg.do(t, "PTTL", s.indexKey("alice")).IntMust(t)
		if pttl != -2 && (pttl < 0 || pttl > int64((2*3+indexSlack)*1000)) {
			t.Fatalf("index PTTL %d ms, want at most %d", pttl, (2*3+indexSlack)*1000)
		}
	})
}

// TestUserIndexStaysBounded: a user who signs in again and again, never
// logging out, keeps an index of live sessions plus the ended ones of the
// last two lifetimes.
func TestUserIndexStaysBounded(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	tg.mini.SetTime(time.Now()) // a server whose clock agrees with the application's
	s := newStore(t, tg, Config{UserKey: "uid"})
	s.Options.MaxAge = 10
	for range 50 {
		signIn(t, s, "alice")
	}
	equal(t, "entries", tg.do(t, "HLEN", s.indexKey("alice")).IntMust(t), 50)
	// Past every entry's deadline (2 x 10 s + indexSlack) by the server's
	// clock, which the index step reads.
	tg.mini.SetTime(time.Now().Add(2 * time.Minute))
	signIn(t, s, "alice")
	equal(t, "entries after the others' deadlines passed", tg.do(t, "HLEN", s.indexKey("alice")).IntMust(t), 1)
	tg.mini.FastForward(2 * time.Minute)
	equal(t, "index of a user who never came back", tg.do(t, "EXISTS", s.indexKey("alice")).IntMust(t), 0)
}

// TestUserIndexOutlivesItsSessions: however often a session is saved and
// renewed, its index entry and key outlive it.
func TestUserIndexOutlivesItsSessions(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode, UserKey: "uid", TouchInterval: -1})
		s.Options.MaxAge = 3 // shorter than the loop, longer than a slow round
		b, _ := signIn(t, s, "alice")
		deadline := time.Now().Add(5 * time.Second)
		for i := 0; time.Now().Before(deadline); i++ {
			sess, r := b.get(t, s, "sid")
			if i%2 == 0 {
				sess.Values["n"] = i // a write; odd rounds renew only
			}
			b.save(t, s, r, sess)
			loc, _ := s.locate(sess.ID)
			left := tg.do(t, "PTTL", loc.key).IntMust(t)
			ix := tg.do(t, "PTTL", s.indexKey("alice")).IntMust(t)
			if ix < left || ix < 2000 {
				t.Fatalf("round %d: index PTTL %d ms, session's key %d ms", i, ix, left)
			}
			// The session's own entry outlives it too.
			entry, err := tg.do(t, "HGET", s.indexKey("alice"), rawField(sess.ID)).ToString()
			noErr(t, err)
			deadline, err := strconv.ParseInt(entry[:10], 10, 64)
			noErr(t, err)
			info, err := s.Lookup(context.Background(), sess.ID)
			noErr(t, err)
			if deadline < info.Expires.Unix()+1 {
				t.Fatalf("round %d: entry kept until %d, the session lives until %d", i, deadline, info.Expires.Unix())
			}
			if len(handles(t, s, "alice")) != 1 {
				t.Fatalf("round %d: the live session is not listed", i)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

// TestUserIndexFailureOrder: when the index step fails, the session is not
// written (never an unindexed session); when the session write fails after
// the index step, the entry is stale and nothing lists it.
func TestUserIndexFailureOrder(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode, UserKey: "uid"})
		tg.do(t, "SET", s.indexKey("mallory"), "not a hash")
		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		sess.Values["uid"] = "mallory"
		if err := s.Save(r, httptest.NewRecorder(), sess); err == nil {
			t.Fatal("Save with an unusable index: no error")
		}
		if sess.ID != "" {
			if info, err := s.Lookup(context.Background(), sess.ID); err == nil && info.Found {
				t.Fatal("the session was written though its index step failed")
			}
		}

		// An anonymous session that signs in while its own key is garbage:
		// the index step may land, the write fails; the entry is stale.
		b, sess = signIn(t, s, "")
		sess, r = b.get(t, s, "sid")
		loc, _ := s.locate(sess.ID)
		tg.do(t, "DEL", loc.key)
		tg.do(t, "SET", loc.key, "garbage")
		sess.Values["uid"] = "trent"
		if err := s.Save(r, httptest.NewRecorder(), sess); err == nil {
			t.Fatal("Save over a garbage value: no error")
		}
		// Nothing is listed; where the index step landed (in a cluster,
		// before the write) the garbage it points at is reported.
		list, err := s.UserSessions(context.Background(), "trent")
		if err != nil && !errors.Is(err, ErrUnknownFormat) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("UserSessions: %v", err)
		}
		equal(t, "trent's sessions after the failed write", len(list), 0)
		tg.do(t, "DEL", loc.key)
	})
}

// TestSignedInSavesCostNoCommand: with UserKey set, Get is one command, a
// Save that does not change the user one, and signing in one (outside a
// cluster: the index step is in the write's script).
func TestSignedInSavesCostNoCommand(t *testing.T) {
	t.Parallel()
	miniAndReal(t, func(t *testing.T, tg *target) {
		for _, mode := range []Mode{HashMode, StringMode} {
			t.Run(mode.String(), func(t *testing.T) {
				cc := &countingClient{Client: tg.client}
				tg.prefix = randomPrefix()
				s := newStore(t, tg, Config{Mode: mode, Client: cc, UserKey: "uid"})
				b := newBrowser()
				sess, r := b.get(t, s, "sid")
				sess.Values["cart"] = "1"
				b.save(t, s, r, sess)

				cc.reset()
				sess, r = b.get(t, s, "sid")
				equal(t, "Get: calls", cc.reset(), 1)
				sess.Values["uid"] = "alice"
				b.save(t, s, r, sess)
				equal(t, "signing in: calls", cc.reset(), 1)
				equal(t, "signed in", len(handles(t, s, "alice")), 1)

				for i := range 3 {
					cc.reset()
					sess, r = b.get(t, s, "sid")
					sess.Values["cart"] = strconv.Itoa(i)
					b.save(t, s, r, sess)
					equal(t, "Get and a Save that keeps the user: calls", cc.reset(), 2)
				}
			})
		}
	})
}

// TestMaxLifetime: a session saved again and again ends MaxLifetime after
// it began, RegenerateID keeps its start, its cookie never outlasts it, and
// lowering MaxLifetime ends the sessions already past it.
func TestMaxLifetime(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode, MaxLifetime: 3 * time.Second, TouchInterval: -1})
		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		sess.Values["n"] = 0
		w := b.save(t, s, r, sess)
		began := time.Now()
		if c := w.Result().Cookies()[0]; c.MaxAge > 3 || c.MaxAge < 2 {
			t.Fatalf("cookie MaxAge %d, want at most the 3 s lifetime", c.MaxAge)
		}
		regenerated := false
		for i := 1; ; i++ {
			age := time.Since(began)
			sess, r := b.get(t, s, "sid")
			if sess.IsNew {
				if after := time.Since(began); after < 1900*time.Millisecond {
					t.Fatalf("ended after %v, before its 3 s lifetime (to the second)", after)
				}
				break
			}
			if age > 3050*time.Millisecond {
				t.Fatalf("still alive after %v with a 3 s MaxLifetime", age)
			}
			w := httptest.NewRecorder()
			var err error
			if !regenerated && i >= 2 { // the start it keeps is then in the past
				regenerated = true
				err = s.RegenerateID(r, w, sess)
			} else {
				sess.Values["n"] = i
				err = s.Save(r, w, sess)
			}
			if errors.Is(err, ErrEnded) {
				continue // its lifetime ended while this request held it
			}
			noErr(t, err)
			b.keep(t, w)
			if cs := w.Result().Cookies(); len(cs) > 0 && time.Duration(cs[0].MaxAge)*time.Second > 3*time.Second-age+time.Second {
				t.Fatalf("cookie MaxAge %d s at age %v outlasts the lifetime", cs[0].MaxAge, age)
			}
			time.Sleep(100 * time.Millisecond)
		}
		equal(t, "RegenerateID ran", regenerated, true)

		// Lowering MaxLifetime ends sessions already past the new limit.
		long := newStore(t, tg, Config{Mode: mode, MaxLifetime: time.Hour})
		b = newBrowser()
		sess, r = b.get(t, long, "sid")
		sess.Values["n"] = 1
		b.save(t, long, r, sess)
		time.Sleep(1100 * time.Millisecond)
		short := newStore(t, tg, Config{Mode: mode, MaxLifetime: time.Second})
		if sess, _ := b.get(t, short, "sid"); !sess.IsNew {
			t.Fatal("a session past a lowered MaxLifetime still opens")
		}
		// Found past its lifetime, it ended: raising MaxLifetime again does
		// not bring it back.
		ended(t, long, b, "a session found past a lowered MaxLifetime, under the longer one")
	})
}

func TestUserKeyRefusesOtherTypes(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	s := newStore(t, tg, Config{UserKey: "uid"})
	b := newBrowser()
	sess, r := b.get(t, s, "sid")
	sess.Values["uid"] = 3.5
	if err := s.Save(r, httptest.NewRecorder(), sess); err == nil {
		t.Fatal("Save with a float user ID: no error")
	}
	if _, err := newStore(t, tg, Config{}).UserSessions(context.Background(), "alice"); !errors.Is(err, ErrNoUserIndex) {
		t.Fatalf("UserSessions without UserKey: %v", err)
	}
	for _, bad := range []time.Duration{-time.Second, time.Millisecond} {
		if _, err := New(Config{Client: tg.client, KeyPairs: [][]byte{make([]byte, 32)}, MaxLifetime: bad}); err == nil {
			t.Fatalf("MaxLifetime %v accepted", bad)
		}
	}
}

// hookClient runs after once, after the first command named cmd returns.
type hookClient struct {
	rueidis.Client
	cmd   string
	once  sync.Once
	after func()
}

func (c *hookClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	name := cmd.Commands()[0] // the client recycles cmd once it answered
	res := c.Client.Do(ctx, cmd)
	if strings.EqualFold(name, c.cmd) {
		c.once.Do(c.after)
	}
	return res
}

// TestLogOutEverywhereCatchesANewID: a session that gets a new ID while
// DeleteUserSessions runs (after it read the index) ends all the same.
func TestLogOutEverywhereCatchesANewID(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode, UserKey: "uid"})
		b, _ := signIn(t, s, "alice")
		hc := &hookClient{Client: tg.client, cmd: "HSCAN", after: func() {
			sess, r := b.get(t, s, "sid")
			w := httptest.NewRecorder()
			noErr(t, s.RegenerateID(r, w, sess))
			b.keep(t, w)
		}}
		admin := newStore(t, tg, Config{Mode: mode, UserKey: "uid", Client: hc})
		n, err := admin.DeleteUserSessions(context.Background(), "alice")
		noErr(t, err)
		equal(t, "sessions ended", n, 1)
		ended(t, s, b, "the session that got a new ID during log out everywhere")
	})
}

// TestSecondSaveCannotBringBackAnEndedSession: a request that saved once,
// then saves again after its session was ended meanwhile, writes nothing.
func TestSecondSaveCannotBringBackAnEndedSession(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode, UserKey: "uid"})
		b, _ := signIn(t, s, "alice")
		sess, r := b.get(t, s, "sid")
		sess.Values["cart"] = "3 items"
		noErr(t, s.Save(r, httptest.NewRecorder(), sess)) // the first Save of the request
		n, err := s.DeleteUserSessions(context.Background(), "alice")
		noErr(t, err)
		equal(t, "ended", n, 1)
		sess.Values["cart"] = "4 items"
		if err := s.Save(r, httptest.NewRecorder(), sess); !errors.Is(err, ErrEnded) {
			t.Fatalf("second Save after the session ended: %v, want ErrEnded", err)
		}
		ended(t, s, b, "after the second Save")
		w := httptest.NewRecorder()
		if err := s.RegenerateID(r, w, sess); !errors.Is(err, ErrEnded) {
			t.Fatalf("RegenerateID after the session ended: %v, want ErrEnded", err)
		}
		ended(t, s, b, "after a RegenerateID")
		sameHandles(t, "alice", handles(t, s, "alice"))
	})
}

// TestJSONUserIDs: JSONSerializer reads an integer user ID back as a
// float64; the index still follows it.
func TestJSONUserIDs(t *testing.T) {
	t.Parallel()
	miniAndReal(t, func(t *testing.T, tg *target) {
		s := newStore(t, tg, Config{UserKey: "uid", Serializer: JSONSerializer{}})
		b, sess := signIn(t, s, 42)
		sameHandles(t, "user 42", handles(t, s, "42"), s.Handle(sess))
		sess, r := b.get(t, s, "sid")
		sess.Values["cart"] = "1 item"
		b.save(t, s, r, sess)
		sameHandles(t, "user 42 after a Save", handles(t, s, "42"), s.Handle(sess))
		n, err := s.DeleteUserSessions(context.Background(), "42")
		noErr(t, err)
		equal(t, "ended", n, 1)
		ended(t, s, b, "user 42's session")
	})
}

// TestLargeUserIndexStaysBounded: on a real server, where a large index is
// a hashtable that HSCAN walks chunk by chunk, sign-ins drop every entry
// past its deadline in the end.
func TestLargeUserIndexStaysBounded(t *testing.T) {
	t.Parallel()
	forEachReal(t, func(t *testing.T, tg *target) {
		s := newStore(t, tg, Config{UserKey: "uid"})
		key := s.indexKey("alice")
		args := []string{"HSET", key}
		for i := range 1000 {
			args = append(args, rawField(newID()), fmt.Sprintf("%010d,%010d", 1000+i, 1000))
		}
		tg.do(t, args...)
		for range 200 {
			signIn(t, s, "alice")
		}
		left := tg.do(t, "HLEN", key).IntMust(t)
		if left > 201 { // 200 live entries and the cursor
			t.Fatalf("%d entries after 200 sign-ins over 1000 past their deadline", left)
		}
		equal(t, "live sessions listed", len(handles(t, s, "alice")), 200)
	})
}

// TestFailedRegenerateKeepsTheSessionListed: a RegenerateID whose write
// fails leaves the old session alive and still on its user's list (the
// old entry goes only after the write).
func TestFailedRegenerateKeepsTheSessionListed(t *testing.T) {
	t.Parallel()
	forEachTarget(t, func(t *testing.T, tg *target) {
		prefix := tg.prefix
		// Sixteen buckets, by the first hex digit of the ID; all but the
		// session's hold garbage, so a new ID's write fails 15 times in 16.
		s := newStore(t, tg, Config{UserKey: "uid", HashKeyGenerator: func(id string) (string, error) { return prefix + "b" + id[:1], nil }})
		b, sess := signIn(t, s, "alice")
		for _, d := range "0123456789abcdef" {
			if string(d) != sess.ID[:1] {
				tg.do(t, "SET", prefix+"b"+string(d), "garbage")
			}
		}
		failed := false
		for range 40 {
			sess, r := b.get(t, s, "sid")
			w := httptest.NewRecorder()
			if err := s.RegenerateID(r, w, sess); err != nil {
				failed = true
				break
			}
			b.keep(t, w)
		}
		if !failed {
			t.Fatal("no RegenerateID failed")
		}
		lives(t, s, b, "the session whose RegenerateID failed")
		sess, _ = b.get(t, s, "sid")
		sameHandles(t, "alice after the failed RegenerateID", handles(t, s, "alice"), s.Handle(sess))
	})
}

// TestShorterSessionsNeverShortenTheKeys: a shorter session saved beside a
// longer one never shortens the keys that hold both, the bucket and the
// user's index, and the longest MaxAge saves and is indexed. On 32-bit
// platforms miniredis answers and parses TTLs in milliseconds as 32-bit
// ints, which a month overflows: CI runs this test with GOARCH=386 too.
func TestShorterSessionsNeverShortenTheKeys(t *testing.T) {
	t.Parallel()
	forEachTarget(t, func(t *testing.T, tg *target) {
		bucket := tg.prefix + "one"
		s := newStore(t, tg, Config{UserKey: "uid", HashKeyGenerator: func(string) (string, error) { return bucket, nil }})
		const month = 30 * 86400
		s.Options.MaxAge = month
		signIn(t, s, "alice")
		s.Options.MaxAge = 3600
		signIn(t, s, "alice")
		if ttl := tg.do(t, "TTL", bucket).IntMust(t); ttl < month {
			t.Fatalf("the bucket of a month's session ends in %d s after an hour's session was saved in it", ttl)
		}
		if ttl := tg.do(t, "TTL", s.indexKey("alice")).IntMust(t); ttl < 2*month {
			t.Fatalf("the index of a month's session ends in %d s after an hour's session was saved", ttl)
		}
		equal(t, "alice's sessions", len(handles(t, s, "alice")), 2)

		s.Options.MaxAge = MaxAgeLimit
		signIn(t, s, "bob")
		if ttl := tg.do(t, "TTL", s.indexKey("bob")).IntMust(t); ttl < MaxAgeLimit {
			t.Fatalf("the index of a session of MaxAgeLimit ends in %d s", ttl)
		}
		equal(t, "bob's sessions", len(handles(t, s, "bob")), 1)
	})
}

// TestUnreadableIndexesNeverHalfWrite: an index whose cursor field is not
// a cursor is walked from the start again (the user can still sign in);
// an index key of another type fails the write that needs it before
// anything is written: the session keeps its user and stays listed.
func TestUnreadableIndexesNeverHalfWrite(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode, UserKey: "uid"})
		tg.do(t, "HSET", s.indexKey("bob"), "", "junk")
		b, sess := signIn(t, s, "bob")
		sameHandles(t, "bob with a junk cursor", handles(t, s, "bob"), s.Handle(sess))
		for range 3 { // and again, once the cursor is the store's
			signIn(t, s, "bob")
		}
		equal(t, "bob's sessions", len(handles(t, s, "bob")), 4)
		tg.do(t, "HSET", s.indexKey("bob"), "", "99999999999999999999999") // digits past 64 bits
		signIn(t, s, "bob")
		equal(t, "bob's sessions after a cursor past 64 bits", len(handles(t, s, "bob")), 5)

		tg.do(t, "SET", s.indexKey("carol"), "not a hash")
		sess, r := b.get(t, s, "sid")
		sess.Values["uid"] = "carol"
		if err := s.Save(r, httptest.NewRecorder(), sess); err == nil {
			t.Fatal("a switch to a user whose index key is a string: no error")
		}
		if got := valuesOf(t, s, b); got["uid"] != "bob" {
			t.Fatalf("the failed switch left %v", got)
		}
		equal(t, "bob's sessions after the failed switch", len(handles(t, s, "bob")), 5)
		tg.do(t, "DEL", s.indexKey("carol"))
		sess, r = b.get(t, s, "sid")
		sess.Values["uid"] = "carol"
		b.save(t, s, r, sess)
		sameHandles(t, "carol", handles(t, s, "carol"), s.Handle(sess))
	})
}

// TestLoweredMaxLifetimeEndsWhatItFinds: DeleteUserSessions under a
// lowered MaxLifetime ends the sessions past it rather than skip them, so
// raising MaxLifetime again does not bring them back.
func TestLoweredMaxLifetimeEndsWhatItFinds(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		long := newStore(t, tg, Config{Mode: mode, UserKey: "uid", MaxLifetime: time.Hour})
		old, _ := signIn(t, long, "alice")
		time.Sleep(1100 * time.Millisecond)
		young, _ := signIn(t, long, "alice")
		short := newStore(t, tg, Config{Mode: mode, UserKey: "uid", MaxLifetime: time.Second})
		n, err := short.DeleteUserSessions(context.Background(), "alice")
		noErr(t, err)
		if n > 1 { // the young one, unless it too is past the second by now; the old one ended as found
			t.Fatalf("log out everywhere ended %d sessions, want at most the young one", n)
		}
		ended(t, long, old, "the session past the lowered MaxLifetime, under the raised one")
		ended(t, long, young, "the young session")
		sameHandles(t, "alice", handles(t, long, "alice"))
	})
}

// gateClient runs before and after around each Do.
type gateClient struct {
	rueidis.Client
	mu            sync.Mutex
	before, after func(args []string, res rueidis.RedisResult)
}

func (c *gateClient) set(before, after func([]string, rueidis.RedisResult)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.before, c.after = before, after
}

func (c *gateClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	args := slices.Clone(cmd.Commands()) // the client recycles cmd once it answered
	c.mu.Lock()
	before, after := c.before, c.after
	c.mu.Unlock()
	if before != nil {
		before(args, rueidis.RedisResult{})
	}
	res := c.Client.Do(ctx, cmd)
	if after != nil {
		after(args, res)
	}
	return res
}

// scriptKeys returns the keys of an EVALSHA or EVAL, nil for other commands.
func scriptKeys(args []string) []string {
	if len(args) < 3 || !strings.EqualFold(args[0], "EVALSHA") && !strings.EqualFold(args[0], "EVAL") {
		return nil
	}
	n, err := strconv.Atoi(args[2])
	if err != nil || len(args) < 3+n {
		return nil
	}
	return args[3 : 3+n]
}

// TestLogOutEverywhereCatchesANewIDInACluster: in Redis Cluster a
// RegenerateID writes the new ID's index entry first, in a step of its
// own, then the session. A DeleteUserSessions that reads the index between
// the two meets an entry whose session is not there yet; a later pass
// looks at it again and ends it.
func TestLogOutEverywhereCatchesANewIDInACluster(t *testing.T) {
	t.Parallel()
	forEachTarget(t, func(t *testing.T, tg *target) {
		if tg.cluster == nil {
			return // outside a cluster the entry and the session are one step
		}
		for _, mode := range []Mode{HashMode, StringMode} {
			t.Run(mode.String(), func(t *testing.T) {
				tg.prefix = randomPrefix()
				appC, adminC := &gateClient{Client: tg.client}, &gateClient{Client: tg.client}
				app := newStore(t, tg, Config{Mode: mode, UserKey: "uid", Client: appC})
				admin := newStore(t, tg, Config{Mode: mode, UserKey: "uid", Client: adminC})
				b, _ := signIn(t, app, "alice")
				sess, r := b.get(t, app, "sid")

				// RegenerateID stops after its index step...
				paused, resume, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
				var pause, release sync.Once
				appC.set(nil, func(args []string, res rueidis.RedisResult) {
					ks := scriptKeys(args)
					if len(ks) == 1 && app.IsIndexKey(ks[0]) {
						if e, ok := rueidis.IsRedisErr(res.Error()); ok && e.IsNoScript() {
							return // EVAL follows
						}
						pause.Do(func() { close(paused); <-resume })
					}
				})
				w := httptest.NewRecorder()
				go func() { done <- app.RegenerateID(r, w, sess) }()
				<-paused
				// ...until DeleteUserSessions has read the index and is about
				// to end the old ID (a script, or DELIFEQ where StringMode
				// has compare-and-set).
				var regenErr error
				adminC.set(func(args []string, _ rueidis.RedisResult) {
					if scriptKeys(args) != nil || strings.EqualFold(args[0], "DELIFEQ") {
						release.Do(func() { close(resume); regenErr = <-done })
					}
				}, nil)
				_, err := admin.DeleteUserSessions(context.Background(), "alice")
				noErr(t, err)
				noErr(t, regenErr)
				b.keep(t, w)
				ended(t, app, b, "the session that got a new ID during log out everywhere")
				sameHandles(t, "alice", handles(t, app, "alice"))
			})
		}
	})
}

// TestLogOutEverywhereGoesOnAfterAnUnreadableSession: a session of the
// user it cannot decode is reported, and does not stop the later passes
// that end a session given a new ID meanwhile.
func TestLogOutEverywhereGoesOnAfterAnUnreadableSession(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode, UserKey: "uid"})
		b, _ := signIn(t, s, "alice")
		_, other := signIn(t, s, "alice")
		loc, err := s.locate(other.ID)
		noErr(t, err)
		// The other session's value becomes one this release cannot read
		// (the envelope of a later format version).
		if mode == HashMode {
			v, err := tg.do(t, "HGET", loc.key, loc.field).ToString()
			noErr(t, err)
			tg.do(t, "HSET", loc.key, loc.field, v[:4]+"\xf0"+v[5:])
		} else {
			v, err := tg.do(t, "GET", loc.key).ToString()
			noErr(t, err)
			tg.do(t, "SET", loc.key, v[:4]+"\xf0"+v[5:], "KEEPTTL")
		}
		hc := &hookClient{Client: tg.client, cmd: "HSCAN", after: func() {
			sess, r := b.get(t, s, "sid")
			w := httptest.NewRecorder()
			noErr(t, s.RegenerateID(r, w, sess))
			b.keep(t, w)
		}}
		admin := newStore(t, tg, Config{Mode: mode, UserKey: "uid", Client: hc})
		n, err := admin.DeleteUserSessions(context.Background(), "alice")
		if !errors.Is(err, ErrUnknownFormat) {
			t.Fatalf("log out everywhere: %v, want the unreadable session reported", err)
		}
		equal(t, "sessions ended", n, 1)
		ended(t, s, b, "the session that got a new ID")
	})
}

// TestUserSessionsKeepsTheEntryOfALiveSession: a session that looks ended
// to UserSessions only because its expiry lies within the clock estimate's
// uncertainty keeps its index entry (the entry goes only when the server
// says, in the same step, that the session is gone), so a request that
// renews it a moment later leaves it on the list, and "log out everywhere"
// ends it.
func TestUserSessionsKeepsTheEntryOfALiveSession(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	cfg := Config{UserKey: "uid", FieldTTL: FieldTTLOff}
	app := newStore(t, tg, cfg)
	withFakeClock(t, tg, app)
	admin := newStore(t, tg, cfg)
	adminMono := withFakeClock(t, tg, admin)
	b := newBrowser()
	sess, r := b.get(t, app, "sid")
	sess.Values["uid"] = "alice"
	sess.Options.MaxAge = 120
	b.save(t, app, r, sess)
	loc, err := app.locate(sess.ID)
	noErr(t, err)
	v, err := tg.do(t, "HGET", loc.key, loc.field).ToString()
	noErr(t, err)
	exp := expiryOf(v)

	tg.advance(t, 100*time.Second)
	req, rr := b.get(t, app, "sid") // a request in flight
	req.Values["cart"] = "1 item"
	// 100 ms before the expiry, by an estimate uncertain by 200 ms.
	tg.mini.SetTime(exp.Add(-100 * time.Millisecond))
	admin.clock.state.Store(&clockState{server: exp.Add(-100 * time.Millisecond), at: adminMono.now(), uncertainty: 200 * time.Millisecond})
	if list, err := admin.UserSessions(context.Background(), "alice"); err != nil || len(list) != 0 {
		t.Fatalf("UserSessions within the uncertainty: %v, %v; want none listed", list, err)
	}
	w := httptest.NewRecorder()
	noErr(t, app.Save(rr, w, req)) // the server says the session is alive: written
	b.keep(t, w)
	tg.mini.SetTime(exp.Add(time.Second))
	admin.clock.state.Store(nil)
	lives(t, app, b, "the session the request wrote")
	n, err := admin.DeleteUserSessions(context.Background(), "alice")
	noErr(t, err)
	equal(t, "ended", n, 1)
	ended(t, app, b, "the session after log out everywhere")
}

// TestIndexOutlivesSessionsWhateverTheClocks: the deadline a session's
// metadata records for its index entry is by the server's clock, never by
// an application server's: one running two minutes ahead signs the user
// in, one whose estimate is right renews the session for minutes after,
// and the entry outlives the session all along.
func TestIndexOutlivesSessionsWhateverTheClocks(t *testing.T) {
	t.Parallel()
	for _, mode := range []Mode{HashMode, StringMode} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			tg := newMiniTarget(t)
			tg.mini.SetTime(time.Now().Add(-2 * time.Minute)) // Redis two minutes behind
			// a has no estimate of the server's clock (a store on miniredis
			// never trusts one; elsewhere: no reply in the last 10 s).
			a := newStore(t, tg, Config{Mode: mode, UserKey: "uid"})
			a.Options.MaxAge = 30
			b := newStore(t, tg, Config{Mode: mode, UserKey: "uid"})
			b.Options.MaxAge = 30
			mono := withFakeClock(t, tg, b)
			br, sess := signIn(t, a, "alice")
			for i := 1; i <= 8; i++ {
				d := 20 * time.Second
				tg.mini.SetTime(tg.now().Add(d))
				tg.mini.FastForward(d)
				mono.advance(d)
				s, r := br.get(t, b, "sid")
				if s.IsNew {
					t.Fatalf("step %d: the session ended", i)
				}
				br.save(t, b, r, s) // unchanged: renewed when due
				if len(handles(t, b, "alice")) == 0 {
					info, _ := b.Lookup(context.Background(), sess.ID)
					t.Fatalf("step %d: alice's live session (expires in %v) is not in her index", i, info.Expires.Sub(tg.now()))
				}
			}
			n, err := b.DeleteUserSessions(context.Background(), "alice")
			noErr(t, err)
			equal(t, "ended", n, 1)
			ended(t, b, br, "alice's session after log out everywhere")
		})
	}
}
