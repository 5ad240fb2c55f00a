package redistore

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/redisession/redistore/internal/strbytes"
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
	clock  *serverClock     // the server's clock, learned by reads
	// cas is what the server said about compare-and-set for strings
	// (string_cas.go): 0 not asked yet, 1 it has it, -1 it has not.
	cas atomic.Int32
	// noCAS keeps to the scripts, for the tests and benchmarks that
	// compare the two.
	noCAS bool
}

func (b *stringLayout) mode() Mode { return StringMode }

// serverExpiry: the expiry in front of a value is by this machine's clock.
func (b *stringLayout) serverExpiry() bool { return false }
func (b *stringLayout) keyType() string    { return "string" }

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
	return b.keyGen != nil && !isIndexKey(key, b.prefix) || len(key) == len(b.prefix)+idBytes
}

func (b *stringLayout) reserve() int { return expiryLen }

// load reads a session, and the server's clock now and then (which the
// user index's deadlines are in; Redis's TTL decides when the session ends).
func (b *stringLayout) load(ctx context.Context, loc location) (stored, error) {
	if b.cas.Load() == 0 && !b.noCAS {
		return b.loadAsking(ctx, loc)
	}
	res, now, _ := readWithClock(ctx, b.c, b.clock, b.c.B().Get().Key(loc.key).Build())
	return b.loaded(res, now)
}

// loadAsking is load, asking the server in the same round trip whether it
// has compare-and-set (see hasCAS) and what its clock says: the first load
// of a store, so that no write waits for the question.
func (b *stringLayout) loadAsking(ctx context.Context, loc location) (stored, error) {
	sent := b.clock.local()
	res := b.c.DoMulti(ctx, b.c.B().Get().Key(loc.key).Build(),
		b.c.B().Arbitrary("DELIFEQ").Keys(loc.key).Args(casProbe).Build(), b.c.B().Time().Build())
	received := b.clock.local()
	b.learnCAS(res[1].Error())
	var now time.Time
	if server, err := serverTime(res[2]); err == nil {
		b.clock.observe(server, sent, received)
		rtt := max(received-sent, 0)
		now = server.Add(rtt - rtt/2)
	}
	return b.loaded(res[0], now)
}

// loaded reads the reply of a load.
func (b *stringLayout) loaded(res rueidis.RedisResult, now time.Time) (stored, error) {
	v, err := res.ToString()
	if err != nil {
		if rueidis.IsRedisNil(err) {
			return stored{}, nil
		}
		return stored{}, err
	}
	if len(v) < expiryLen {
		return stored{}, fmt.Errorf("%w: %d-byte value has no expiry", ErrCorrupt, len(v))
	}
	st := b.stored(v)
	st.server, st.local = now, b.clock.local()
	return st, nil
}

// stored describes a stored value. Redis holds the key, so the session is
// alive, whatever a clock a second off says.
func (b *stringLayout) stored(v string) stored {
	exp := expiryOf(v)
	return stored{raw: v, envelope: v[expiryLen:], left: max(exp.Sub(b.now()), 0), found: true, expiry: exp.Unix()}
}

// putExpiry writes the expiry of a session saved now for ttl seconds into
// the first 4 bytes of value, rounding down to the second as HashMode does,
// and returns it.
func (b *stringLayout) putExpiry(value []byte, ttl int64) int64 {
	exp := b.now().Unix() + ttl
	putExpiry(value, exp)
	return exp
}

// casStringScript is the conditional write of a session a request holds
// and its conditional delete: KEYS[1] key, ARGV[1] the expected value;
// ARGV[2] TTL in seconds and ARGV[3] the new value (with KEYS[2..3] and
// ARGV[4..8] the index step), or no ARGV[2] to delete. It returns {1}
// done, {0} gone, or {2, stored value}.
var casStringScript = rueidis.NewLuaScript(`
local v = redis.call('GET', KEYS[1])
if not v then return {0} end
if v ~= ARGV[1] then return {2, v} end
if ARGV[2] then
` + luaCheckHashes(2, "") + luaIndexAdd(2, 4) + `
	redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[2])
` + luaIndexDrop(2, 4) + `
else
	redis.call('DEL', KEYS[1])
end
return {1}
`)

// answer reads what casStringScript, touchStringScript and
// replaceStringScript return.
func (b *stringLayout) answer(res rueidis.RedisResult) error {
	v, err := res.ToArray()
	if err != nil {
		return err
	}
	if len(v) == 0 {
		return fmt.Errorf("script returned nothing")
	}
	switch status, _ := v[0].AsInt64(); status {
	case 0:
		return ErrEnded
	case 2:
		if len(v) == 2 {
			if cur, err := v[1].ToString(); err == nil && len(cur) >= expiryLen {
				return &conflict{current: b.stored(cur)}
			}
		}
		return fmt.Errorf("script answered a conflict without the stored value")
	}
	return nil
}

// newStringScript writes a new session with an index step: KEYS[1] key,
// ARGV[1] TTL in seconds, ARGV[2] value; KEYS[2..3] and ARGV[3..7] the index
// step (luaIndexAdd, luaIndexDrop).
var newStringScript = rueidis.NewLuaScript(luaCheckHashes(2, "") + luaIndexAdd(2, 3) + `
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[1])
` + luaIndexDrop(2, 3) + `
return {1}
`)

func (b *stringLayout) save(ctx context.Context, loc location, value []byte, ttl int64, prev stored, ix *indexOp) (int64, error) {
	exp := b.putExpiry(value, ttl)
	switch {
	case !prev.found && ix == nil:
		return exp, b.c.Do(ctx, b.c.B().Set().Key(loc.key).Value(strbytes.String(value)).ExSeconds(ttl).Build()).Error()
	case !prev.found:
		return exp, b.answer(newStringScript.Exec(ctx, b.c, ix.keys(loc.key), ix.args(itoa(ttl), strbytes.String(value))))
	case ix == nil:
		if cas, err := b.hasCAS(ctx, loc.key); cas || err != nil {
			if err != nil {
				return exp, err
			}
			return exp, b.casSet(ctx, loc.key, strbytes.String(value), ttl, prev.raw)
		}
	}
	return exp, b.answer(casStringScript.Exec(ctx, b.c, ix.keys(loc.key), ix.args(prev.raw, itoa(ttl), strbytes.String(value))))
}

// createStringScript writes a new session only if none lives there:
// KEYS[1] key, ARGV[1] TTL in seconds, ARGV[2] value. It answers as
// casStringScript.
var createStringScript = rueidis.NewLuaScript(`
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[1]) then return {1} end
local v = redis.call('GET', KEYS[1])
if not v then return {0} end
return {2, v}
`)

func (b *stringLayout) create(ctx context.Context, loc location, value []byte, ttl int64) (int64, error) {
	exp := b.putExpiry(value, ttl)
	if cas, err := b.hasCAS(ctx, loc.key); cas || err != nil {
		if err != nil {
			return exp, err
		}
		return exp, b.casCreate(ctx, loc.key, strbytes.String(value), ttl)
	}
	return exp, b.answer(createStringScript.Exec(ctx, b.c, []string{loc.key}, []string{itoa(ttl), strbytes.String(value)}))
}

func (b *stringLayout) removeIf(ctx context.Context, loc location, prev stored) error {
	if cas, err := b.hasCAS(ctx, loc.key); cas || err != nil {
		if err != nil {
			return err
		}
		return b.casDelete(ctx, loc.key, prev.raw)
	}
	return b.answer(casStringScript.Exec(ctx, b.c, []string{loc.key}, []string{prev.raw}))
}

// touchStringScript renews a live session if it is still the expected
// value: KEYS[1] key, ARGV[1] TTL in seconds, ARGV[2] the new 4-byte
// expiry, ARGV[3] the expected value. A missing key stays missing. It
// answers as casStringScript.
var touchStringScript = rueidis.NewLuaScript(`
local v = redis.call('GET', KEYS[1])
if not v then return {0} end
if v ~= ARGV[3] then return {2, v} end
redis.call('SETRANGE', KEYS[1], 0, ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return {1}
`)

func (b *stringLayout) touch(ctx context.Context, loc location, ttl int64, prev stored) (int64, error) {
	var e [expiryLen]byte
	exp := b.putExpiry(e[:], ttl)
	if cas, err := b.hasCAS(ctx, loc.key); cas || err != nil {
		if err != nil {
			return exp, err
		}
		return exp, b.casSet(ctx, loc.key, string(e[:])+prev.raw[expiryLen:], ttl, prev.raw)
	}
	return exp, b.answer(touchStringScript.Exec(ctx, b.c, []string{loc.key}, []string{itoa(ttl), string(e[:]), prev.raw}))
}

func (b *stringLayout) remove(ctx context.Context, loc location) error {
	return b.c.Do(ctx, b.c.B().Unlink().Key(loc.key).Build()).Error()
}

// replaceStringScript: KEYS[1] old key, KEYS[2] new key, ARGV[1] TTL in
// seconds, ARGV[2] value, ARGV[3] the old key's expected value, or an empty string to
// move it whatever it holds; KEYS[3..4] and ARGV[4..8] the index step
// (luaIndexAdd, luaIndexDrop), when set. It answers as casStringScript.
var replaceStringScript = rueidis.NewLuaScript(`
if ARGV[3] ~= '' then
	local v = redis.call('GET', KEYS[1])
	if not v then return {0} end
	if v ~= ARGV[3] then return {2, v} end
end
` + luaCheckHashes(3, "") + luaIndexAdd(3, 4) + `
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[1])
redis.call('DEL', KEYS[1])
` + luaIndexDrop(3, 4) + `
return {1}
`)

func (b *stringLayout) replace(ctx context.Context, old, loc location, value []byte, ttl int64, prevOld stored, ix *indexOp) (int64, error) {
	steps := b.c.Mode() == rueidis.ClientModeCluster
	if !steps && ix == nil {
		var err error
		if steps, err = b.hasCAS(ctx, loc.key); err != nil {
			return 0, err
		}
	}
	if steps {
		return replaceInSteps(ctx, b, old, loc, value, ttl, prevOld)
	}
	exp := b.putExpiry(value, ttl)
	expect := ""
	if prevOld.found {
		expect = prevOld.raw
	}
	return exp, b.answer(replaceStringScript.Exec(ctx, b.c, ix.keys(old.key, loc.key), ix.args(itoa(ttl), strbytes.String(value), expect)))
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

// sampleHead is how much of a sampled value Stats reads: the expiry and
// the envelope's header, enough to tell the compressor and the sealing key.
const sampleHead = 80

// sampleCommands answer a sampled key's length and its first bytes.
func (b *stringLayout) sampleCommands(key string) rueidis.Commands {
	return rueidis.Commands{b.c.B().Strlen().Key(key).Build(), b.c.B().Getrange().Key(key).Start(0).End(sampleHead - 1).Build()}
}

// sampled: StringMode values are never kept past their expiry.
func (b *stringLayout) sampled(res []rueidis.RedisResult, _ time.Time) sample {
	n, err := res[0].AsInt64()
	if err != nil || n == 0 {
		return sample{} // gone since it was counted, or of another type
	}
	head, _ := res[1].ToString()
	return sample{sessions: 1, valueBytes: []int{int(n)}, heads: []string{head}}
}

func (b *stringLayout) expiresItself() bool { return true }

func (b *stringLayout) sweepKey(context.Context, string) (int, int, bool, error) {
	return 0, 0, true, nil
}

func (b *stringLayout) sweepContext(ctx context.Context) context.Context { return ctx }
