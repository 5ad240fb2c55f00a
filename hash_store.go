package redistore

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// hashBackend packs sessions into hashes ("buckets"): the field is the
// session, the value a 4-byte big-endian expiry (Unix seconds on the Redis
// server's clock) followed by the envelope. Redis (before 7.4) cannot expire
// a field, so every read checks the expiry, and the bucket's own TTL is kept
// at or beyond the latest expiry of any session in it: a bucket nobody writes
// to any more disappears by itself.
type hashBackend struct {
	c rueidis.Client
}

// expiryLen is the size of the expiry in front of a HashMode value.
const expiryLen = 4

// luaSetExpiry defines put(key, field, body, ttl): store body behind a fresh
// expiry taken from the server's clock, and keep the bucket's TTL at least
// one second beyond it. When the TTL must grow it grows by an extra
// sixteenth (at most an hour), so that most writes into a busy bucket find
// it long enough already and skip the PEXPIRE.
const luaSetExpiry = `
local function put(key, field, body, ttl)
	local exp = tonumber(redis.call('TIME')[1]) + ttl
	redis.call('HSET', key, field, string.char(
		math.floor(exp / 16777216) % 256, math.floor(exp / 65536) % 256,
		math.floor(exp / 256) % 256, exp % 256) .. body)
	local keep = (ttl + 1) * 1000
	if redis.call('PTTL', key) < keep then
		redis.call('PEXPIRE', key, keep + math.min(math.floor(keep / 16), 3600000))
	end
end
`

// writeScript stores or renews a session; one script, so that the first
// write loads it for both. KEYS[1] bucket, ARGV[1] field, ARGV[2] TTL in
// seconds, ARGV[3] the envelope to store. Without ARGV[3] it renews the
// expiry of a live session and leaves a missing or expired one alone, so a
// renewal never resurrects a session.
var writeScript = rueidis.NewLuaScript(luaSetExpiry + `
local ttl = tonumber(ARGV[2])
if ARGV[3] then
	put(KEYS[1], ARGV[1], ARGV[3], ttl)
	return 1
end
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v or #v < 4 then return 0 end
local a, b, c, d = string.byte(v, 1, 4)
if ((a * 256 + b) * 256 + c) * 256 + d <= tonumber(redis.call('TIME')[1]) then
	return 0
end
put(KEYS[1], ARGV[1], string.sub(v, 5), ttl)
return 1
`)

// replaceHashScript: KEYS[1] old bucket, KEYS[2] new bucket, ARGV[1] old
// field, ARGV[2] new field, ARGV[3] TTL in seconds, ARGV[4] envelope.
var replaceHashScript = rueidis.NewLuaScript(luaSetExpiry + `
put(KEYS[2], ARGV[2], ARGV[4], tonumber(ARGV[3]))
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
`)

func (b hashBackend) replace(ctx context.Context, old, loc location, envelope string, ttl int64) error {
	if b.c.Mode() == rueidis.ClientModeCluster {
		return replaceInSteps(ctx, b, old, loc, envelope, ttl)
	}
	return replaceHashScript.Exec(ctx, b.c, []string{old.key, loc.key}, []string{old.field, loc.field, itoa(ttl), envelope}).Error()
}

func (b hashBackend) load(ctx context.Context, loc location) (string, time.Duration, bool, error) {
	res := b.c.DoMulti(ctx,
		b.c.B().Hget().Key(loc.key).Field(loc.field).Build(),
		b.c.B().Time().Build())
	v, err := res[0].ToString()
	if err != nil {
		if rueidis.IsRedisNil(err) {
			return "", 0, false, nil
		}
		return "", 0, false, err
	}
	now, err := serverTime(res[1])
	if err != nil {
		return "", 0, false, err
	}
	if len(v) < expiryLen {
		return "", 0, false, fmt.Errorf("%w: %d-byte hash value has no expiry", ErrCorrupt, len(v))
	}
	exp := time.Unix(int64(binary.BigEndian.Uint32(stringBytes(v[:expiryLen]))), 0)
	left := exp.Sub(now)
	if left <= 0 {
		return "", 0, false, nil
	}
	return v[expiryLen:], left, true, nil
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

func (b hashBackend) save(ctx context.Context, loc location, envelope string, ttl int64) error {
	return writeScript.Exec(ctx, b.c, []string{loc.key}, []string{loc.field, itoa(ttl), envelope}).Error()
}

func (b hashBackend) touch(ctx context.Context, loc location, ttl int64) error {
	return writeScript.Exec(ctx, b.c, []string{loc.key}, []string{loc.field, itoa(ttl)}).Error()
}

func (b hashBackend) remove(ctx context.Context, loc location) error {
	return b.c.Do(ctx, b.c.B().Hdel().Key(loc.key).Field(loc.field).Build()).Error()
}
