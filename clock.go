package redistore

import (
	"sync/atomic"
	"time"
)

// DefaultClockRefresh is how long the store trusts what it last learned of
// the Redis server's clock before it asks again.
const DefaultClockRefresh = 10 * time.Second

// serverClock tracks the Redis server's clock, so that expiries are judged by
// one clock for every application server without asking Redis for TIME on
// every read. It learns the server's time from TIME replies and from the
// replies of the write scripts, which read TIME themselves, and keeps the
// offset to the local clock; between replies it advances with the local
// monotonic clock. An estimate older than refresh is not used: the next read
// asks the server again, so a step of the server's clock is seen within
// refresh.
type serverClock struct {
	refresh time.Duration
	state   atomic.Pointer[clockState]
}

type clockState struct {
	offset time.Duration // server time - local time
	at     time.Time     // local time of the measurement (monotonic)
}

// now returns the server's current time, and false when the estimate is
// missing or too old to use.
func (c *serverClock) now() (time.Time, bool) {
	st := c.state.Load()
	local := time.Now()
	if st == nil || local.Sub(st.at) >= c.refresh {
		return time.Time{}, false
	}
	return local.Add(st.offset), true
}

// observe records that the server's clock read server while a call was in
// flight between sent and received (local times).
func (c *serverClock) observe(server, sent, received time.Time) {
	mid := sent.Add(received.Sub(sent) / 2)
	c.state.Store(&clockState{offset: server.Sub(mid), at: received})
}
