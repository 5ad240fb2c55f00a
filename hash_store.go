package redistore

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// hashBackend packs sessions into hashes ("buckets"): the field is the
// session, the value a 4-byte big-endian expiry (Unix seconds on the Redis
// server's clock) followed by the envelope. Every read checks the expiry, so
// an expired session is never served, whatever is left in Redis. Expired
// fields are removed by Redis itself where it supports field TTLs (HEXPIRE,
// Redis 7.4+), and otherwise by the writes into their bucket: each write
// cleans its bucket once a session in it has expired. The bucket's own TTL
// outlasts every session in it, so a bucket nobody writes to disappears.
type hashBackend struct {
	c        rueidis.Client
	fieldTTL FieldTTL
	// native is what the server said about HEXPIRE: 0 not asked yet, 1
	// supported, -1 not supported.
	native atomic.Int32
	// noClean turns the cleaning off, for the benchmark that measures it.
	noClean bool
}

// expiryLen is the size of the expiry in front of a HashMode value.
const expiryLen = 4

// cleanLimit is the largest bucket a write cleans; larger ones (only custom
// HashKeyGenerators make them) are left to Sweep, to keep writes cheap.
const cleanLimit = 256

// luaPut defines put(key, field, body, ttl, native, clean), the one way
// sessions are written:
//   - the value is body behind a fresh expiry from the server's clock;
//   - with native set, the field also gets a Redis TTL (HEXPIRE) just past
//     that expiry; if the server refuses HEXPIRE, the bucket is cleaned as
//     below and put returns -1, else 1 (0 when native is not set);
//   - without a field TTL, the empty field (no session has one)
//     holds the earliest expiry in the bucket; once that time has passed, the
//     write removes every expired session of the bucket;
//   - the bucket's TTL stays at least one second past the session's expiry;
//     when it must grow, it grows by an extra sixteenth (at most an hour), so
//     that most writes into a busy bucket can skip the PEXPIRE.
const luaPut = `
local function be32(e)
	return string.char(math.floor(e / 16777216) % 256, math.floor(e / 65536) % 256,
		math.floor(e / 256) % 256, e % 256)
end
local function expiry(v)
	local a, b, c, d = string.byte(v, 1, 4)
	return ((a * 256 + b) * 256 + c) * 256 + d
end
local now = tonumber(redis.call('TIME')[1])
local function clean(key)
	if redis.call('HLEN', key) > ` + "CLEAN_LIMIT" + ` then return end
	local all = redis.call('HGETALL', key)
	local earliest
	for i = 1, #all, 2 do
		local f, v = all[i], all[i + 1]
		if f ~= '' and #v >= 4 then
			local e = expiry(v)
			if e <= now then
				redis.call('HDEL', key, f)
			elseif not earliest or e < earliest then
				earliest = e
			end
		end
	end
	if earliest then
		redis.call('HSET', key, '', be32(earliest))
	else
		redis.call('HDEL', key, '')
	end
end
local function put(key, field, body, ttl, native, doclean)
	local exp = now + ttl
	redis.call('HSET', key, field, be32(exp) .. body)
	local used = 0
	if native then
		local r = redis.pcall('HEXPIRE', key, ttl + 1, 'FIELDS', 1, field)
		if type(r) == 'table' and r.err then used = -1 else used = 1 end
	end
	if used ~= 1 and doclean then
		local due = redis.call('HGET', key, '')
		if due and #due == 4 and expiry(due) > now then
			if exp < expiry(due) then redis.call('HSET', key, '', be32(exp)) end
		else
			clean(key)
		end
	end
	local keep = (ttl + 1) * 1000
	if redis.call('PTTL', key) < keep then
		redis.call('PEXPIRE', key, keep + math.min(math.floor(keep / 16), 3600000))
	end
	return used
end
`

// writeScript stores or renews a session; one script, so that the first
// write loads it for both. KEYS[1] bucket; ARGV[1] field, ARGV[2] TTL in
// seconds, ARGV[3] "1" to set a field TTL, ARGV[4] "1" to clean, ARGV[5] the
// envelope. Without ARGV[5] it renews the expiry of a live session and
// leaves a missing or expired one alone: a renewal never resurrects a
// session. It returns {written (0 or 1), put's field TTL result}.
var writeScript = rueidis.NewLuaScript(luaPrelude + `
local body = ARGV[5]
if not body then
	local v = redis.call('HGET', KEYS[1], ARGV[1])
	if not v or #v < 4 or expiry(v) <= now then return {0, 0} end
	body = string.sub(v, 5)
end
return {1, put(KEYS[1], ARGV[1], body, tonumber(ARGV[2]), ARGV[3] == '1', ARGV[4] == '1')}
`)

// replaceHashScript moves a session to a new ID. KEYS[1] old bucket (or,
// with an empty old field, the boj/redistore key), KEYS[2] new bucket;
// ARGV[1] old field, ARGV[2] new field, ARGV[3] TTL in seconds,
// ARGV[4] field TTL flag, ARGV[5] clean flag, ARGV[6] envelope.
var replaceHashScript = rueidis.NewLuaScript(luaPrelude + luaDropEmpty + `
local used = put(KEYS[2], ARGV[2], ARGV[6], tonumber(ARGV[3]), ARGV[4] == '1', ARGV[5] == '1')
if ARGV[1] == '' then
	redis.call('DEL', KEYS[1])
else
	redis.call('HDEL', KEYS[1], ARGV[1])
	dropEmpty(KEYS[1])
end
return {1, used}
`)

var luaPrelude = strings.Replace(luaPut, "CLEAN_LIMIT", strconv.Itoa(cleanLimit), 1)

// flags returns the field TTL and clean arguments of the write scripts.
func (b *hashBackend) flags() (native, clean string) {
	native = "0"
	switch b.fieldTTL {
	case FieldTTLOn:
		native = "1"
	case FieldTTLAuto:
		if b.native.Load() >= 0 {
			native = "1"
		}
	}
	clean = "1"
	if b.noClean {
		clean = "0"
	}
	return native, clean
}

// result checks a write script's reply and learns from it whether the
// server has field TTLs.
func (b *hashBackend) result(r rueidis.RedisResult) (written bool, err error) {
	v, err := r.AsIntSlice()
	if err != nil {
		return false, err
	}
	if len(v) != 2 {
		return false, fmt.Errorf("write script returned %v", v)
	}
	switch v[1] {
	case 1:
		b.native.Store(1)
	case -1:
		b.native.Store(-1)
	}
	return v[0] == 1, nil
}

func (b *hashBackend) save(ctx context.Context, loc location, envelope string, ttl int64) error {
	native, clean := b.flags()
	_, err := b.result(writeScript.Exec(ctx, b.c, []string{loc.key}, []string{loc.field, itoa(ttl), native, clean, envelope}))
	return err
}

func (b *hashBackend) touch(ctx context.Context, loc location, ttl int64) error {
	native, clean := b.flags()
	_, err := b.result(writeScript.Exec(ctx, b.c, []string{loc.key}, []string{loc.field, itoa(ttl), native, clean}))
	return err
}

func (b *hashBackend) replace(ctx context.Context, old, loc location, envelope string, ttl int64) error {
	if b.c.Mode() == rueidis.ClientModeCluster {
		return replaceInSteps(ctx, b, old, loc, envelope, ttl)
	}
	native, clean := b.flags()
	_, err := b.result(replaceHashScript.Exec(ctx, b.c, []string{old.key, loc.key},
		[]string{old.field, loc.field, itoa(ttl), native, clean, envelope}))
	return err
}

func (b *hashBackend) load(ctx context.Context, loc location) (string, time.Duration, bool, error) {
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

// removeScript deletes a session, and its bucket when only the cleaning
// marker would be left. KEYS[1] bucket, ARGV[1] field; an empty field means
// KEYS[1] is a key of its own (a boj/redistore session being migrated).
var removeScript = rueidis.NewLuaScript(luaDropEmpty + `
if ARGV[1] == '' then
	redis.call('DEL', KEYS[1])
	return 1
end
redis.call('HDEL', KEYS[1], ARGV[1])
dropEmpty(KEYS[1])
return 1
`)

// luaDropEmpty defines dropEmpty(key): delete a bucket that holds nothing
// but the cleaning marker.
const luaDropEmpty = `
local function dropEmpty(key)
	if redis.call('HLEN', key) == 1 and redis.call('HEXISTS', key, '') == 1 then
		redis.call('DEL', key)
	end
end
`

func (b *hashBackend) remove(ctx context.Context, loc location) error {
	return removeScript.Exec(ctx, b.c, []string{loc.key}, []string{loc.field}).Error()
}
