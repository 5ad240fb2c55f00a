package redistore

import (
	"encoding/binary"
	"errors"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeMonotonic is a local monotonic clock that moves only when told.
type fakeMonotonic struct{ d atomic.Int64 }

func (f *fakeMonotonic) now() time.Duration      { return time.Duration(f.d.Load()) }
func (f *fakeMonotonic) advance(d time.Duration) { f.d.Add(int64(d)) }

func TestServerClock(t *testing.T) {
	t.Parallel()
	mono := &fakeMonotonic{}
	mono.advance(time.Hour)
	c := &serverClock{refresh: 10 * time.Second, local: mono.now}
	if _, ok := c.now(); ok {
		t.Fatal("a clock that never heard from the server claims to know its time")
	}
	server := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	sent := mono.now()
	mono.advance(2 * time.Millisecond)
	c.observe(server, sent, mono.now())
	now, ok := c.now()
	if !ok {
		t.Fatal("no estimate after a reply")
	}
	// The server read its clock about halfway through the call.
	equal(t, "estimate at the reply", now, server.Add(time.Millisecond))

	mono.advance(9 * time.Second)
	now, ok = c.now()
	equal(t, "estimate usable 9 s later", ok, true)
	equal(t, "estimate 9 s later", now, server.Add(9*time.Second+time.Millisecond))

	mono.advance(time.Second)
	if _, ok := c.now(); ok {
		t.Fatal("an estimate older than refresh is still used")
	}
}

// TestServerClockKeepsTheTighterReading: a reply that says what the store
// knew already is not kept (and costs nothing); one that is tighter, that
// disagrees, or that comes when the kept reading is an eighth of refresh old
// replaces it.
func TestServerClockKeepsTheTighterReading(t *testing.T) {
	mono := &fakeMonotonic{}
	mono.advance(time.Hour)
	c := &serverClock{refresh: 8 * time.Second, local: mono.now}
	server := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	at := mono.now()
	c.observe(server, at-2*time.Millisecond, at) // +-1 ms
	kept := c.state.Load()
	serverAt := func() time.Time { return server.Add(mono.now() - at) }

	mono.advance(100 * time.Millisecond)
	c.observe(serverAt().Add(-2*time.Millisecond), mono.now()-10*time.Millisecond, mono.now()) // +-5 ms, agrees
	if c.state.Load() != kept {
		t.Fatal("a looser reading that agrees replaced the kept one")
	}
	if n := testing.AllocsPerRun(100, func() {
		c.observe(serverAt().Add(-2*time.Millisecond), mono.now()-10*time.Millisecond, mono.now())
	}); n != 0 {
		t.Fatalf("a reading that changes nothing allocates %v times", n)
	}

	c.observe(serverAt().Add(time.Second), mono.now()-10*time.Millisecond, mono.now()) // the server's clock stepped
	now, _ := c.now()
	equal(t, "estimate after a reading that disagrees", now, serverAt().Add(time.Second+5*time.Millisecond))

	kept = c.state.Load()
	mono.advance(time.Second + time.Millisecond) // past refresh/8
	c.observe(serverAt().Add(time.Second), mono.now()-20*time.Millisecond, mono.now())
	if c.state.Load() == kept {
		t.Fatal("a reading an eighth of refresh later did not renew the kept one")
	}

	kept = c.state.Load()
	c.observe(serverAt().Add(time.Second), mono.now(), mono.now()) // exact
	if c.state.Load() == kept {
		t.Fatal("a tighter reading did not replace the kept one")
	}
}

// TestServerClockIgnoresTheWallClock: the estimate moves with the local
// monotonic clock and nothing else, so a step of this machine's wall clock
// (NTP, a VM resumed) does not make live sessions look expired or expired
// ones live. Here the wall clock runs on while the monotonic one is held:
// an estimate that followed the wall clock would move.
func TestServerClockIgnoresTheWallClock(t *testing.T) {
	t.Parallel()
	mono := &fakeMonotonic{}
	c := &serverClock{refresh: time.Hour, local: mono.now}
	server := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c.observe(server, 0, 0)
	wall := time.Now()
	for time.Since(wall) < 20*time.Millisecond {
		time.Sleep(5 * time.Millisecond)
	}
	now, _ := c.now()
	equal(t, "estimate while only the wall clock moved", now, server)
	mono.advance(30 * time.Second)
	now, _ = c.now()
	equal(t, "estimate after 30 s of monotonic time", now, server.Add(30*time.Second))
}

// TestServerClockDistrustsSlowReplies: a reading from a round trip too long
// to place the server's clock within maxClockUncertainty is not used.
func TestServerClockDistrustsSlowReplies(t *testing.T) {
	t.Parallel()
	mono := &fakeMonotonic{}
	c := &serverClock{refresh: time.Hour, local: mono.now}
	mono.advance(time.Second)
	c.observe(time.Now(), 0, 2*maxClockUncertainty+time.Millisecond)
	if _, ok := c.now(); ok {
		t.Fatal("a reading from a slow round trip is used")
	}
	c.observe(time.Now(), 0, 2*maxClockUncertainty)
	if _, ok := c.now(); !ok {
		t.Fatal("a reading from a round trip within the bound is not used")
	}
}

// TestReadsAskForTimeOnlyWhenTheEstimateIsOld checks on the real server that
// a HashMode read is a lone HGET while the store knows the server's clock from
// a recent reply, and carries a TIME when it does not.
func TestReadsAskForTimeOnlyWhenTheEstimateIsOld(t *testing.T) {
	t.Parallel()
	forEachReal(t, func(t *testing.T, tg *target) {
		cc := &countingClient{Client: tg.client}
		s := newStore(t, tg, Config{Client: cc})
		// A local clock that only the test moves: on a loaded machine a slow
		// round trip would make the write's reading too uncertain to use, and
		// the read would rightly ask for TIME. The real server's clock runs
		// on meanwhile; the 30-day sessions here are far from their expiry.
		mono := &fakeMonotonic{}
		mono.advance(time.Hour)
		s.clock.local = mono.now
		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		sess.Values["n"] = 1
		b.save(t, s, r, sess)

		commands := func() string {
			var names []string
			cc.names.Range(func(k, _ any) bool { names = append(names, k.(string)); return true })
			cc.names.Clear()
			return strings.Join(names, ",")
		}
		commands()
		b.get(t, s, "sid")
		equal(t, "commands of a read with a fresh estimate", commands(), "HGET")

		mono.advance(s.clock.refresh)
		b.get(t, s, "sid")
		got := commands()
		if !strings.Contains(got, "TIME") || !strings.Contains(got, "HGET") {
			t.Fatalf("commands of a read with an old estimate: %s", got)
		}
	})
}

// TestAStepOfTheServersClockIsSeenWithinRefresh jumps miniredis's clock past
// a session's expiry: once the estimate is older than refresh, reads see it.
func TestAStepOfTheServersClockIsSeenWithinRefresh(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	s := newStore(t, tg, Config{})
	// A local clock that only the test moves: a loaded machine can neither
	// age the estimate nor make its round trips look uncertain.
	mono := withFakeClock(t, tg, s)
	mono.advance(time.Hour)
	s.Options.MaxAge = 60
	b := newBrowser()
	sess, r := b.get(t, s, "sid")
	sess.Values["n"] = 1
	b.save(t, s, r, sess)
	tg.mini.SetTime(tg.now().Add(time.Hour))
	if got, _ := b.get(t, s, "sid"); got.IsNew {
		t.Fatal("a fresh estimate was not used: the read asked the server for its time")
	}
	mono.advance(s.clock.refresh)
	if got, _ := b.get(t, s, "sid"); !got.IsNew {
		t.Fatal("a session past its expiry on the server's clock was served")
	}
}

// TestWritesJudgeByTheServersClock: reads judge expiry by the store's
// estimate of the server's clock, but a HashMode write checks the session,
// and computes the expiry it stores, by the server's own TIME in the same
// step, and the store learns the server's clock from its answer. So a
// session that has expired on the server is not brought back by a write
// whose estimate says it is live. The estimate is skewed by hand here, so
// that which clock decided shows.
func TestWritesJudgeByTheServersClock(t *testing.T) {
	t.Parallel()
	forEachReal(t, func(t *testing.T, tg *target) {
		s := newStore(t, tg, Config{})
		mono := &fakeMonotonic{}
		mono.advance(time.Hour)
		s.clock.local = mono.now
		s.Options.MaxAge = 7200
		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		sess.Values["n"] = 0
		b.save(t, s, r, sess)
		loc, _ := s.locate(sess.ID)
		stored := func() string {
			v, err := tg.do(t, "HGET", loc.key, loc.field).ToString()
			noErr(t, err)
			return v
		}
		skew := func(d time.Duration) time.Time {
			st := *s.clock.state.Load()
			st.server = st.server.Add(d)
			s.clock.state.Store(&st)
			est, _ := s.clock.now()
			return est
		}

		est := skew(-time.Hour)
		sess, r = b.get(t, s, "sid")
		sess.Values["n"] = 1
		b.save(t, s, r, sess)
		if got, now := expiryOf(stored()).Unix(), tg.now().Unix(); got < now+7190 || got > now+7200 {
			t.Fatalf("expiry written with an estimate an hour slow: %d, want the server's time + 7200 (%d)", got, now+7200)
		}
		if learned, _ := s.clock.now(); learned.Sub(est) < 59*time.Minute {
			t.Fatalf("after a write the store's estimate is %v, want the server's time, about an hour past %v", learned, est)
		}

		// The session expires on the server; an estimate an hour slow still
		// serves it, but its write must not renew it.
		v := []byte(stored())
		binary.BigEndian.PutUint32(v, uint32(tg.now().Unix()-10))
		tg.do(t, "HSET", loc.key, loc.field, string(v))
		skew(-time.Hour)
		sess, r = b.get(t, s, "sid")
		if sess.IsNew {
			t.Fatal("the skewed estimate did not serve the session: the test proves nothing")
		}
		sess.Values["n"] = 2
		w := httptest.NewRecorder()
		if err := s.Save(r, w, sess); !errors.Is(err, ErrEnded) {
			t.Fatalf("Save of a session expired on the server: %v, want ErrEnded", err)
		}
		if len(w.Result().Cookies()) != 0 {
			t.Fatal("a refused Save set a cookie")
		}
		if got, err := tg.do(t, "HGET", loc.key, loc.field).ToString(); err == nil && got != string(v) {
			t.Fatalf("the expired session was rewritten: expiry %v", expiryOf(got))
		}
	})
}

// TestGetEndsASessionWithinTheClockUncertainty: Get judges a HashMode
// session's expiry by its estimate of the server's clock; where the
// estimate cannot tell (the expiry lies within its uncertainty), the
// session counts as ended, on the safe side.
func TestGetEndsASessionWithinTheClockUncertainty(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	s := newStore(t, tg, Config{})
	mono := withFakeClock(t, tg, s)
	b := newBrowser()
	sess, r := b.get(t, s, "sid")
	sess.Options.MaxAge = 10
	b.save(t, s, r, sess)
	loc, err := s.locate(sess.ID)
	noErr(t, err)
	v, err := tg.do(t, "HGET", loc.key, loc.field).ToString()
	noErr(t, err)
	exp := expiryOf(v)
	for _, tt := range []struct {
		uncertainty time.Duration
		served      bool
	}{{50 * time.Millisecond, true}, {200 * time.Millisecond, false}} {
		// The estimate says the session has 100 ms left.
		s.clock.state.Store(&clockState{server: exp.Add(-100 * time.Millisecond), at: mono.now(), uncertainty: tt.uncertainty})
		got, _ := b.get(t, s, "sid")
		if got.IsNew == tt.served {
			t.Fatalf("100 ms left by an estimate within %v: served %v, want %v", tt.uncertainty, !got.IsNew, tt.served)
		}
	}
}
