package redistore

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/redis/rueidis"
)

// stringLayout keeps each session under its own key, which Redis expires:
// the value is a 4-byte big-endian expiry (Unix seconds) followed by the
// envelope. Redis's TTL decides when the session ends; the stored expiry,
// written and read by the application's clock, only tells a read how long
// the session has left (to decide when Save renews it) without asking Redis
// for the TTL as well. A clock a little off makes a renewal a little early or
// late, never a session end early.
type stringLayout struct {
	c      rueidis.Client
	prefix string
	// keyGen is Config.KeyGenerator; nil: the prefix and the raw ID.
	keyGen func(string) (string, error)
	now    func() time.Time // time.Now, but for tests
}

func (b *stringLayout) mode() Mode      { return StringMode }
func (b *stringLayout) keyType() string { return "string" }

func (b *stringLayout) locate(id string) (location, error) {
	raw, err := rawID(id)
	if err != nil {
		return location{}, err
	}
	if b.keyGen == nil {
		return location{key: b.prefix + string(raw[:])}, nil
	}
	k, err := checkKey(b.prefix, "KeyGenerator", b.keyGen, id, true)
	return location{key: k}, err
}

func (b *stringLayout) ownsKey(key string) bool {
	if !underPrefix(key, b.prefix) {
		return false
	}
	return b.keyGen != nil || len(key) == len(b.prefix)+idBytes
}

func (b *stringLayout) reserve() int { return expiryLen }

func (b *stringLayout) load(ctx context.Context, loc location) (stored, error) {
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

// putExpiry writes the expiry of a session saved now for ttl seconds into
// the first 4 bytes of value, rounding down to the second as HashMode does.
func (b *stringLayout) putExpiry(value []byte, ttl int64) {
	binary.BigEndian.PutUint32(value[:expiryLen], uint32(b.now().Unix()+ttl))
}

func (b *stringLayout) save(ctx context.Context, loc location, value []byte, ttl int64, _ stored) error {
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

func (b *stringLayout) touch(ctx context.Context, loc location, ttl int64) error {
	var exp [expiryLen]byte
	b.putExpiry(exp[:], ttl)
	return touchStringScript.Exec(ctx, b.c, []string{loc.key}, []string{itoa(ttl), string(exp[:])}).Error()
}

func (b *stringLayout) remove(ctx context.Context, loc location) error {
	return b.c.Do(ctx, b.c.B().Unlink().Key(loc.key).Build()).Error()
}

// replaceStringScript: KEYS[1] old key, KEYS[2] new key, ARGV[1] TTL in
// seconds, ARGV[2] value.
var replaceStringScript = rueidis.NewLuaScript(`
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[1])
redis.call('DEL', KEYS[1])
return 1
`)

func (b *stringLayout) replace(ctx context.Context, old, loc location, value []byte, ttl int64) error {
	if b.c.Mode() == rueidis.ClientModeCluster {
		return replaceInSteps(ctx, b, old, loc, value, ttl)
	}
	b.putExpiry(value, ttl)
	return replaceStringScript.Exec(ctx, b.c, []string{old.key, loc.key}, []string{itoa(ttl), bytesToString(value)}).Error()
}

// peek: Redis's TTL, not the stored expiry, ends a StringMode session.
func (b *stringLayout) peek(ctx context.Context, loc location) (peeked, error) {
	res := b.c.DoMulti(ctx, b.c.B().Get().Key(loc.key).Build(), b.c.B().Pttl().Key(loc.key).Build(), b.c.B().Time().Build())
	return peekReplies(res, func(v string, now time.Time) time.Time {
		if ms, err := res[1].AsInt64(); err == nil && ms >= 0 {
			return now.Add(time.Duration(ms) * time.Millisecond).Truncate(time.Millisecond)
		}
		return expiryOf(v)
	})
}

func (b *stringLayout) countCommands(key string) rueidis.Commands {
	return rueidis.Commands{b.c.B().Type().Key(key).Build()}
}

func (b *stringLayout) count(res []rueidis.RedisResult) (keyCount, error) {
	typ, err := res[0].ToString()
	if err != nil {
		return keyCount{}, err
	}
	switch typ {
	case "string":
		return keyCount{owned: true, sessions: 1}, nil
	case "none":
		return keyCount{gone: true}, nil
	}
	return keyCount{}, nil
}

func (b *stringLayout) sampleCommand(key string) rueidis.Completed {
	return b.c.B().Strlen().Key(key).Build()
}

// sampled: StringMode values are never kept past their expiry.
func (b *stringLayout) sampled(res rueidis.RedisResult, _ time.Time) sample {
	n, err := res.AsInt64()
	if err != nil || n == 0 {
		return sample{} // gone since it was counted
	}
	return sample{sessions: 1, valueBytes: []int{int(n)}}
}

func (b *stringLayout) expiresItself() bool { return true }

func (b *stringLayout) sweepKey(context.Context, string) (int, int, bool, error) {
	return 0, 0, true, nil
}

func (b *stringLayout) sweepContext(ctx context.Context) context.Context { return ctx }
