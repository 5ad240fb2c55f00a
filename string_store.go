package redistore

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// backend is one Redis layout. Every method is one round trip.
type backend interface {
	// load returns what is stored at loc.
	load(ctx context.Context, loc location) (stored, error)
	// save stores a value for ttl (whole seconds, at least 1): the envelope
	// behind reserve() bytes that the backend fills in. prev is what a load
	// of the same session found, if anything.
	save(ctx context.Context, loc location, value []byte, ttl int64, prev stored) error
	// touch extends a stored session to ttl from now, if it still exists.
	touch(ctx context.Context, loc location, ttl int64) error
	// remove deletes a session.
	remove(ctx context.Context, loc location) error
	// replace stores value at loc and deletes the session at old, in one
	// atomic step where both live on one server (in Redis Cluster they are
	// on different nodes: loc is written first, then old deleted).
	replace(ctx context.Context, old, loc location, value []byte, ttl int64) error
	// reserve is how many bytes save and replace want before the envelope.
	reserve() int
}

// stored is what a load found.
type stored struct {
	envelope string        // the session's envelope
	left     time.Duration // how long the server keeps it from now
	found    bool          // false for a missing or expired session
	// due is HashMode's cleaning marker of the bucket: a time at or before
	// the earliest expiry in it (Unix seconds), or -1 when it has none.
	due int64
	// expiry is the session's stored expiry (Unix seconds).
	expiry int64
}

// stringBackend keeps each session under its own key, which Redis expires:
// the value is a 4-byte big-endian expiry (Unix seconds) followed by the
// envelope. Redis's TTL decides when the session ends; the stored expiry,
// written and read by the application's clock, only tells a read how long
// the session has left (to decide when Save renews it) without asking Redis
// for the TTL as well. A clock a little off makes a renewal a little early or
// late, never a session end early.
type stringBackend struct {
	c   rueidis.Client
	now func() time.Time // time.Now, but for tests
}

func (b *stringBackend) reserve() int { return expiryLen }

func (b *stringBackend) load(ctx context.Context, loc location) (stored, error) {
	v, err := b.c.Do(ctx, b.c.B().Get().Key(loc.key).Build()).ToString()
	if err != nil {
		if rueidis.IsRedisNil(err) {
			return stored{due: -1}, nil
		}
		return stored{}, err
	}
	if len(v) < expiryLen {
		return stored{}, fmt.Errorf("%w: %d-byte value has no expiry", ErrCorrupt, len(v))
	}
	// Redis holds the key, so the session is alive, whatever a clock a
	// second off says.
	left := max(expiryOf(v).Sub(b.now()), 0)
	return stored{envelope: v[expiryLen:], left: left, found: true, due: -1}, nil
}

// readWithClock runs one read, adding TIME to it when the store's estimate
// of the server's clock is too old, and returns the read's reply and the
// server's time.
func readWithClock(ctx context.Context, c rueidis.Client, clock *serverClock, read rueidis.Completed) (rueidis.RedisResult, time.Time) {
	if now, ok := clock.now(); ok {
		return c.Do(ctx, read), now
	}
	sent := clock.local()
	res := c.DoMulti(ctx, read, c.B().Time().Build())
	received := clock.local()
	server, err := serverTime(res[1])
	if err != nil {
		if res[0].Error() == nil {
			return rueidis.NewErrorResult(err), time.Time{}
		}
		return res[0], time.Time{}
	}
	clock.observe(server, sent, received)
	rtt := received - sent
	return res[0], server.Add(rtt - rtt/2)
}

// expiryOf reads the 4-byte expiry in front of a stored value.
func expiryOf(v string) time.Time {
	return time.Unix(int64(binary.BigEndian.Uint32(stringBytes(v[:expiryLen]))), 0)
}

// putExpiry writes the expiry of a session saved now for ttl seconds into
// the first 4 bytes of value, rounding down to the second as HashMode does.
func (b *stringBackend) putExpiry(value []byte, ttl int64) {
	binary.BigEndian.PutUint32(value[:expiryLen], uint32(b.now().Unix()+ttl))
}

func (b *stringBackend) save(ctx context.Context, loc location, value []byte, ttl int64, _ stored) error {
	b.putExpiry(value, ttl)
	return b.c.Do(ctx, b.c.B().Set().Key(loc.key).Value(bytesToString(value)).ExSeconds(ttl).Build()).Error()
}

// touchStringScript renews a live session: KEYS[1] key, ARGV[1] TTL in
// seconds, ARGV[2] the new 4-byte expiry. A missing key stays missing.
var touchStringScript = rueidis.NewLuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SETRANGE', KEYS[1], 0, ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
`)

func (b *stringBackend) touch(ctx context.Context, loc location, ttl int64) error {
	var exp [expiryLen]byte
	b.putExpiry(exp[:], ttl)
	return touchStringScript.Exec(ctx, b.c, []string{loc.key}, []string{itoa(ttl), string(exp[:])}).Error()
}

func (b *stringBackend) remove(ctx context.Context, loc location) error {
	return b.c.Do(ctx, b.c.B().Unlink().Key(loc.key).Build()).Error()
}

// replaceStringScript: KEYS[1] old key, KEYS[2] new key, ARGV[1] TTL in
// seconds, ARGV[2] value.
var replaceStringScript = rueidis.NewLuaScript(`
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[1])
redis.call('DEL', KEYS[1])
return 1
`)

func (b *stringBackend) replace(ctx context.Context, old, loc location, value []byte, ttl int64) error {
	if b.c.Mode() == rueidis.ClientModeCluster {
		return replaceInSteps(ctx, b, old, loc, value, ttl)
	}
	b.putExpiry(value, ttl)
	return replaceStringScript.Exec(ctx, b.c, []string{old.key, loc.key}, []string{itoa(ttl), bytesToString(value)}).Error()
}

// replaceInSteps writes the new session before deleting the old one, so
// that a failure in between leaves the user logged in rather than out.
func replaceInSteps(ctx context.Context, b backend, old, loc location, value []byte, ttl int64) error {
	if err := b.save(ctx, loc, value, ttl, stored{}); err != nil {
		return err
	}
	return b.remove(ctx, old)
}

// itoa formats a script argument.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }
