package redistore

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// backend is one Redis layout. Every method is one round trip.
type backend interface {
	// load returns the stored envelope and how long the server keeps it
	// from now. A missing or expired session gives found == false.
	load(ctx context.Context, loc location) (envelope string, left time.Duration, found bool, err error)
	// save stores envelope for ttl (whole seconds, at least 1).
	save(ctx context.Context, loc location, envelope string, ttl int64) error
	// touch extends a stored session to ttl from now, if it still exists.
	touch(ctx context.Context, loc location, ttl int64) error
	// remove deletes a session.
	remove(ctx context.Context, loc location) error
	// replace stores envelope at loc and deletes the session at old, in
	// one atomic step where both live on one server (in Redis Cluster they
	// are on different nodes: loc is written first, then old deleted).
	replace(ctx context.Context, old, loc location, envelope string, ttl int64) error
}

// stringBackend keeps each session under its own key: the value is the
// envelope and the key's TTL is the session's expiry.
type stringBackend struct {
	c rueidis.Client
}

func (b stringBackend) load(ctx context.Context, loc location) (string, time.Duration, bool, error) {
	res := b.c.DoMulti(ctx,
		b.c.B().Get().Key(loc.key).Build(),
		b.c.B().Pttl().Key(loc.key).Build())
	v, err := res[0].ToString()
	if err != nil {
		if rueidis.IsRedisNil(err) {
			return "", 0, false, nil
		}
		return "", 0, false, err
	}
	ms, err := res[1].AsInt64()
	if err != nil {
		return "", 0, false, err
	}
	if ms == -2 { // expired between GET and PTTL
		return "", 0, false, nil
	}
	// A key without a TTL (ms == -1) was not written by this store; treat it
	// as due for refresh so that the next Save gives it one.
	return v, time.Duration(max(ms, 0)) * time.Millisecond, true, nil
}

func (b stringBackend) save(ctx context.Context, loc location, envelope string, ttl int64) error {
	return b.c.Do(ctx, b.c.B().Set().Key(loc.key).Value(envelope).ExSeconds(ttl).Build()).Error()
}

func (b stringBackend) touch(ctx context.Context, loc location, ttl int64) error {
	return b.c.Do(ctx, b.c.B().Expire().Key(loc.key).Seconds(ttl).Build()).Error()
}

func (b stringBackend) remove(ctx context.Context, loc location) error {
	return b.c.Do(ctx, b.c.B().Unlink().Key(loc.key).Build()).Error()
}

// replaceStringScript: KEYS[1] old key, KEYS[2] new key, ARGV[1] TTL in
// seconds, ARGV[2] envelope.
var replaceStringScript = rueidis.NewLuaScript(`
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[1])
redis.call('DEL', KEYS[1])
return 1
`)

func (b stringBackend) replace(ctx context.Context, old, loc location, envelope string, ttl int64) error {
	if b.c.Mode() == rueidis.ClientModeCluster {
		return replaceInSteps(ctx, b, old, loc, envelope, ttl)
	}
	return replaceStringScript.Exec(ctx, b.c, []string{old.key, loc.key}, []string{itoa(ttl), envelope}).Error()
}

// replaceInSteps writes the new session before deleting the old one, so
// that a failure in between leaves the user logged in rather than out.
func replaceInSteps(ctx context.Context, b backend, old, loc location, envelope string, ttl int64) error {
	if err := b.save(ctx, loc, envelope, ttl); err != nil {
		return err
	}
	return b.remove(ctx, old)
}

// itoa formats a script argument.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }
