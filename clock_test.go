package redistore

import (
	"strings"
	"testing"
	"time"
)

func TestServerClock(t *testing.T) {
	c := &serverClock{refresh: time.Hour}
	if _, ok := c.now(); ok {
		t.Fatal("a clock that never heard from the server claims to know its time")
	}
	server := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	received := time.Now()
	sent := received.Add(-2 * time.Millisecond)
	c.observe(server, sent, received)
	now, ok := c.now()
	if !ok {
		t.Fatal("no estimate after a reply")
	}
	// The server read its clock about halfway through the call.
	near(t, "estimate", now.Sub(server), time.Since(sent.Add(time.Millisecond)), 50*time.Millisecond)

	c.refresh = 0
	if _, ok := c.now(); ok {
		t.Fatal("an estimate older than refresh is still used")
	}
}

// TestReadsAskForTimeOnlyWhenTheEstimateIsOld checks on the real server that
// a HashMode read is a lone HMGET (the session and the bucket marker) while the store knows the server's clock from
// a recent reply, and carries a TIME when it does not.
func TestReadsAskForTimeOnlyWhenTheEstimateIsOld(t *testing.T) {
	tg := newRealTarget(t)
	cc := &countingClient{Client: tg.client}
	s := newStore(t, tg, Config{Client: cc})
	b := newBrowser()
	sess, r := b.get(t, s, "sid")
	sess.Values["n"] = 1
	b.save(t, s, r, sess) // the write script's reply carries the server's time

	commands := func() string {
		var names []string
		cc.names.Range(func(k, _ any) bool { names = append(names, k.(string)); return true })
		cc.names.Clear()
		return strings.Join(names, ",")
	}
	commands()
	b.get(t, s, "sid")
	equal(t, "commands of a read with a fresh estimate", commands(), "HMGET")

	ageClock(s.clock, s.clock.refresh)
	b.get(t, s, "sid")
	got := commands()
	if !strings.Contains(got, "TIME") || !strings.Contains(got, "HMGET") {
		t.Fatalf("commands of a read with an old estimate: %s", got)
	}
}

// TestAStepOfTheServersClockIsSeenWithinRefresh jumps miniredis's clock past
// a session's expiry: once the estimate is older than refresh, reads see it.
func TestAStepOfTheServersClockIsSeenWithinRefresh(t *testing.T) {
	tg := newMiniTarget(t)
	s := newStore(t, tg, Config{})
	s.clock.refresh = 100 * time.Millisecond
	s.Options.MaxAge = 60
	b := newBrowser()
	sess, r := b.get(t, s, "sid")
	sess.Values["n"] = 1
	b.save(t, s, r, sess)
	tg.mini.SetTime(tg.now().Add(time.Hour))
	if got, _ := b.get(t, s, "sid"); got.IsNew {
		t.Fatal("a fresh estimate was not used: the read asked the server for its time")
	}
	ageClock(s.clock, s.clock.refresh)
	if got, _ := b.get(t, s, "sid"); !got.IsNew {
		t.Fatal("a session past its expiry on the server's clock was served")
	}
}

// ageClock makes what c knows of the server's clock d older, as if d had
// passed on the local clock since the reply it came from.
func ageClock(c *serverClock, d time.Duration) {
	st := c.state.Load()
	c.state.Store(&clockState{offset: st.offset, at: st.at.Add(-d)})
}
