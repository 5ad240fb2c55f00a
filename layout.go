package redistore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
	"github.com/redisession/redistore/internal/strbytes"
)

// layout is one way of keeping sessions in Redis: HashMode's buckets
// (hashLayout, hash_store.go) or StringMode's keys (stringLayout,
// string_store.go). Everything that depends on the way goes through it: the
// request path, where every method is one round trip, and the operator side
// (Lookup, Stats, Sweep and the redistore command's checks). A new layout is
// one more file implementing it and one more case in New.
type layout interface {
	// mode is the Config.Mode the layout serves.
	mode() Mode
	// serverExpiry reports whether the expiries save, replace and touch
	// return are by the server's clock (else by this machine's).
	serverExpiry() bool
	// keyType is the Redis type of the layout's keys ("hash", "string").
	keyType() string

	// locate returns where the session with a valid ID lives, running the
	// key generators and checking what they return.
	locate(id string) (location, error)
	// ownsKey reports whether a key has the shape of the layout's keys:
	// under the prefix and, with the default generators, exactly as long.
	ownsKey(key string) bool

	// load returns what is stored at loc.
	load(ctx context.Context, loc location) (stored, error)
	// save stores a value for ttl (whole seconds, at least 1): the envelope
	// behind reserve() bytes that the layout fills in, the expiry it
	// returns (Unix seconds) among them. A new session (prev not found) is
	// written as it is; one a request holds only if what is stored is still
	// prev: else save writes nothing and returns ErrEnded when the session
	// is gone or expired, or a *conflict holding what is stored now. With
	// ix set, the same script runs the index step (luaIndex) after its
	// checks and before it writes.
	save(ctx context.Context, loc location, value []byte, ttl int64, prev stored, ix *indexOp) (exp int64, err error)
	// create stores a new session, as save does with prev not found, but
	// only if no session lives at loc: else it writes nothing and returns a
	// *conflict holding what does (a boj/redistore session moved by
	// another request, see Store.movedID).
	create(ctx context.Context, loc location, value []byte, ttl int64) (exp int64, err error)
	// touch extends a stored session to ttl from now, keeping its value, if
	// what is stored is still prev, answering as save does.
	touch(ctx context.Context, loc location, ttl int64, prev stored) (exp int64, err error)
	// remove deletes a session; a location with an empty field in HashMode
	// names a key of its own (a boj/redistore session being moved).
	remove(ctx context.Context, loc location) error
	// removeIf deletes the session at loc if what is stored there is still
	// prev, answering as save does.
	removeIf(ctx context.Context, loc location, prev stored) error
	// replace stores value at loc and deletes the session at old, in one
	// atomic step where both live on one server (in Redis Cluster they are
	// on different nodes: see replaceInSteps). With prevOld found, only if
	// what is stored at old is still prevOld, answering as save does; ix
	// as in save (never in Redis Cluster).
	replace(ctx context.Context, old, loc location, value []byte, ttl int64, prevOld stored, ix *indexOp) (exp int64, err error)
	// reserve is how many bytes save and replace want before the envelope.
	reserve() int

	// peek reads a session for Lookup without judging it: the stored value
	// (expiry in front), when the session ends, and the server's clock.
	peek(ctx context.Context, loc location) (p peeked, err error)
	// countCommands returns the commands that tell Stats what a key under
	// the prefix holds (its TYPE first); count reads their replies.
	countCommands(key string) rueidis.Commands
	count(res []rueidis.RedisResult) (c keyCount, err error)
	// sampleCommands returns the commands reading a sampled key's values
	// (no script: Stats works on a server without scripting); sampled
	// reads their replies.
	sampleCommands(key string) rueidis.Commands
	sampled(res []rueidis.RedisResult, now time.Time) sample
	// expiresItself reports that Redis ends every session by itself, so
	// that Sweep has nothing to do.
	expiresItself() bool
	// sweepKey removes the expired sessions of one key, for Sweep.
	sweepKey(ctx context.Context, key string) (removed, live int, skipped bool, err error)
	// sweepContext gives a Sweep's BucketSource what it may need of the
	// layout (SampleBuckets: the number of buckets).
	sweepContext(ctx context.Context) context.Context
}

// location is where one session lives: key alone in StringMode, key and field
// in HashMode.
type location struct {
	key   string
	field string
}

// stored is what a load found.
type stored struct {
	raw      string        // the stored value, as it is in Redis
	envelope string        // the session's envelope, in raw
	left     time.Duration // how long the server keeps it from now
	found    bool          // false for a missing or expired session
	expiry   int64         // the session's stored expiry (Unix seconds)
	// server is the server's clock when the value was read (zero: not
	// known), and local this machine's monotonic clock then.
	server time.Time
	local  time.Duration
}

// conflict is what a conditional write of a loaded session returns when the
// session changed since: current is what is stored now.
type conflict struct {
	current stored
	// taken: the conflict is at the new ID of a move (create), not at the
	// session moving.
	taken bool
}

