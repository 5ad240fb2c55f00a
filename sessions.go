package redistore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/redis/rueidis"
	"github.com/redisession/redistore/internal/envelope"
)

// Sessions walks every session of the store, in bounded memory: SCAN MATCH
// on the key prefix, on every primary of a Redis Cluster, a chunk at a
// time; each chunk's sessions read in pipelined round trips (HashMode
// buckets whole, with HGETALL, or with HSCAN past 1024 sessions). Each call
// is bounded by Config.Timeout. Sessions still in boj/redistore's keys
// (Config.Legacy) are not walked.
//
// It yields every live session: with its Handle, its User (with
// Config.UserKey), when it started and expires, its stored size and
// compressor, and its Values, as Lookup gives them. Key and Field are left
// empty where they would hold the session's ID (StringMode's key, HashMode's
// field): a listing names sessions by their handles. Expired sessions
// (HashMode keeps some until a write or Sweep removes them), sessions past
// MaxLifetime, user index keys and keys that are not the layout's
// (OwnsKey) are skipped. A session whose value does not decode is yielded
// with its error, with what could be learned of it, and the walk goes on. A
// Redis failure is yielded as a zero SessionInfo and that error, and ends
// the walk. Breaking out of the loop stops it: no call is sent after.
//
// A session that lives throughout the walk is yielded once. In HashMode
// with the default key generators each bucket is read once, whatever SCAN
// repeats (a bitmap of the buckets read, Buckets/8 bytes). Elsewhere SCAN
// may list a key again after Redis shrinks its key table (many keys deleted
// or expired during the walk), so Sessions remembers the keys of its last
// four replies: that covers a table that shrinks up to about four times the
// SCAN count, not more (a mass logout of most of a million sessions during
// the walk can make it yield one twice). A Redis Cluster slot that moves to
// another node during the walk is outside these guarantees: its sessions
// may be missed, or (but for HashMode's default generators) come twice. A
// session written or ended during the walk may or may not be yielded; one
// given a new ID (RegenerateID) is to the walk one that ended and one that
// began, and may be yielded under either ID, both or neither.
func (s *Store) Sessions(ctx context.Context) iter.Seq2[SessionInfo, error] {
	return func(yield func(SessionInfo, error) bool) {
		start := s.began()
		n := 0
		err := s.walkSessions(ctx, func(f foundSession) error {
			info, live, err := s.sessionAt(f)
			if !live {
				return nil
			}
			n++
			if !yield(info, err) {
				return errStopWalk
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStopWalk) {
			yield(SessionInfo{}, err)
		} else {
			err = nil
		}
		s.observe(ctx, OpSessions, start, opInfo{outcome: OutcomeDone}, err, func(e *Event) { e.Sessions = n })
	}
}

// DeleteSessions ends every live session that pick picks (see Sessions for
// what it is given) and returns how many it ended. It ends each only if it
// is still as pick saw it; a session changed since it was read (another
// request saved it) is read again and given to pick again, so that a
// session rewritten into one pick would not pick is left. Once it returns,
// no session it ended opens anything, and a request that had loaded one
// cannot save it back (ErrEnded); their entries leave the user index
// (with a custom KeyGenerator, which the ID cannot be read back from, the
// entries stay until UserSessions or DeleteUserSessions drops them).
// Sessions whose values do not decode are left, never given to pick, and
// reported in the error, as are the sessions it could not end; a Redis
// failure ends the walk, and what was ended before it is counted.
//
// A session given a new ID while a walk runs (RegenerateID, a login in
// another tab) is, to the walk, one that ended and one that began: the walk
// may have passed its new place already. So DeleteSessions walks again
// while a pass ends anything or finds a session it picked gone when it
// comes to end it, up to deleteSessionsPasses passes, and the
// session it would miss, still signed in under its new ID, is ended by the
// next. A session created while it runs may be ended or left, as one
// created just after it would be left.
func (s *Store) DeleteSessions(ctx context.Context, pick func(SessionInfo) bool) (int, error) {
	start := s.began()
	n, err := s.deleteSessions(ctx, pick)
	s.observe(ctx, OpDeleteSessions, start, opInfo{outcome: OutcomeDone}, err, func(e *Event) { e.Sessions = n })
	return n, err
}

// deleteSessionsPasses bounds the passes of DeleteSessions (as
// deleteUserPasses bounds DeleteUserSessions').
const deleteSessionsPasses = 4

func (s *Store) deleteSessions(ctx context.Context, pick func(SessionInfo) bool) (int, error) {
	total := 0
	for pass := 1; ; pass++ {
		n, vanished, err := s.deletePass(ctx, pick)
		total += n
		if err != nil || n+vanished == 0 || pass == deleteSessionsPasses {
			return total, err
		}
	}
}

// deletePass is one walk of DeleteSessions: how many sessions it ended,
// and how many it picked that were gone when it came to end them (given a
// new ID meanwhile, perhaps, under which the walk may have passed them).
func (s *Store) deletePass(ctx context.Context, pick func(SessionInfo) bool) (n, vanished int, err error) {
	left := 0
	var first error
	err = s.walkSessions(ctx, func(f foundSession) error {
		ended, gone, err := s.endPicked(ctx, f, pick)
		if ended {
			n++
		}
		if gone {
			vanished++
		}
		if err != nil {
			if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNoScripting) {
				return err // Redis failed: the walk ends
			}
			if left++; first == nil {
				first = err
			}
		}
		return nil
	})
	if err != nil {
		return n, vanished, err
	}
	if first != nil {
		return n, vanished, fmt.Errorf("redistore: %d session(s) left, not ended; the first: %w", left, first)
	}
	return n, vanished, nil
}

// endPicked ends a session a walk found if pick picks it, as long as it is
// what pick was shown: after a change, pick is asked again about what is
// stored now. gone: it picked the session, which was gone when it came to
// end it.
func (s *Store) endPicked(ctx context.Context, f foundSession, pick func(SessionInfo) bool) (ended, gone bool, err error) {
	for attempt := 1; ; attempt++ {
		info, live, err := s.sessionAt(f)
		if !live || err != nil || !pick(info) {
			return false, false, err
		}
		if attempt > MaxMergeAttempts {
			return false, false, fmt.Errorf("%w: %d attempts to end a session that kept changing", ErrConflict, MaxMergeAttempts)
		}
		cctx, cancel := s.callContext(ctx)
		err = s.layout.removeIf(cctx, f.loc, stored{raw: f.raw, found: true})
		cancel()
		var c *conflict
		switch {
		case err == nil:
			s.dropEnded(ctx, f)
			return true, false, nil
		case errors.Is(err, ErrEnded):
			return false, true, nil // ended by someone else, or given a new ID
		case !errors.As(err, &c):
			return false, false, redisError("deleting session", err)
		}
		f.raw, f.expires = c.current.raw, time.Unix(c.current.expiry, 0)
		if !c.current.server.IsZero() {
			f.now = c.current.server
		}
	}
}

// dropEnded deletes the user index entry of a session DeleteSessions
// ended, where the session named a user and its ID is known (with custom
// key generators it is not: the entry stays until UserSessions drops it).
func (s *Store) dropEnded(ctx context.Context, f foundSession) {
	id := s.idAt(f.loc)
	if s.userKey == "" || id == "" || len(f.raw) < expiryLen {
		return
	}
	if _, owner, err := s.ownerOf(f.raw[expiryLen:], f.loc); err == nil && owner != "" {
		cctx, cancel := s.callContext(ctx)
		s.dropEntries(cctx, []indexEntry{{s.indexKeyOf(owner), rawField(id)}})
		cancel()
	}
}

// foundSession is a stored value a walk found: where, the value (expiry in
// front), the server's clock when it was read, and when the session ends.
type foundSession struct {
	loc          location
	raw          string
	now, expires time.Time
}

// errStopWalk is how a walk's visitor stops it (the consumer's break).
var errStopWalk = errors.New("redistore: walk stopped")

// sessionAt describes a session a walk found, as Lookup would; live is
// false for one that has ended (expired, past MaxLifetime).
func (s *Store) sessionAt(f foundSession) (info SessionInfo, live bool, err error) {
	if s.layout.mode() == HashMode {
		info.Key = f.loc.key // the bucket; the field is the ID
	}
	err = s.describe(&info, f.loc, f.raw, f.now, f.expires)
	if info.Expired || !info.Started.IsZero() && s.pastLifetime(envelope.Meta{Start: info.Started.Unix()}) {
		return info, false, nil
	}
	if id := s.idAt(f.loc); id != "" {
		info.Handle = handleOf(id)
	}
	if err == nil {
		info.User, _ = s.userOf(info.Values) // a user ID Save refuses names no index
	}
	return info, true, err
}

// idAt returns the ID of the session at loc, where the default key
// generators make it readable there ("" elsewhere).
func (s *Store) idAt(loc location) string {
	switch l := s.layout.(type) {
	case *hashLayout:
		if l.fieldGen == nil && len(loc.field) == idBytes {
			return hex.EncodeToString([]byte(loc.field))
		}
	case *stringLayout:
		if l.keyGen == nil && len(loc.key) == len(s.prefix)+idBytes {
			return hex.EncodeToString([]byte(loc.key[len(s.prefix):]))
		}
	}
	return ""
}

// Bounds of a walk's memory and round trips.
const (
	// sessionsChunk is how many keys a walk reads in one round trip.
	sessionsChunk = 256
	// sessionsWholeBucket is the largest bucket read whole (HGETALL), and
	// about the most sessions a round trip reads; larger buckets are read
	// with HSCAN.
	sessionsWholeBucket = 1024
	// sessionsWindow is how many SCAN replies a walk remembers the keys of,
	// to skip those SCAN lists again.
	sessionsWindow = 4
)

// walkSessions calls visit with every stored value of the store's layout
// (expired ones included), until visit returns an error, which it returns.
func (s *Store) walkSessions(ctx context.Context, visit func(foundSession) error) error {
	w := &sessionWalk{s: s, ctx: ctx, visit: visit}
	if hb, ok := s.layout.(*hashLayout); ok && hb.bucketGen == nil {
		w.buckets = &hb.buckets
		w.seen = make([]uint64, (hb.buckets.n+63)/64)
	}
	count := int64(scanCount)
	if s.walkCount > 0 {
		count = int64(s.walkCount)
	}
	err := scanKeys(count)(ctx, s.bounded(), s.prefix, w.chunk)
	if err != nil && !errors.Is(err, errStopWalk) && !errors.Is(err, ErrUnavailable) {
		err = redisError("listing sessions", err)
	}
	return err
}

// sessionWalk is one walk over the store's keys.
type sessionWalk struct {
	s     *Store
	ctx   context.Context
	visit func(foundSession) error
	// buckets and seen: with the default HashMode generators, the buckets
	// read already, one bit each.
	buckets *buckets
	seen    []uint64
	// recent holds the keys of the last SCAN replies (without buckets).
	recent [sessionsWindow]map[string]bool
	next   int
}

// chunk reads the keys of one SCAN reply that are the layout's and were
// not read already.
func (w *sessionWalk) chunk(keys []string) error {
	var fresh []string
	mine := map[string]bool{}
	for _, k := range keys {
		if isIndexKey(k, w.s.prefix) || !w.s.layout.ownsKey(k) || w.repeated(k) || mine[k] {
			continue
		}
		mine[k] = true
		fresh = append(fresh, k)
	}
	if w.buckets == nil {
		w.recent[w.next] = mine
		w.next = (w.next + 1) % sessionsWindow
	}
	for len(fresh) > 0 {
		n := min(len(fresh), sessionsChunk)
		var err error
		if w.s.layout.mode() == HashMode {
			err = w.readBuckets(fresh[:n])
		} else {
			err = w.readStrings(fresh[:n])
		}
		if err != nil {
			return err
		}
		fresh = fresh[n:]
	}
	return w.ctx.Err()
}

// repeated reports whether key was read already, and notes it read.
func (w *sessionWalk) repeated(key string) bool {
	if w.buckets == nil {
		for _, m := range w.recent {
			if m[key] {
				return true
			}
		}
		return false
	}
	i, ok := w.buckets.index(key[len(w.s.prefix):])
	if !ok {
		return true // not a bucket of these generators
	}
	if w.seen[i/64]&(1<<(i%64)) != 0 {
		return true
	}
	w.seen[i/64] |= 1 << (i % 64)
	return false
}

// readAt sends reads in one round trip, and returns their replies and the
// server's clock: read in the same pipeline, or, in Redis Cluster, which
// does not pipeline TIME with commands on keys, right after (so that a
// value that expired while the reads ran counts as expired).
func (w *sessionWalk) readAt(cmds rueidis.Commands) ([]rueidis.RedisResult, time.Time, error) {
	c := w.s.client
	ctx, cancel := w.s.callContext(w.ctx)
	defer cancel()
	var res []rueidis.RedisResult
	var clock rueidis.RedisResult
	if c.Mode() == rueidis.ClientModeCluster {
		res = c.DoMulti(ctx, cmds...)
		clock = c.Do(ctx, c.B().Time().Build())
	} else {
		res = c.DoMulti(ctx, append(cmds, c.B().Time().Build())...)
		res, clock = res[:len(cmds)], res[len(cmds)]
	}
	now, err := serverTime(clock)
	return res, now, err
}

// readStrings reads StringMode sessions: the value, its TTL, and the
// server's clock.
func (w *sessionWalk) readStrings(keys []string) error {
	c := w.s.client
	cmds := make(rueidis.Commands, 0, 2*len(keys)+1)
	for _, k := range keys {
		cmds = append(cmds, c.B().Get().Key(k).Build(), c.B().Pttl().Key(k).Build())
	}
	res, now, err := w.readAt(cmds)
	if err != nil {
		return err
	}
	for i, k := range keys {
		v, err := res[2*i].ToString()
		if err != nil {
			if _, isRedis := rueidis.IsRedisErr(err); isRedis || rueidis.IsRedisNil(err) {
				continue // gone since SCAN listed it, or not a string
			}
			return err
		}
		f := foundSession{loc: location{key: k}, raw: v, now: now}
		if ms, err := res[2*i+1].AsInt64(); err == nil && ms >= 0 {
			f.expires = now.Add(time.Duration(ms) * time.Millisecond).Truncate(time.Millisecond)
		} else if len(v) >= expiryLen {
			f.expires = expiryOf(v)
		}
		if err := w.visit(f); err != nil {
			return err
		}
	}
	return nil
}

// readBuckets reads HashMode buckets: their sizes first, then those up to
// sessionsWholeBucket whole, a round trip for about that many sessions,
// and larger ones with HSCAN.
func (w *sessionWalk) readBuckets(keys []string) error {
	c := w.s.client
	cmds := make(rueidis.Commands, 0, len(keys))
	for _, k := range keys {
		cmds = append(cmds, c.B().Hlen().Key(k).Build())
	}
	cctx, cancel := w.s.callContext(w.ctx)
	res := c.DoMulti(cctx, cmds...)
	cancel()
	var whole []string
	fields := 0
	for i, k := range keys {
		n, err := res[i].AsInt64()
		if err != nil {
			if _, isRedis := rueidis.IsRedisErr(err); isRedis {
				continue // not a hash
			}
			return err
		}
		switch {
		case n == 0:
		case n > sessionsWholeBucket:
			if err := w.scanBucket(k); err != nil {
				return err
			}
		default:
			if fields+int(n) > sessionsWholeBucket {
				if err := w.readWhole(whole); err != nil {
					return err
				}
				whole, fields = whole[:0], 0
			}
			whole = append(whole, k)
			fields += int(n)
		}
	}
	return w.readWhole(whole)
}

// readWhole reads buckets with HGETALL, each in one step, so that each of
// their sessions is read once.
func (w *sessionWalk) readWhole(keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	c := w.s.client
	cmds := make(rueidis.Commands, 0, len(keys)+1)
	for _, k := range keys {
		cmds = append(cmds, c.B().Hgetall().Key(k).Build())
	}
	res, now, err := w.readAt(cmds)
	if err != nil {
		return err
	}
	for i, k := range keys {
		m, err := res[i].AsStrMap()
		if err != nil {
			if _, isRedis := rueidis.IsRedisErr(err); isRedis {
				continue
			}
			return err
		}
		kv := make([]string, 0, 2*len(m))
		for f, v := range m {
			kv = append(kv, f, v)
		}
		if err := w.fields(k, kv, now, nil); err != nil {
			return err
		}
	}
	return nil
}

// scanBucket reads a large bucket with HSCAN, remembering its fields read
// (a bucket's worth at most) as HSCAN may list one twice.
func (w *sessionWalk) scanBucket(key string) error {
	c := w.s.client
	seen := map[string]bool{}
	cursor := uint64(0)
	for {
		res, now, err := w.readAt(rueidis.Commands{c.B().Hscan().Key(key).Cursor(cursor).Count(sessionsChunk).Build()})
		if err != nil {
			return err
		}
		e, err := res[0].AsScanEntry()
		if err != nil {
			if _, isRedis := rueidis.IsRedisErr(err); isRedis {
				return nil
			}
			return err
		}
		if err := w.fields(key, e.Elements, now, seen); err != nil {
			return err
		}
		if cursor = e.Cursor; cursor == 0 {
			return nil
		}
	}
}

// fields visits the sessions among a bucket's fields and values, skipping
// the cleaning marker, fields not shaped as the layout's, and, with seen,
// fields visited already.
func (w *sessionWalk) fields(key string, kv []string, now time.Time, seen map[string]bool) error {
	hb := w.s.layout.(*hashLayout)
	for i := 0; i+1 < len(kv); i += 2 {
		f, v := kv[i], kv[i+1]
		if f == "" || hb.fieldGen == nil && len(f) != idBytes {
			continue
		}
		if seen != nil {
			if seen[f] {
				continue
			}
			seen[f] = true
		}
		fs := foundSession{loc: location{key: key, field: f}, raw: v, now: now}
		if len(v) >= expiryLen {
			fs.expires = expiryOf(v)
		}
		if err := w.visit(fs); err != nil {
			return err
		}
	}
	return nil
}
