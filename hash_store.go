package redistore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/redisession/redistore/internal/strbytes"
)

// hashLayout packs sessions into hashes ("buckets"): the field is the
// session, the value a 4-byte big-endian expiry (Unix seconds on the Redis
// server's clock) followed by the envelope. Every read checks the expiry, so
// an expired session is never served, whatever is left in Redis. Expired
// fields are removed by Redis itself where it supports field TTLs (HEXPIRE,
// Redis 7.4+), and otherwise by the writes into their bucket: each write
// cleans its bucket once a session in it has expired. The bucket's own TTL
// outlasts every session in it, so a bucket nobody writes to disappears.
type hashLayout struct {
	c       rueidis.Client
	prefix  string
	timeout time.Duration // bounds each call of Sweep
	buckets buckets       // of the default bucket generator
	// fieldGen and bucketGen are Config.KeyGenerator and HashKeyGenerator,
	// both nil for the default generators (fast in locate), else both set
	// (New fills in the default for the one left nil).
	fieldGen, bucketGen func(string) (string, error)

	fieldTTL FieldTTL
	// native is what the server said about HEXPIRE: 0 not asked yet, 1
	// supported, -1 not supported.
	native atomic.Int32
	// server is what the server is, for FieldTTLAuto: 0 not asked yet,
	// serverCompact (it keeps a hash whose fields have TTLs compact: Redis),
	// serverValkey (such a hash is a hashtable there).
	server atomic.Int32
	// noClean turns the cleaning off, for the benchmark that measures it.
	noClean bool
	clock   *serverClock
}

// reserve: the expiry goes in front of the envelope; the scripts compute
// it on the server.
func (b *hashLayout) reserve() int { return expiryLen }

func (b *hashLayout) mode() Mode { return HashMode }

// serverExpiry: the scripts write each expiry by the server's clock.
func (b *hashLayout) serverExpiry() bool { return true }
func (b *hashLayout) keyType() string    { return "hash" }

func (b *hashLayout) locate(id string) (location, error) {
	raw, err := rawID(id)
	if err != nil {
		return location{}, err
	}
	if b.bucketGen == nil {
		// The default generators, in one allocation: prefix, bucket, field.
		var buf [maxPrefixOnStack + 3 + idBytes]byte
		k := append(buf[:0], b.prefix...)
		k = b.buckets.appendKey(k, raw[:])
		n := len(k)
		key := string(append(k, raw[:]...))
		return location{key: key[:n], field: key[n:]}, nil
	}
	var loc location
	if loc.key, err = checkKey(b.prefix, "HashKeyGenerator", b.bucketGen, id, true); err != nil {
		return location{}, err
	}
	if loc.field, err = checkKey(b.prefix, "KeyGenerator", b.fieldGen, id, false); err != nil {
		return location{}, err
	}
	return loc, nil
}

func (b *hashLayout) ownsKey(key string) bool {
	if !underPrefix(key, b.prefix) {
		return false
	}
	return b.bucketGen != nil && !isIndexKey(key, b.prefix) || len(key) == len(b.prefix)+b.buckets.width
}

// defaultBucketGen is the bucket generator the fast path of locate inlines.
func (b *hashLayout) defaultBucketGen(id string) (string, error) {
	raw, err := rawID(id)
	if err != nil {
		return "", err
	}
	return string(b.buckets.appendKey([]byte(b.prefix), raw[:])), nil
}

func (b *hashLayout) peek(ctx context.Context, loc location) (peeked, error) {
	res := b.c.DoMulti(ctx, b.c.B().Hget().Key(loc.key).Field(loc.field).Build(), b.c.B().Time().Build())
	return peekReplies(res, func(v string, _ time.Time) time.Time { return expiryOf(v) })
}

// countCommands: TYPE, HLEN and whether the marker is there, which HLEN
// counts but is no session.
func (b *hashLayout) countCommands(key string) rueidis.Commands {
	return rueidis.Commands{b.c.B().Type().Key(key).Build(), b.c.B().Hlen().Key(key).Build(), b.c.B().Hexists().Key(key).Field("").Build()}
}

func (b *hashLayout) count(res []rueidis.RedisResult) (keyCount, error) {
	typ, err := res[0].ToString()
	if err != nil {
		return keyCount{}, err
	}
	switch typ {
	case "hash":
	case "none":
		return keyCount{gone: true}, nil
	default:
		return keyCount{}, nil
	}
	n, err := res[1].AsInt64()
	if err != nil {
		return keyCount{}, err
	}
	if marker, _ := res[2].AsBool(); marker {
		n--
	}
	return keyCount{owned: true, sessions: int(n), bucket: true}, nil
}

func (b *hashLayout) sampleCommands(key string) rueidis.Commands {
	return rueidis.Commands{b.c.B().Hgetall().Key(key).Build()}
}

func (b *hashLayout) sampled(res []rueidis.RedisResult, now time.Time) sample {
	fields, err := res[0].AsStrMap()
	if err != nil {
		return sample{}
	}
	var s sample
	for f, v := range fields {
		if f == "" {
			continue
		}
		s.sessions++
		s.valueBytes = append(s.valueBytes, len(v))
		s.heads = append(s.heads, v[:min(len(v), 80)])
		if len(v) >= expiryLen && !expiryOf(v).After(now) {
			s.expired++
		}
	}
	return s
}

// expiresItself: even with field TTLs, buckets may hold sessions written
// without them (older servers, mixed fleets) for Sweep to remove.
func (b *hashLayout) expiresItself() bool { return false }

func (b *hashLayout) sweepContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, bucketsKey{}, b.buckets)
}

// sweepScript cleans one chunk of a bucket, atomically and by the server's
// clock, so that a session renewed at the same moment is never removed. The
// empty field is the bucket's cleaning marker, not a session (see luaPut in hash_store.go).
// KEYS[1] bucket, ARGV[1] HSCAN cursor, ARGV[2] HSCAN COUNT, ARGV[3] the
// length of every session field, or 0 when it is not known (custom key
// generators): fields of another length are left alone. It returns {next
// cursor, removed, live}, or {-1} for a key that is not a hash.
var sweepScript = rueidis.NewLuaScript(`
local t = redis.call('TYPE', KEYS[1])
if t.ok == 'none' then return {0, 0, 0} end
if t.ok ~= 'hash' then return {-1} end
local now = tonumber(redis.call('TIME')[1])
local r = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local kv = r[2]
local removed, live = 0, 0
local flen = tonumber(ARGV[3])
for i = 1, #kv, 2 do
	local f, v = kv[i], kv[i + 1]
	if f ~= '' and (flen == 0 or #f == flen) then
		local a, b, c, d = string.byte(v, 1, 4)
		if #v < 4 or ((a * 256 + b) * 256 + c) * 256 + d <= now then
			redis.call('HDEL', KEYS[1], f)
			removed = removed + 1
		else
			live = live + 1
		end
	end
end
` + luaDropEmpty + `
return {tonumber(r[1]), removed, live}
`)

// sweepKey cleans one bucket, chunk by chunk.
func (b *hashLayout) sweepKey(ctx context.Context, key string) (removed, live int, skipped bool, err error) {
	cursor := "0"
	fieldLen := "0"
	if b.fieldGen == nil {
		fieldLen = strconv.Itoa(idBytes)
	}
	for {
		cctx, cancel := context.WithTimeout(ctx, b.timeout)
		res, err := sweepScript.Exec(cctx, b.c, []string{key}, []string{cursor, "500", fieldLen}).AsIntSlice()
		cancel()
		if err != nil {
			return removed, live, false, redisError("sweeping a bucket", err)
		}
		if len(res) == 1 && res[0] == -1 {
			return 0, 0, true, nil
		}
		if len(res) != 3 {
			return removed, live, false, fmt.Errorf("%w: sweep script returned %v", ErrUnavailable, res)
		}
		removed += int(res[1])
		live += int(res[2])
		if res[0] == 0 {
			return removed, live, false, nil
		}
		cursor = strconv.FormatInt(res[0], 10)
	}
}

// cleanLimit is the largest bucket a write cleans in one go (HGETALL);
// larger ones are cleaned a chunk of about cleanChunk fields (one HSCAN
// call) per write, the scan's cursor kept in the marker, so that no write
// does more than a bounded amount of work whatever the bucket's size.
const (
	cleanLimit = 256
	cleanChunk = 256
)

// luaPut is the one way sessions are written, inlined into each script that
// writes (Lua functions defined in a script are built again on every call,
// which costs a quarter of the script's time). It expects the locals now (the
// server's clock), key, field, body, ttl, native and doclean, and sets used:
//   - the value is body with the expiry now + ttl in its first 4 bytes: the
//     caller puts there the expiry it expects (see guessExpiry), and body is
//     stored as it is when that is right, so that the common write copies
//     the session once, not twice (each string made in Lua costs about a
//     microsecond per kilobyte);
//   - with native set, the field also gets a Redis TTL (HEXPIRE) just past
//     that expiry; used is 1 then, or -1 if the server refuses HEXPIRE (and
//     the bucket is cleaned as below), and 0 without native;
//   - the empty field is the bucket's cleaning marker: 4 bytes, a time at or
//     before the earliest expiry in the bucket; or, while a large bucket is
//     being cleaned chunk by chunk, 4 zero bytes, the earliest expiry seen
//     so far in this pass (4 bytes) and the HSCAN cursor. A write never
//     leaves the marker above its own session's expiry;
//   - without a field TTL, once the marker's time has passed (or with no
//     marker, or one that is not a marker: a pass starts again), the write
//     removes the expired sessions of the bucket: all of them in a bucket
//     of up to cleanLimit, else one HSCAN chunk, resuming where the last
//     write stopped; when a pass is complete the marker is the earliest
//     expiry it saw;
//   - when the bucket's TTL would end less than a second after the
//     session's expiry, it is pushed out to that plus a sixteenth of the
//     session's lifetime (at least a second, at most an hour), so that a
//     bucket written often is given a new TTL about once per sixteenth, not
//     on every write. TTLs are read and set in seconds: miniredis on 32-bit
//     platforms answers and parses milliseconds as 32-bit ints, which a
//     session of 25 days overflows. TTL rounds to the nearest second (in
//     miniredis, down), so "TTL < need + 1" holds whenever the time left is
//     under need seconds.
//
// With markread set the marker was read already, into m, by luaGet.
const luaPut = `
local exp = now + ttl
local expb = string.char(math.floor(exp / 16777216) % 256, math.floor(exp / 65536) % 256,
	math.floor(exp / 256) % 256, exp % 256)
if string.sub(body, 1, 4) ~= expb then body = expb .. string.sub(body, 5) end
redis.call('HSET', key, field, body)
local used = 0
if native then
	local r = redis.pcall('HEXPIRE', key, ttl + 1, 'FIELDS', 1, field)
	if type(r) == 'table' and r.err then used = -1 else used = 1 end
end
if doclean then
	if not markread then m = redis.call('HGET', key, '') end
	local dueAt, low, cursor
	if m and #m >= 4 then
		local a, b, c, d = string.byte(m, 1, 4)
		dueAt = ((a * 256 + b) * 256 + c) * 256 + d
		if #m > 8 then
			a, b, c, d = string.byte(m, 5, 8)
			low = ((a * 256 + b) * 256 + c) * 256 + d
			cursor = string.sub(m, 9)
			if #cursor > 19 or not string.match(cursor, '^%d+$') then
				-- Not a marker this store wrote (a cursor is at most 19 digits:
				-- Redis refuses one past 64 bits): as if there were none.
				dueAt, low, cursor = nil, nil, nil
			end
		end
	end
	if used == 1 or (dueAt and dueAt > now) then
		if cursor then
			if exp < low then redis.call('HSET', key, '', string.sub(m, 1, 4) .. expb .. cursor) end
		elseif dueAt and exp < dueAt then
			redis.call('HSET', key, '', expb)
		end
	elseif not cursor and redis.call('HLEN', key) <= CLEAN_LIMIT then
		local all = redis.call('HGETALL', key)
		local earliest
		for i = 1, #all, 2 do
			local f, v = all[i], all[i + 1]
			if f ~= '' and #v >= 4 then
				local a, b, c, d = string.byte(v, 1, 4)
				local e = ((a * 256 + b) * 256 + c) * 256 + d
				if e <= now then
					redis.call('HDEL', key, f)
				elseif not earliest or e < earliest then
					earliest = e
				end
			end
		end
		if earliest then
			redis.call('HSET', key, '', string.char(math.floor(earliest / 16777216) % 256,
				math.floor(earliest / 65536) % 256, math.floor(earliest / 256) % 256, earliest % 256))
		else
			redis.call('HDEL', key, '')
		end
	else
		if not low or exp < low then low = exp end
		local r = redis.call('HSCAN', key, cursor or '0', 'COUNT', CLEAN_CHUNK)
		local kv = r[2]
		for i = 1, #kv, 2 do
			local f, v = kv[i], kv[i + 1]
			if f ~= '' and #v >= 4 then
				local a, b, c, d = string.byte(v, 1, 4)
				local e = ((a * 256 + b) * 256 + c) * 256 + d
				if e <= now then
					redis.call('HDEL', key, f)
				elseif e < low then
					low = e
				end
			end
		end
		local lowb = string.char(math.floor(low / 16777216) % 256, math.floor(low / 65536) % 256,
			math.floor(low / 256) % 256, low % 256)
		if r[1] == '0' then
			redis.call('HSET', key, '', lowb)
		else
			redis.call('HSET', key, '', '\0\0\0\0' .. lowb .. r[1])
		end
	end
end
local need = ttl + 1
if redis.call('TTL', key) < need + 1 then
	redis.call('EXPIRE', key, need + math.max(1, math.min(math.floor(need / 16), 3600)))
end
`

var luaPutCode = strings.NewReplacer("CLEAN_LIMIT", strconv.Itoa(cleanLimit), "CLEAN_CHUNK", strconv.Itoa(cleanChunk)).Replace(luaPut)

// luaGet is the check before a conditional write or a renewal, inlined:
// with the locals key, field, now, op and markread, it reads the session
// (for every op but 'w') and returns {0} when it is gone or expired (the
// session ended), and {2, ..., stored value} when it is not the expected
// ARGV value, at index EXPECT. It leaves v holding the stored value and,
// with markread set, m the bucket's cleaning marker, read by the same
// HMGET.
const luaGet = `
local v, m
if op ~= 'w' then
	if field == '' then
		v = redis.call('GET', key)
	elseif markread then
		local r = redis.call('HMGET', key, field, '')
		v, m = r[1], r[2]
	else
		v = redis.call('HGET', key, field)
	end
	if not v then return {0, 0, time[1], time[2]} end
	if field ~= '' then
		if #v < 4 then return {0, 0, time[1], time[2]} end
		local a, b, c, d = string.byte(v, 1, 4)
		if ((a * 256 + b) * 256 + c) * 256 + d <= now then return {0, 0, time[1], time[2]} end
	end
	if v ~= ARGV[EXPECT] then return {2, 0, time[1], time[2], v} end
end
`

// writeScript stores or renews a session; one script, so that the first
// write loads it for both. KEYS[1] bucket; ARGV[1] field, ARGV[2] TTL in
// seconds, ARGV[3] "1" to set a field TTL, ARGV[4] "1" to clean, ARGV[5]
// the operation, ARGV[6] the value (the envelope behind the expected
// expiry, see luaPut), ARGV[7] the expected stored value;
// KEYS[2..3] and ARGV[8..12] the index step (luaIndexAdd, luaIndexDrop),
// when set.
// The operations: 'w' writes (a new session); 'n' writes a new session
// only if none lives there (else it answers what does, as 'c'); 'c' writes only if the stored
// value is still ARGV[7] (a session the request holds: else it answers
// what is there now, so that the caller can merge); 't' renews the expiry
// of the stored session, keeping its value, on the same condition. Neither
// 'c' nor 't' brings back a session that is gone or expired. It returns {status, used (see luaPut), server
// seconds, microseconds[, stored value]}: status 1 written, 0 ended, 2
// changed since it was loaded.
var writeScript = rueidis.NewLuaScript(`
local time = redis.call('TIME')
local now = tonumber(time[1])
local key, field, ttl = KEYS[1], ARGV[1], tonumber(ARGV[2])
local native, doclean, op = ARGV[3] == '1', ARGV[4] == '1', ARGV[5]
if op == 'n' then
	local cur = redis.call('HGET', key, field)
	if cur and #cur >= 4 then
		local a, b, c, d = string.byte(cur, 1, 4)
		if ((a * 256 + b) * 256 + c) * 256 + d > now then return {2, 0, time[1], time[2], cur} end
	end
	op = 'w'
end
local body, markread = ARGV[6], doclean and op ~= 'w'
` + strings.ReplaceAll(luaGet, "EXPECT", "7") + luaCheckHashes(2, "key") + `
if op == 't' then body = v end
` + luaIndexAdd(2, 8) + luaPutCode + luaIndexDrop(2, 8) + `
return {1, used, time[1], time[2]}
`)

// replaceHashScript moves a session to a new ID. KEYS[1] old bucket (or,
// with an empty old field, the boj/redistore key), KEYS[2] new bucket;
// ARGV[1] old field, ARGV[2] new field, ARGV[3] TTL in seconds, ARGV[4]
// field TTL flag, ARGV[5] clean flag, ARGV[6] value (as writeScript's), ARGV[7] 'c' to move
// only if the old session's stored value is still ARGV[8], else 'w';
// KEYS[3..4] and ARGV[9..13] the index step, when set. It answers as
// writeScript.
var replaceHashScript = rueidis.NewLuaScript(`
local time = redis.call('TIME')
local now = tonumber(time[1])
local key, field, op, markread = KEYS[1], ARGV[1], ARGV[7], false
` + strings.ReplaceAll(luaGet, "EXPECT", "8") + `
key, field = KEYS[2], ARGV[2]
local ttl = tonumber(ARGV[3])
local native, doclean = ARGV[4] == '1', ARGV[5] == '1'
local body = ARGV[6]
local t = redis.call('TYPE', key).ok
if t ~= 'hash' and t ~= 'none' then return redis.error_reply('WRONGTYPE the new session\'s bucket holds a ' .. t) end
` + luaCheckHashes(3, "") + luaIndexAdd(3, 9) + luaPutCode + `
if ARGV[1] == '' then
	redis.call('DEL', KEYS[1])
else
	redis.call('HDEL', KEYS[1], ARGV[1])
	` + luaDropEmpty + `
end
` + luaIndexDrop(3, 9) + `
return {1, used, time[1], time[2]}
`)

// What the server is, for FieldTTLAuto.
const (
	serverCompact = 1
	serverValkey  = 2
)

// learnServer records what INFO server says the server is.
func (b *hashLayout) learnServer(res rueidis.RedisResult) {
	info, err := res.ToString()
	switch {
	case err == nil && strings.Contains(info, "server_name:valkey"):
		b.server.Store(serverValkey)
	case err == nil:
		b.server.Store(serverCompact)
	default:
		if _, ok := rueidis.IsRedisErr(err); ok {
			b.server.Store(serverCompact) // no INFO (miniredis): not Valkey
		}
	}
}

// flags returns the field TTL and clean arguments of the write scripts,
// asking the server what it is when FieldTTLAuto needs to know and no read
// has asked yet.
func (b *hashLayout) flags(ctx context.Context) (native, clean string) {
	native = "0"
	switch b.fieldTTL {
	case FieldTTLOn:
		native = "1"
	case FieldTTLAuto:
		if b.native.Load() < 0 {
			break
		}
		if b.server.Load() == 0 {
			b.learnServer(b.c.Do(ctx, b.c.B().Info().Section("server").Build()))
		}
		if b.server.Load() != serverValkey {
			native = "1"
		}
	}
	clean = "1"
	if b.noClean {
		clean = "0"
	}
	return native, clean
}

// exec runs a write script and reads its answer, learning from it whether
// the server has field TTLs and what its clock says, which it returns. A
// session that ended is ErrEnded; one that changed since the request's
// snapshot is a *conflict with the value stored now.
func (b *hashLayout) exec(ctx context.Context, script *rueidis.Lua, keys, args []string) (time.Time, error) {
	sent := b.clock.local()
	v, err := script.Exec(ctx, b.c, keys, args).ToArray()
	received := b.clock.local()
	if err != nil {
		return time.Time{}, err
	}
	if len(v) < 4 {
		return time.Time{}, fmt.Errorf("write script returned %d values", len(v))
	}
	switch used, _ := v[1].AsInt64(); used {
	case 1:
		b.native.Store(1)
	case -1:
		b.native.Store(-1)
	}
	sec, err1 := v[2].AsInt64()
	usec, err2 := v[3].AsInt64()
	now := time.Unix(sec, usec*1000)
	if err1 == nil && err2 == nil {
		b.clock.observe(now, sent, received)
	}
	if err1 != nil || err2 != nil {
		return time.Time{}, fmt.Errorf("write script returned no time")
	}
	switch status, _ := v[0].AsInt64(); status {
	case 0:
		return now, ErrEnded
	case 2:
		if len(v) == 5 {
			if cur, err := v[4].ToString(); err == nil && len(cur) >= expiryLen {
				return now, &conflict{current: hashStored(cur, now, received)}
			}
		}
		return now, fmt.Errorf("write script answered a conflict without the stored value")
	}
	return now, nil
}

// hashStored describes a stored HashMode value read at the server time
// now, which was this machine's monotonic local.
func hashStored(v string, now time.Time, local time.Duration) stored {
	exp := expiryOf(v)
	return stored{raw: v, envelope: v[expiryLen:], found: true, expiry: exp.Unix(), left: exp.Sub(now), server: now, local: local}
}

// save writes a session: a new one unconditionally, one the request holds
// (prev) only if what is stored is still prev. The scripts give the value
// the expiry now + ttl by the server's clock, which save returns.
func (b *hashLayout) save(ctx context.Context, loc location, value []byte, ttl int64, prev stored, ix *indexOp) (int64, error) {
	native, clean := b.flags(ctx)
	op, expect := "w", ""
	if prev.found {
		op, expect = "c", prev.raw
	}
	b.guessExpiry(value, ttl)
	now, err := b.exec(ctx, writeScript, ix.keys(loc.key), ix.args(loc.field, itoa(ttl), native, clean, op, strbytes.String(value), expect))
	return now.Unix() + ttl, err
}

func (b *hashLayout) create(ctx context.Context, loc location, value []byte, ttl int64) (int64, error) {
	native, clean := b.flags(ctx)
	b.guessExpiry(value, ttl)
	now, err := b.exec(ctx, writeScript, []string{loc.key}, []string{loc.field, itoa(ttl), native, clean, "n", strbytes.String(value), ""})
	return now.Unix() + ttl, err
}

func (b *hashLayout) touch(ctx context.Context, loc location, ttl int64, prev stored) (int64, error) {
	native, clean := b.flags(ctx)
	now, err := b.exec(ctx, writeScript, []string{loc.key}, []string{loc.field, itoa(ttl), native, clean, "t", "", prev.raw})
	return now.Unix() + ttl, err
}

func (b *hashLayout) replace(ctx context.Context, old, loc location, value []byte, ttl int64, prevOld stored, ix *indexOp) (int64, error) {
	if b.c.Mode() == rueidis.ClientModeCluster {
		return replaceInSteps(ctx, b, old, loc, value, ttl, prevOld)
	}
	native, clean := b.flags(ctx)
	op := "w"
	if prevOld.found {
		op = "c"
	}
	b.guessExpiry(value, ttl)
	now, err := b.exec(ctx, replaceHashScript, ix.keys(old.key, loc.key),
		ix.args(old.field, loc.field, itoa(ttl), native, clean, strbytes.String(value), op, prevOld.raw))
	return now.Unix() + ttl, err
}

// guessExpiry puts into the first 4 bytes of value the expiry a write
// script will give it, now + ttl by the store's estimate of the server's
// clock (0 without one). The script judges by the server's own clock and
// puts the right expiry there when the guess is off.
func (b *hashLayout) guessExpiry(value []byte, ttl int64) {
	var exp int64
	if now, ok := b.clock.now(); ok {
		exp = now.Unix() + ttl
	}
	putExpiry(value, exp)
}

// load reads a session, judging its expiry by the store's estimate of the
// server's clock: a session that may have ended within the estimate's
// uncertainty counts as ended.
func (b *hashLayout) load(ctx context.Context, loc location) (stored, error) {
	var res rueidis.RedisResult
	var now time.Time
	var uncertainty time.Duration
	if b.fieldTTL == FieldTTLAuto && b.server.Load() == 0 {
		// The first read asks, in the same round trip, what the server is.
		sent := b.clock.local()
		r := b.c.DoMulti(ctx, b.c.B().Hget().Key(loc.key).Field(loc.field).Build(), b.c.B().Time().Build(), b.c.B().Info().Section("server").Build())
		received := b.clock.local()
		b.learnServer(r[2])
		server, err := serverTime(r[1])
		if err != nil && r[0].Error() == nil {
			return stored{}, err
		}
		res = r[0]
		if err == nil {
			b.clock.observe(server, sent, received)
			rtt := max(received-sent, 0)
			now, uncertainty = server.Add(rtt-rtt/2), rtt-rtt/2
		}
	} else {
		res, now, uncertainty = readWithClock(ctx, b.c, b.clock, b.c.B().Hget().Key(loc.key).Field(loc.field).Build())
	}
	v, err := res.ToString()
	if err != nil {
		if rueidis.IsRedisNil(err) {
			return stored{}, nil
		}
		return stored{}, err
	}
	if len(v) < expiryLen {
		return stored{}, fmt.Errorf("%w: %d-byte hash value has no expiry", ErrCorrupt, len(v))
	}
	st := hashStored(v, now, b.clock.local())
	if st.left <= uncertainty {
		return stored{}, nil
	}
	return st, nil
}

// removeScript deletes a session, and its bucket when only the cleaning
// marker would be left. KEYS[1] bucket, ARGV[1] field; an empty field means
// KEYS[1] is a key of its own (a boj/redistore session being migrated).
var removeScript = rueidis.NewLuaScript(`
if ARGV[1] == '' then
	redis.call('DEL', KEYS[1])
	return 1
end
redis.call('HDEL', KEYS[1], ARGV[1])
` + luaDropEmpty + `
return 1
`)

// luaDropEmpty deletes the bucket KEYS[1] when it holds nothing but the
// cleaning marker.
const luaDropEmpty = `
if redis.call('HLEN', KEYS[1]) == 1 and redis.call('HEXISTS', KEYS[1], '') == 1 then
	redis.call('DEL', KEYS[1])
end
`

// removeIfScript deletes a session if its stored value is still ARGV[2]:
// KEYS[1] bucket (or a key of its own with an empty field), ARGV[1] field.
// It answers as writeScript.
var removeIfScript = rueidis.NewLuaScript(`
local time = redis.call('TIME')
local now = tonumber(time[1])
local key, field, op, markread = KEYS[1], ARGV[1], 'c', false
` + strings.ReplaceAll(luaGet, "EXPECT", "2") + `
if field == '' then
	redis.call('DEL', KEYS[1])
else
	redis.call('HDEL', KEYS[1], field)
	` + luaDropEmpty + `
end
return {1, 0, time[1], time[2]}
`)

func (b *hashLayout) removeIf(ctx context.Context, loc location, prev stored) error {
	_, err := b.exec(ctx, removeIfScript, []string{loc.key}, []string{loc.field, prev.raw})
	return err
}

func (b *hashLayout) remove(ctx context.Context, loc location) error {
	return removeScript.Exec(ctx, b.c, []string{loc.key}, []string{loc.field}).Error()
}