func (c *conflict) Error() string { return "redistore: the session changed since it was loaded" }

// peeked is what a layout's peek found.
type peeked struct {
	value   string    // the stored value, expiry in front
	found   bool      // Redis holds a value there
	expires time.Time // when the session ends, by the server's clock
	now     time.Time // the server's clock when read
}

// keyCount is what Stats learns of one key.
type keyCount struct {
	owned    bool // of the layout's type (else: another application's key)
	gone     bool // deleted since SCAN listed it
	sessions int
	bucket   bool // a bucket, for the sessions-per-bucket histogram
}

// sample is what Stats learns from one sampled key.
type sample struct {
	sessions   int
	valueBytes []int    // the size of each stored value
	expired    int      // values whose stored expiry has passed
	heads      []string // the first bytes of each value, expiry in front
}

// expiryLen is the size of the expiry in front of every stored value.
const expiryLen = 4

// expiryOf reads the 4-byte expiry in front of a stored value.
func expiryOf(v string) time.Time {
	return time.Unix(int64(binary.BigEndian.Uint32(strbytes.Bytes(v[:expiryLen]))), 0)
}

// putExpiry writes the expiry unix (seconds) into the first 4 bytes of a
// stored value, as expiryOf reads it.
func putExpiry(value []byte, unix int64) {
	binary.BigEndian.PutUint32(value[:expiryLen], uint32(unix))
}

// readWithClock runs one read, adding TIME to it when the store's estimate
// of the server's clock is too old, and returns the read's reply, the
// server's time and how far from it the server's clock may be either way.
func readWithClock(ctx context.Context, c rueidis.Client, clock *serverClock, read rueidis.Completed) (rueidis.RedisResult, time.Time, time.Duration) {
	if now, uncertainty, ok := clock.estimate(); ok {
		sent := clock.local()
		res := c.Do(ctx, read)
		// The server read the value somewhere in the call: at the latest,
		// when the reply came.
		return res, now.Add(max(clock.local()-sent, 0)), uncertainty
	}
	sent := clock.local()
	res := c.DoMulti(ctx, read, c.B().Time().Build())
	received := clock.local()
	server, err := serverTime(res[1])
	if err != nil {
		if res[0].Error() == nil {
			return rueidis.NewErrorResult(err), time.Time{}, 0
		}
		return res[0], time.Time{}, 0
	}
	clock.observe(server, sent, received)
	rtt := max(received-sent, 0)
	// The server read its clock somewhere in the call.
	return res[0], server.Add(rtt - rtt/2), rtt - rtt/2
}

// peekReplies reads the replies of a peek: the value's read first, TIME
// last; expires says when the session ends, from the value and the time.
func peekReplies(res []rueidis.RedisResult, expires func(v string, now time.Time) time.Time) (peeked, error) {
	v, err := res[0].ToString()
	if rueidis.IsRedisNil(err) {
		return peeked{}, nil
	}
	if err != nil {
		return peeked{}, err
	}
	now, err := serverTime(res[len(res)-1])
	if err != nil {
		return peeked{}, err
	}
	p := peeked{value: v, found: true, now: now}
	if len(v) >= expiryLen {
		p.expires = expires(v, now)
	}
	return p, nil
}

// serverTime parses the reply of TIME.
func serverTime(r rueidis.RedisResult) (time.Time, error) {
	parts, err := r.AsStrSlice()
	if err != nil {
		return time.Time{}, err
	}
	if len(parts) != 2 {
		return time.Time{}, fmt.Errorf("TIME returned %d elements", len(parts))
	}
	sec, err1 := strconv.ParseInt(parts[0], 10, 64)
	usec, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, fmt.Errorf("TIME returned %q", parts)
	}
	return time.Unix(sec, usec*1000), nil
}

// replaceInSteps moves a session where old and loc live on different nodes
// (Redis Cluster): it writes the new session first, only if none lives
// there (a boj/redistore session's ID may be taken by a concurrent move),
// so that a failure in between leaves the user logged in rather than out,
// then deletes the old one if it is still prevOld. When it is not (ended or
// changed), the new session is deleted again if it still holds what this
// step wrote, and the answer is removeIf's.
func replaceInSteps(ctx context.Context, l layout, old, loc location, value []byte, ttl int64, prevOld stored) (int64, error) {
	exp, err := l.create(ctx, loc, value, ttl)
	if err != nil {
		var c *conflict
		if errors.As(err, &c) {
			c.taken = true
		}
		return 0, err
	}
	if !prevOld.found {
		return exp, l.remove(ctx, old)
	}
	err = l.removeIf(ctx, old, prevOld)
	var c *conflict
	if errors.Is(err, ErrEnded) || errors.As(err, &c) {
		putExpiry(value, exp)
		undo := l.removeIf(ctx, loc, stored{raw: string(value), found: true})
		if undo != nil && !errors.Is(undo, ErrEnded) && !errors.As(undo, new(*conflict)) {
			return 0, undo
		}
	}
	return exp, err
}

// itoa formats a script argument.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }
