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
	// noClean turns the cleaning off, for the benchmark that measures it.
	noClean bool
	clock   *serverClock
	// plain is -1 once the server refused the plain write (PEXPIREAT NX
	// and GT need Redis 7.0): every write then goes through the script.
	plain atomic.Int32
	// hsetex is -1 once the server refused HSETEX (Redis 8.0): plain
	// writes with field TTLs then send HSET and HEXPIRE (Redis 7.4).
	hsetex atomic.Int32
}

// reserve: the expiry goes in front of the envelope; the plain write sends
// it from here, the script computes its own.
func (b *hashLayout) reserve() int { return expiryLen }

func (b *hashLayout) mode() Mode      { return HashMode }
func (b *hashLayout) keyType() string { return "hash" }

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
	return b.bucketGen != nil || len(key) == len(b.prefix)+b.buckets.width
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

func (b *hashLayout) sampleCommand(key string) rueidis.Completed {
	return b.c.B().Hgetall().Key(key).Build()
}

func (b *hashLayout) sampled(res rueidis.RedisResult, now time.Time) sample {
	fields, err := res.AsStrMap()
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
//   - the value is body behind the expiry now + ttl;
//   - with native set, the field also gets a Redis TTL (HEXPIRE) just past
//     that expiry; used is 1 then, or -1 if the server refuses HEXPIRE (and
//     the bucket is cleaned as below), and 0 without native;
//   - the empty field is the bucket's cleaning marker: 4 bytes, a time at or
//     before the earliest expiry in the bucket; or, while a large bucket is
//     being cleaned chunk by chunk, 4 zero bytes, the earliest expiry seen
//     so far in this pass (4 bytes) and the HSCAN cursor. A write never
//     leaves the marker above its own session's expiry;
//   - without a field TTL, once the marker's time has passed (or with no
//     marker), the write removes the expired sessions of the bucket: all of
//     them in a bucket of up to cleanLimit, else one HSCAN chunk, resuming
//     where the last write stopped; when a pass is complete the marker is
//     the earliest expiry it saw;
//   - the bucket's TTL is made to last at least one second past the
//     session's expiry plus a sixteenth of its lifetime (at most an hour).
const luaPut = `
local exp = now + ttl
local expb = string.char(math.floor(exp / 16777216) % 256, math.floor(exp / 65536) % 256,
	math.floor(exp / 256) % 256, exp % 256)
redis.call('HSET', key, field, expb .. body)
local used = 0
if native then
	local r = redis.pcall('HEXPIRE', key, ttl + 1, 'FIELDS', 1, field)
	if type(r) == 'table' and r.err then used = -1 else used = 1 end
end
if doclean then
	local m = redis.call('HGET', key, '')
	local dueAt, low, cursor
	if m and #m >= 4 then
		local a, b, c, d = string.byte(m, 1, 4)
		dueAt = ((a * 256 + b) * 256 + c) * 256 + d
		if #m > 8 then
			a, b, c, d = string.byte(m, 5, 8)
			low = ((a * 256 + b) * 256 + c) * 256 + d
			cursor = string.sub(m, 9)
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
local keep = (ttl + 1) * 1000
keep = keep + math.min(math.floor(keep / 16), 3600000)
if redis.call('PTTL', key) < keep then
	redis.call('PEXPIRE', key, keep)
end
`

var luaPutCode = strings.NewReplacer("CLEAN_LIMIT", strconv.Itoa(cleanLimit), "CLEAN_CHUNK", strconv.Itoa(cleanChunk)).Replace(luaPut)

// writeScript stores or renews a session; one script, so that the first
// write loads it for both. KEYS[1] bucket; ARGV[1] field, ARGV[2] TTL in
// seconds, ARGV[3] "1" to set a field TTL, ARGV[4] "1" to clean, ARGV[5] the
// envelope. Without ARGV[5] it renews the expiry of a live session and
// leaves a missing or expired one alone: a renewal never resurrects a
// session. It returns {written (0 or 1), used (see luaPut)}.
var writeScript = rueidis.NewLuaScript(`
local time = redis.call('TIME')
local now = tonumber(time[1])
local key, field, ttl = KEYS[1], ARGV[1], tonumber(ARGV[2])
local native, doclean = ARGV[3] == '1', ARGV[4] == '1'
local body = ARGV[5]
if not body then
	local v = redis.call('HGET', key, field)
	if not v or #v < 4 then return {0, 0, time[1], time[2]} end
	local a, b, c, d = string.byte(v, 1, 4)
	if ((a * 256 + b) * 256 + c) * 256 + d <= now then return {0, 0, time[1], time[2]} end
	body = string.sub(v, 5)
end
` + luaPutCode + `
return {1, used, time[1], time[2]}
`)

// replaceHashScript moves a session to a new ID. KEYS[1] old bucket (or,
// with an empty old field, the boj/redistore key), KEYS[2] new bucket;
// ARGV[1] old field, ARGV[2] new field, ARGV[3] TTL in seconds,
// ARGV[4] field TTL flag, ARGV[5] clean flag, ARGV[6] envelope.
var replaceHashScript = rueidis.NewLuaScript(`
local time = redis.call('TIME')
local now = tonumber(time[1])
local key, field, ttl = KEYS[2], ARGV[2], tonumber(ARGV[3])
local native, doclean = ARGV[4] == '1', ARGV[5] == '1'
local body = ARGV[6]
` + luaPutCode + `
if ARGV[1] == '' then
	redis.call('DEL', KEYS[1])
else
	redis.call('HDEL', KEYS[1], ARGV[1])
	` + luaDropEmpty + `
end
return {1, used, time[1], time[2]}
`)

// flags returns the field TTL and clean arguments of the write scripts.
func (b *hashLayout) flags() (native, clean string) {
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

// exec runs a write script and checks its reply, learning from it whether
// the server has field TTLs and what its clock says.
func (b *hashLayout) exec(ctx context.Context, script *rueidis.Lua, keys, args []string) error {
	sent := b.clock.local()
	v, err := script.Exec(ctx, b.c, keys, args).ToArray()
	received := b.clock.local()
	if err != nil {
		return err
	}
	if len(v) != 4 {
		return fmt.Errorf("write script returned %d values", len(v))
	}
	switch used, _ := v[1].AsInt64(); used {
	case 1:
		b.native.Store(1)
	case -1:
		b.native.Store(-1)
	}
	sec, err1 := v[2].AsInt64()
	usec, err2 := v[3].AsInt64()
	if err1 == nil && err2 == nil {
		b.clock.observe(time.Unix(sec, usec*1000), sent, received)
	}
	return nil
}

// save writes a session. When the store knows the server's clock and the
// bucket needs no cleaning (its marker, read with the session, lies in the
// future; or Redis expires fields itself), the write is plain commands in one
// MULTI/EXEC, several times cheaper for Redis than the script; otherwise, and
// for new sessions, the script writes and cleans. A write that would put
// this session's expiry below where it was goes through the script too, in
// a bucket with a marker: the marker may have to come down with it, which
// only the script can do atomically.
func (b *hashLayout) save(ctx context.Context, loc location, value []byte, ttl int64, prev stored) error {
	if now, ok := b.clock.now(); ok && b.plain.Load() >= 0 && prev.found {
		native := b.fieldTTL != FieldTTLOff && b.native.Load() == 1
		exp := now.Unix() + ttl
		lowers := prev.due >= 0 && exp < prev.expiry
		if !lowers && (native || (prev.due > now.Unix() && !b.noClean)) {
			hsetex := native && b.hsetex.Load() >= 0
			err := b.plainWrite(ctx, loc, value, exp, ttl, native, hsetex)
			if err == nil || !isSyntaxError(err) {
				return err
			}
			if hsetex {
				b.hsetex.Store(-1) // Redis 7.4: HSET and HEXPIRE
				if err = b.plainWrite(ctx, loc, value, exp, ttl, native, false); err == nil || !isSyntaxError(err) {
					return err
				}
			}
			b.plain.Store(-1) // an old server: use the script from now on
		}
	}
	native, clean := b.flags()
	return b.exec(ctx, writeScript, []string{loc.key}, []string{loc.field, itoa(ttl), native, clean, bytesToString(value[expiryLen:])})
}

// slack is how much longer than its sessions a bucket's TTL is made to last:
// a sixteenth of their lifetime, at most an hour, so that the script, which
// extends the TTL only when it falls short, seldom has to.
func slack(ttl int64) int64 { return min((ttl+1)/16, 3600) }

// plainWrite is the MULTI/EXEC form of luaPut for a session that was just
// read from a bucket that needs no cleaning, with the expiry exp computed
// from the store's estimate of the server's clock. The bucket's deadline is
// set in absolute time from the same exp, so that it is at least one
// second past the session's expiry whatever the estimate's error: PEXPIREAT
// NX for a bucket that has no TTL (deleted meanwhile, and created again by
// the HSET), GT to push it out. With native, the field gets its TTL too, a
// second past the expiry as the script gives it (exp is at most
// maxClockUncertainty ahead of the server's clock, so the field still
// outlives it): in the same command with hsetex (HSETEX, Redis 8.0), else
// with HEXPIRE (7.4). Then the bucket needs no TTL of its own: Redis removes
// it with its last field. So a native write leaves out the NX, and a bucket
// it creates has none; GT still pushes out a TTL that another write set (a
// FieldTTLOff application server's, in a mixed fleet).
func (b *hashLayout) plainWrite(ctx context.Context, loc location, value []byte, exp, ttl int64, native, hsetex bool) error {
	binary.BigEndian.PutUint32(value[:expiryLen], uint32(exp))
	until := (exp + 1 + slack(ttl)) * 1000
	cmds := make(rueidis.Commands, 0, 6)
	cmds = append(cmds, b.c.B().Multi().Build())
	switch {
	case hsetex:
		cmds = append(cmds, b.c.B().Hsetex().Key(loc.key).Ex(ttl+1).Fields().Numfields(1).FieldValue().FieldValue(loc.field, bytesToString(value)).Build())
	case native:
		cmds = append(cmds,
			b.c.B().Hset().Key(loc.key).FieldValue().FieldValue(loc.field, bytesToString(value)).Build(),
			b.c.B().Hexpire().Key(loc.key).Seconds(ttl+1).Fields().Numfields(1).Field(loc.field).Build())
	default:
		cmds = append(cmds, b.c.B().Hset().Key(loc.key).FieldValue().FieldValue(loc.field, bytesToString(value)).Build())
	}
	if !native {
		cmds = append(cmds, b.c.B().Pexpireat().Key(loc.key).MillisecondsTimestamp(until).Nx().Build())
	}
	cmds = append(cmds,
		b.c.B().Pexpireat().Key(loc.key).MillisecondsTimestamp(until).Gt().Build(),
		b.c.B().Exec().Build())
	for _, r := range b.c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return err
		}
	}
	return nil
}

// isSyntaxError reports a reply saying the server does not know a command
// or an option (an older Redis), as opposed to a failure to run it.
func isSyntaxError(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	if !ok {
		return false
	}
	msg := strings.TrimPrefix(re.Error(), "ERR ")
	for _, p := range []string{"EXECABORT", "unknown command", "Unsupported option", "syntax error", "wrong number of arguments"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func (b *hashLayout) touch(ctx context.Context, loc location, ttl int64) error {
	native, clean := b.flags()
	return b.exec(ctx, writeScript, []string{loc.key}, []string{loc.field, itoa(ttl), native, clean})
}

func (b *hashLayout) replace(ctx context.Context, old, loc location, value []byte, ttl int64) error {
	if b.c.Mode() == rueidis.ClientModeCluster {
		return replaceInSteps(ctx, b, old, loc, value, ttl)
	}
	native, clean := b.flags()
	return b.exec(ctx, replaceHashScript, []string{old.key, loc.key},
		[]string{old.field, loc.field, itoa(ttl), native, clean, bytesToString(value[expiryLen:])})
}

func (b *hashLayout) load(ctx context.Context, loc location) (stored, error) {
	res, now := readWithClock(ctx, b.c, b.clock, b.c.B().Hmget().Key(loc.key).Field(loc.field, "").Build())
	reply, err := res.ToArray()
	if err != nil {
		return stored{}, err
	}
	if len(reply) != 2 {
		return stored{}, fmt.Errorf("HMGET returned %d values", len(reply))
	}
	st := stored{due: -1}
	if m, err := reply[1].ToString(); err == nil && len(m) >= expiryLen {
		st.due = expiryOf(m).Unix() // 0 while a chunked cleaning pass runs
	}
	v, err := reply[0].ToString()
	if err != nil {
		if reply[0].IsNil() {
			return st, nil
		}
		return stored{}, err
	}
	if len(v) < expiryLen {
		return stored{}, fmt.Errorf("%w: %d-byte hash value has no expiry", ErrCorrupt, len(v))
	}
	exp := expiryOf(v)
	st.expiry, st.left = exp.Unix(), exp.Sub(now)
	if st.left <= 0 {
		return st, nil
	}
	st.envelope, st.found = v[expiryLen:], true
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

func (b *hashLayout) remove(ctx context.Context, loc location) error {
	return removeScript.Exec(ctx, b.c, []string{loc.key}, []string{loc.field}).Error()
}
