package redistore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/redisession/redistore/internal/device"
	"github.com/redisession/redistore/internal/envelope"
)

// RekeyStats reports what a Rekey did.
type RekeyStats struct {
	// Keys counts the store's keys visited (buckets in HashMode), Sessions
	// the sessions read in them.
	Keys, Sessions int
	// Resealed counts the sessions Rekey sealed with the first key (stored
	// in clear before, or sealed by another key of the ring), or, with
	// Config.WriteUnsealed, wrote in clear; Current those stored so
	// already, or rewritten by a request meanwhile.
	Resealed, Current int
	// Expired counts, of the sessions read, those past their expiry that
	// HashMode keeps until a write into their bucket or Sweep removes them:
	// they are re-sealed too, so that nothing is left in clear.
	Expired int
	// Busy counts the sessions that changed between Rekey's read and its
	// write on every attempt: they are left as they were, and a run again
	// re-seals them. (Renewals, which rewrite only the expiry in front,
	// do not make a session busy.)
	Busy int
	// Devices counts the devices in users' indexes (Config.UserKey) that
	// Rekey sealed with the first key, or, with WriteUnsealed, wrote in
	// clear: an index entry holds the User-Agent and address of the
	// request that signed its session in.
	Devices int
	// Unreadable counts values that open with no key of the ring (sealed by
	// a key that left it, tampered with, or not a session at all): left as
	// they are, and counted so that an operator can decide.
	Unreadable int
	// Duration is how long the pass took.
	Duration time.Duration
}

// String summarizes the stats on one line.
func (st RekeyStats) String() string {
	return fmt.Sprintf("%s in %s: %d re-sealed, %d sealed by the first key already, %d expired, %d unreadable, %d busy; %s re-sealed; in %v",
		plural(st.Sessions, "session"), plural(st.Keys, "key"), st.Resealed, st.Current, st.Expired, st.Unreadable, st.Busy, plural(st.Devices, "device"), st.Duration.Round(time.Millisecond))
}

// ErrNoEncryptionKeys: Rekey was called on a store without
// Config.EncryptionKeys.
var ErrNoEncryptionKeys = errors.New("redistore: Config.EncryptionKeys is not set: there is no key to seal sessions with")

// rekeyAttempts bounds how often Rekey reads a session again that a request
// changed while it re-sealed it: a request that writes it seals it itself,
// with its store's first key, which is usually the end of it.
const rekeyAttempts = 3

// Rekey re-seals every session under the prefix with the first of
// Config.EncryptionKeys: sessions stored in clear, and sessions sealed by
// another key of the ring. Afterwards, once the applications run with the
// same first key, the other keys can leave the ring. With
// Config.WriteUnsealed it does the opposite: every sealed session is
// written in clear, after which the keys can go. It walks the keys with
// SCAN on every primary, in the background of normal traffic: each session
// is replaced only if it is still as Rekey read it (a conditional write in
// one step on the server, which keeps the key's TTL, and a session's field
// TTL in HashMode), so no request's change is lost; a session a request
// changed meanwhile is read again. Values that open with no key of the ring
// are left as they are and counted (Unreadable). progress, when not nil, is
// called after each batch of keys with the figures so far. Rekey can be
// canceled with ctx and run again: what it did stays done.
func (s *Store) Rekey(ctx context.Context, progress func(RekeyStats)) (RekeyStats, error) {
	start := time.Now()
	var st RekeyStats
	if s.ring == nil {
		return st, ErrNoEncryptionKeys
	}
	err := ScanBuckets()(ctx, s.bounded(), s.prefix, func(keys []string) error {
		if err := s.rekeyBatch(ctx, keys, &st); err != nil {
			return err
		}
		if progress != nil {
			st.Duration = time.Since(start)
			progress(st)
		}
		return ctx.Err()
	})
	st.Duration = time.Since(start)
	if err != nil && ctx.Err() != nil {
		return st, ctx.Err()
	}
	if err != nil {
		return st, redisError("re-sealing sessions", err)
	}
	return st, nil
}

// rekeyValue is one session Rekey read.
type rekeyValue struct {
	loc location
	raw string
}

// rekeyBatch re-seals the sessions of the store's keys among keys.
func (s *Store) rekeyBatch(ctx context.Context, keys []string, st *RekeyStats) error {
	hash := s.layout.keyType() == "hash"
	var owned []string
	cmds := make(rueidis.Commands, 0, len(keys))
	for _, k := range keys {
		if s.IsIndexKey(k) {
			if err := s.rekeyIndex(ctx, k, st); err != nil {
				return err
			}
			continue
		}
		if !s.OwnsKey(k) {
			continue
		}
		owned = append(owned, k)
		if hash {
			cmds = append(cmds, s.client.B().Hgetall().Key(k).Build())
		} else {
			cmds = append(cmds, s.client.B().Get().Key(k).Build())
		}
	}
	if len(cmds) == 0 {
		return nil
	}
	cctx, cancel := s.callContext(ctx)
	defer cancel()
	var now time.Time
	if hash {
		// HashMode values can outlive their expiry: the server's clock says.
		// (A command of its own: Redis Cluster routes no keyless command
		// in a batch.)
		var err error
		if now, err = serverTime(s.client.Do(cctx, s.client.B().Time().Build())); err != nil {
			return err
		}
	}
	res := s.client.DoMulti(cctx, cmds...)
	var values []rekeyValue
	for i, r := range res {
		st.Keys++
		if hash {
			fields, err := r.AsStrMap()
			if rueidis.IsRedisNil(err) {
				continue
			}
			if isWrongType(err) {
				st.Unreadable++ // not a session: left as it is
				continue
			}
			if err != nil {
				return err
			}
			for f, v := range fields {
				if f != "" {
					values = append(values, rekeyValue{location{key: owned[i], field: f}, v})
				}
			}
			continue
		}
		v, err := r.ToString()
		if rueidis.IsRedisNil(err) {
			continue // gone since SCAN found it
		}
		if isWrongType(err) {
			st.Unreadable++
			continue
		}
		if err != nil {
			return err
		}
		values = append(values, rekeyValue{location{key: owned[i]}, v})
	}
	for _, v := range values {
		st.Sessions++
		if hash && len(v.raw) >= expiryLen && !expiryOf(v.raw).After(now) {
			st.Expired++
		}
		if err := s.rekeyOne(ctx, v, st); err != nil {
			return err
		}
	}
	return nil
}

// rekeyOne re-seals one session if it needs it, reading it again when a
// request changed it meanwhile.
func (s *Store) rekeyOne(ctx context.Context, v rekeyValue, st *RekeyStats) error {
	for attempt := 1; ; attempt++ {
		next, needed, err := s.resealed(v)
		switch {
		case err != nil:
			st.Unreadable++
			return nil
		case !needed:
			st.Current++
			return nil
		}
		cctx, cancel := s.callContext(ctx)
		swapped, err := s.swapIfSame(cctx, v, next, expiryLen)
		cancel()
		if err != nil {
			return err
		}
		if swapped {
			st.Resealed++
			return nil
		}
		if attempt == rekeyAttempts {
			st.Busy++ // still changing: left for a run again
			return nil
		}
		cctx, cancel = s.callContext(ctx)
		var got stored
		got, err = s.layout.load(cctx, v.loc)
		cancel()
		if isWrongType(err) {
			st.Unreadable++
			return nil
		}
		if err != nil {
			return err
		}
		if !got.found {
			return nil // ended meanwhile: nothing to re-seal
		}
		v.raw = got.raw
	}
}

// resealed returns the session's stored value sealed with the first key,
// and whether it differs from what is stored (in clear, or sealed by
// another key). A value that does not open is an error.
func (s *Store) resealed(v rekeyValue) (string, bool, error) {
	if len(v.raw) < expiryLen {
		return "", false, fmt.Errorf("%w: %d-byte value has no expiry", ErrCorrupt, len(v.raw))
	}
	ad := sealedAt(v.loc)
	clear, by, err := envelope.Unseal(v.raw[expiryLen:], s.sealer, ad)
	if err != nil {
		return "", false, envelopeError(err)
	}
	if s.writeClear {
		if by < 0 {
			return "", false, nil
		}
		return v.raw[:expiryLen] + string(clear), true, nil
	}
	if by == 0 {
		return "", false, nil
	}
	if by < 0 {
		// In clear: check it is an envelope this store reads before sealing
		// it, so that garbage is counted, not sealed.
		if _, err := envelope.ReadHeader(v.raw[expiryLen:]); err != nil {
			return "", false, envelopeError(err)
		}
	}
	out := append(make([]byte, 0, len(v.raw)+64), v.raw[:expiryLen]...)
	out, err = envelope.Seal(out, clear, s.sealer, ad)
	if err != nil {
		return "", false, envelopeError(err)
	}
	return string(out), true, nil
}

// rekeyHashScript replaces a field's value if it is still ARGV[2] past its
// first ARGV[4] bytes (a session's expiry, which a renewal rewrites: the
// current one is kept), keeping the field's TTL where the server has them
// (HSET drops it): to the millisecond with HPEXPIRE, to the second above
// where the server has only HEXPIRE (miniredis); KEYS[1] the bucket (or an
// index), ARGV[1] the field, ARGV[3] the new value. It answers 1 when it
// replaced it.
var rekeyHashScript = rueidis.NewLuaScript(`
local n = tonumber(ARGV[4])
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur or string.sub(cur, n + 1) ~= string.sub(ARGV[2], n + 1) or #cur < n then return 0 end
local ttl = redis.pcall('HPTTL', KEYS[1], 'FIELDS', 1, ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], string.sub(cur, 1, n) .. string.sub(ARGV[3], n + 1))
if type(ttl) == 'table' and type(ttl[1]) == 'number' and ttl[1] > 0 then
	local set = redis.pcall('HPEXPIRE', KEYS[1], ttl[1], 'FIELDS', 1, ARGV[1])
	if type(set) == 'table' and set.err then
		redis.call('HEXPIRE', KEYS[1], math.ceil(ttl[1] / 1000), 'FIELDS', 1, ARGV[1])
	end
end
return 1
`)

// rekeyStringScript replaces a key's value if it is still ARGV[1] past its
// first ARGV[3] bytes (the expiry, kept as it is now), keeping its TTL:
// ARGV[2] the new value. It answers 1 when it replaced it.
var rekeyStringScript = rueidis.NewLuaScript(`
local n = tonumber(ARGV[3])
local cur = redis.call('GET', KEYS[1])
if not cur or string.sub(cur, n + 1) ~= string.sub(ARGV[1], n + 1) or #cur < n then return 0 end
redis.call('SET', KEYS[1], string.sub(cur, 1, n) .. string.sub(ARGV[2], n + 1), 'KEEPTTL')
return 1
`)

// swapIfSame replaces what is stored at v.loc with next if it is still
// v.raw past its first keep bytes (a session's expiry, which renewals
// rewrite: kept as it is now), in one step on the server; swapped reports
// that it did. On a server that runs no scripts, StringMode uses
// compare-and-set where the server has it (Valkey 8.1+), on the whole
// value.
func (s *Store) swapIfSame(ctx context.Context, v rekeyValue, next string, keep int) (swapped bool, err error) {
	k := strconv.Itoa(keep)
	if v.loc.field != "" {
		n, err := rekeyHashScript.Exec(ctx, s.client, []string{v.loc.key}, []string{v.loc.field, v.raw, next, k}).AsInt64()
		return n == 1, err
	}
	sl, _ := s.layout.(*stringLayout)
	if sl == nil || !s.rekeyNoLua.Load() {
		n, err := rekeyStringScript.Exec(ctx, s.client, []string{v.loc.key}, []string{v.raw, next, k}).AsInt64()
		if re, ok := rueidis.IsRedisErr(err); !ok || !refusesScripts(re.Error()) || sl == nil {
			return n == 1, err
		}
		if cas, cerr := sl.hasCAS(ctx, v.loc.key); cerr != nil || !cas {
			return false, cmp.Or(cerr, err)
		}
		s.rekeyNoLua.Store(true)
	}
	err = s.client.Do(ctx, s.client.B().Arbitrary("SET").Keys(v.loc.key).Args(next, "IFEQ", v.raw, "KEEPTTL").Build()).Error()
	if rueidis.IsRedisNil(err) {
		return false, nil
	}
	return err == nil, err
}

// isWrongType reports whether Redis refused a command for the key's type:
// the key holds something that is not a session.
func isWrongType(err error) bool {
	return errors.Is(redisError("", err), ErrCorrupt)
}

// rekeyIndex re-seals the devices of a user's index (see devices.go) as
// resealed does sessions, each entry replaced only if it is still as read.
func (s *Store) rekeyIndex(ctx context.Context, key string, st *RekeyStats) error {
	cctx, cancel := s.callContext(ctx)
	fields, err := s.client.Do(cctx, s.client.B().Hgetall().Key(key).Build()).AsStrMap()
	cancel()
	if isWrongType(err) {
		return nil // not an index: left alone, as Stats leaves it
	}
	if err != nil {
		return err
	}
	for f, v := range fields {
		if f == indexCursor {
			continue
		}
		next, ok, err := s.resealedEntry(v, key)
		if err != nil {
			st.Unreadable++ // a device no key of the ring opens: left
			continue
		}
		if !ok {
			continue
		}
		cctx, cancel := s.callContext(ctx)
		swapped, err := s.swapIfSame(cctx, rekeyValue{location{key: key, field: f}, v}, next, 0)
		cancel()
		if err != nil {
			return err
		}
		if swapped {
			st.Devices++
		}
		// Changed meanwhile: the write that changed it wrote its device
		// as its store does.
	}
	return nil
}

// resealedEntry returns an index entry's value with its device sealed with
// the first key (or, with WriteUnsealed, in clear), and whether that
// differs from value. A device that does not open is left.
func (s *Store) resealedEntry(value, indexKey string) (string, bool, error) {
	numbers, dev := splitEntry(value)
	if dev == "" {
		return "", false, nil // no device
	}
	sealed := dev[0] == deviceSealed
	if sealed && !s.writeClear && s.ring.KeyOf([]byte(dev[1:])) == 0 {
		return "", false, nil // sealed by the first key already
	}
	if !sealed && s.writeClear {
		return "", false, nil
	}
	ua, ip, err := s.openDevice(dev, indexKey)
	if err != nil {
		return "", false, err
	}
	enc := device.Encode(ua, ip)
	if enc == "" {
		return numbers, true, nil
	}
	return numbers + "," + s.sealDevice(enc, indexKey), true, nil
}
