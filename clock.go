package redistore

import (
	"sync/atomic"
	"time"
)

// DefaultClockRefresh is how long the store trusts what it last learned of
// the Redis server's clock before it asks again.
const DefaultClockRefresh = 10 * time.Second

// maxClockUncertainty is the widest round trip, halved, that a reading of
// the server's clock may come from and still be used: past it the server
// is asked again, and HashMode writes take the script, which reads TIME on
// the server itself.
const maxClockUncertainty = 250 * time.Millisecond

// serverClock tracks the Redis server's clock, so that expiries are judged by
// one clock for every application server without asking Redis for TIME on
// every read. It learns the server's time from TIME replies and from the
// replies of the write scripts, which read TIME themselves; between replies
// it advances with the local monotonic clock, so that a step of this
// machine's wall clock (NTP, a resumed VM) changes nothing. An estimate older
// than refresh is not used: the next read asks the server again, so a step
// of the server's clock is seen within refresh.
type serverClock struct {
	refresh time.Duration
	// local reads the local monotonic clock; monotonic, but for tests.
	local func() time.Duration
	state atomic.Pointer[clockState]
}

type clockState struct {
	server      time.Time     // the server's clock at the local instant at
	at          time.Duration // the local monotonic clock then
	uncertainty time.Duration // half the round trip the reading came from
}

func newServerClock() *serverClock {
	return &serverClock{refresh: DefaultClockRefresh, local: monotonic}
}

// origin anchors monotonic; time.Since reads the monotonic clock.
var origin = time.Now()

// monotonic is the local monotonic clock.
func monotonic() time.Duration { return time.Since(origin) }

// now returns the server's current time, and false when the estimate is
// missing, too old or too uncertain to use.
func (c *serverClock) now() (time.Time, bool) {
	now, _, ok := c.estimate()
	return now, ok
}

// estimate is now, with how far the server's clock may be from it either
// way.
func (c *serverClock) estimate() (now time.Time, uncertainty time.Duration, ok bool) {
	st := c.state.Load()
	if st == nil || st.uncertainty > maxClockUncertainty {
		return time.Time{}, 0, false
	}
	elapsed := c.local() - st.at
	if elapsed >= c.refresh || elapsed < 0 {
		return time.Time{}, 0, false
	}
	return st.server.Add(elapsed), st.uncertainty, true
}

// observe records that the server's clock read server while a call was in
// flight between the local monotonic instants sent and received.
//
// A reading replaces the one kept only when it is tighter, when the two
// disagree (the server's clock stepped, or the kept one was wrong), or when
// the kept one is more than an eighth of refresh old; so that the many
// replies of a busy store, nearly all of them saying what the store knew
// already, cost no allocation.
func (c *serverClock) observe(server time.Time, sent, received time.Duration) {
	rtt := max(received-sent, 0)
	// The server read its clock somewhere in the call: take the middle.
	mid, uncertainty := server.Add(rtt-rtt/2), rtt/2
	if st := c.state.Load(); st != nil && uncertainty >= st.uncertainty {
		if age := received - st.at; age >= 0 && age <= c.refresh/8 {
			if off := st.server.Add(age).Sub(mid); off <= st.uncertainty+uncertainty && off >= -(st.uncertainty+uncertainty) {
				return
			}
		}
	}
	c.state.Store(&clockState{server: mid, at: received, uncertainty: uncertainty})
}
