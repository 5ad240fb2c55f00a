package redistore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/sessions"
	"github.com/redis/rueidis"
	"github.com/redisession/redistore/internal/envelope"
)

// A user index is one Redis hash per user (Config.UserKey), under the key
// prefix followed by "user:" and 32 hexadecimal digits of the SHA-256 of the
// user's ID. Each field is the 16 raw bytes of a session ID; its value is
// "DDDDDDDDDD,AAAAAAAAAA": the Unix second (server clock) until which the
// entry is kept, and the one when it was written; then, where the request
// that signed the session in told one, "," and its device (devices.go).
// The key expires with its latest entry, so the index of a user who never
// comes back goes by itself.
//
// The index may name sessions that ended (a stale entry: UserSessions and
// DeleteUserSessions check every session they are given, and drop such
// entries), but never misses a live one: a write that signs a session in
// adds the entry in the same script, before it writes the session (in Redis
// Cluster, where the index lives on another node, in a step of its own
// before the write), and an entry is kept for twice the session's lifetime,
// renewed by the write that next finds it less than one lifetime away.
const (
	indexInfix = "user:"
	// indexSlack is added to an entry's deadline beyond twice the
	// session's lifetime, so that clocks a little off never matter.
	indexSlack = 60
	// indexGrace is how long an entry whose session is missing is kept:
	// the session may still be on its way (Redis Cluster writes the index
	// first).
	indexGrace = time.Minute
	// maxUserLength bounds a user ID.
	maxUserLength = 1024
)

// ErrNoUserIndex: a user method was called on a store without
// Config.UserKey.
var ErrNoUserIndex = errors.New("redistore: Config.UserKey is not set: the store keeps no index of users' sessions")

// UserSession describes one live session of a user, for a "your devices"
// page or an admin tool.
type UserSession struct {
	// Handle names the session without being a credential: it is safe to
	// put in a page, and DeleteUserSession takes it.
	Handle string
	// Expires is when the session ends unless it is renewed.
	Expires time.Time
	// Started is when the session began (zero for a session written before
	// UserKey or MaxLifetime was set).
	Started time.Time
	// UserAgent is the User-Agent of the request that signed the session
	// in (or switched it to this user), its first 256 bytes; "" if it had
	// none. A request from another browser with the same cookie does not
	// change it; RegenerateID keeps it.
	UserAgent string
	// IP is what Config.ClientIP answered for that request; "" without it.
	IP string
	// LastSeen is when the session was last written or renewed, by the
	// server's clock (in StringMode, as Expires, by the clock of the
	// application server that wrote it), to within Config.TouchInterval (an
	// unchanged session is renewed no more often); zero for a session last
	// written before this was recorded.
	LastSeen time.Time
}

// userOf returns the user a session's values name (Config.UserKey), ""
// for none.
func (s *Store) userOf(values map[any]any) (string, error) {
	if s.userKey == "" {
		return "", nil
	}
	v, ok := values[s.userKey]
	if !ok || v == nil {
		return "", nil
	}
	var u string
	switch x := v.(type) {
	case float64:
		// JSONSerializer reads every number back as a float64.
		if x != math.Trunc(x) || math.Abs(x) >= 1<<53 {
			return "", fmt.Errorf("redistore: Values[%q] (Config.UserKey) holds %v, not a whole number: store the user's ID as a string or an integer", s.userKey, x)
		}
		u = strconv.FormatInt(int64(x), 10)
	case json.Number:
		n, err := strconv.ParseInt(string(x), 10, 64)
		if err != nil {
			return "", fmt.Errorf("redistore: Values[%q] (Config.UserKey) holds %s, not an integer: store the user's ID as a string or an integer", s.userKey, x)
		}
		u = strconv.FormatInt(n, 10) // "007" and "+7" are the user 7
	default:
		// Strings and integers, of named types too (type UserID int64).
		switch rv := reflect.ValueOf(v); rv.Kind() {
		case reflect.String:
			u = rv.String()
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			u = strconv.FormatInt(rv.Int(), 10)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			u = strconv.FormatUint(rv.Uint(), 10)
		default:
			return "", fmt.Errorf("redistore: Values[%q] (Config.UserKey) holds a %T: store the user's ID as a string or an integer", s.userKey, v)
		}
	}
	if len(u) > maxUserLength {
		return "", fmt.Errorf("redistore: Values[%q] (Config.UserKey) holds a %d-byte user ID, over %d", s.userKey, len(u), maxUserLength)
	}
	return u, nil
}

// userDigest names a user without its ID: the first 16 bytes
// (envelope.UserDigestLen) of the SHA-256 of the ID, as the user's index
// key (in hexadecimal) and a stored session's metadata (raw) hold it.
func userDigest(user string) string {
	h := sha256.Sum256([]byte(user))
	return string(h[:envelope.UserDigestLen])
}

// indexKey returns the key of a user's index.
func (s *Store) indexKey(user string) string { return s.indexKeyOf(userDigest(user)) }

// indexKeyOf returns the key of the index of the user with this digest.
func (s *Store) indexKeyOf(digest string) string {
	return s.prefix + indexInfix + hex.EncodeToString([]byte(digest))
}

// isIndexKey reports whether key has the shape of a user index key.
func isIndexKey(key, prefix string) bool {
	rest, ok := strings.CutPrefix(key, prefix+indexInfix)
	if !ok || len(rest) != 32 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// IsIndexKey reports whether key is one of this store's user index keys
// (Config.UserKey), which OwnsKey does not count as sessions.
func (s *Store) IsIndexKey(key string) bool { return isIndexKey(key, s.prefix) }

// handleOf returns the handle of a session ID: 16 characters of URL-safe
// base64 from a SHA-256 of the ID, which names it without revealing it.
func handleOf(id string) string {
	h := sha256.Sum256([]byte("redistore handle\x00" + id))
	return base64.RawURLEncoding.EncodeToString(h[:12])
}

// Handle returns the handle of a session, as UserSessions lists it: "" for
// a session that was never saved (it has no ID yet). RegenerateID gives the
// session a new handle.
func (s *Store) Handle(session *sessions.Session) string {
	if session == nil || !ValidID(session.ID) {
		return ""
	}
	return handleOf(session.ID)
}

// indexOp is what a write does to users' indexes, in the write's script:
// before the write, add (or renew) the entry add in the index addKey, kept
// keep seconds; after it, delete the entry drop from the index dropKey. In
// Redis Cluster, where the indexes live in other slots, the add runs in a
// step of its own before the write and the drop after it (beforeWrite,
// dropEntries).
type indexOp struct {
	addKey, add   string
	keep          int64
	dropKey, drop string
	// until is the entry's deadline the session's metadata records: the
	// entry is kept until the later of that and the server's time + keep,
	// so that the metadata never promises more than the entry has, however
	// far this machine's clock is from the server's.
	until int64
	// device says what device the entry records (see devices.go): 's'
	// then the device, a sign-in's; 'k' then a device, the one the entry
	// has (none if it has none), or, where there is no entry yet, that
	// one; 'c', the 16 bytes of an entry of the same index, then a device:
	// as 'k', from that entry (a new ID).
	device string
}

// keys and args append the index arguments to a write script's: KEYS[IK]
// and KEYS[IK+1] the indexes to add to and to drop from (where a part is
// empty, its key repeats the other), ARGV[IA] the entry to add (empty:
// none), ARGV[IA+1] its seconds, ARGV[IA+2] the entry to drop (empty: none),
// ARGV[IA+3] the deadline the metadata records, ARGV[IA+4] the device the
// entry records (indexOp.device).
func (ix *indexOp) keys(keys ...string) []string {
	if ix == nil {
		return keys
	}
	add, drop := ix.addKey, ix.dropKey
	if add == "" {
		add = drop
	}
	if drop == "" {
		drop = add
	}
	return append(keys, add, drop)
}

func (ix *indexOp) args(args ...string) []string {
	if ix == nil {
		return args
	}
	return append(args, ix.add, itoa(ix.keep), ix.drop, itoa(ix.until), ix.device)
}

// indexCursor is the field of an index hash that holds where the next
// index step goes on dropping entries past their deadline (an HSCAN
// cursor); it is not an entry.
const indexCursor = ""

// luaIndexAdd is the first half of the index step of the write scripts,
// run after their checks (luaCheckHashes among them) and before their
// writes: with KEYS[IK] set it adds the entry ARGV[IA] kept ARGV[IA+1]
// seconds, or until ARGV[IA+3] if that is later, with the device ARGV[IA+4]
// says (a sign-in's, or the one the entry, or the entry of the ID it
// replaces, has: a renewal or a new ID keeps it), drops the entries past
// their deadline in one HSCAN chunk (all
// of a small hash; a large one chunk by chunk, the cursor kept in the field
// "": one that is not a cursor starts a pass again), and makes the key
// outlive the entry. luaIndexDrop, run after the write, deletes the entry
// ARGV[IA+2] from KEYS[IK+1].
func luaIndexAdd(ik, ia int) string {
	return indexReplacer(ik, ia).Replace(`
if KEYS[IK] and ARGV[IA0] ~= '' then
	local ix, t = KEYS[IK], tonumber(redis.call('TIME')[1])
	local keep = tonumber(ARGV[IA1])
	local d = math.max(t + keep, tonumber(ARGV[IA3]) or 0)
	keep = math.min(d - t, 2147483647)
	local cursor = redis.call('HGET', ix, '')
	if not cursor or #cursor > 19 or not string.match(cursor, '^%d+$') then cursor = '0' end
	local dev, blob = ARGV[IA4], ''
	local mode = string.sub(dev, 1, 1)
	if mode == 's' then
		blob = string.sub(dev, 2)
	else
		local from, given = ARGV[IA0], string.sub(dev, 2)
		if mode == 'c' then from, given = string.sub(dev, 2, 17), string.sub(dev, 18) end
		local old = redis.call('HGET', ix, from)
		if not old then blob = given elseif string.sub(old, 22, 22) == ',' then blob = string.sub(old, 23) end
	end
	if blob ~= '' then blob = ',' .. blob end
	redis.call('HSET', ix, ARGV[IA0], string.format('%010d,%010d', d, t) .. blob)
	local r = redis.call('HSCAN', ix, cursor, 'COUNT', 16)
	local kv = r[2]
	for i = 1, #kv, 2 do
		local d = tonumber(string.sub(kv[i + 1], 1, 10))
		if kv[i] ~= '' and kv[i] ~= ARGV[IA0] and (not d or d < t) then redis.call('HDEL', ix, kv[i]) end
	end
	if r[1] == '0' then redis.call('HDEL', ix, '') else redis.call('HSET', ix, '', r[1]) end
	if redis.call('TTL', ix) < keep then redis.call('EXPIRE', ix, keep) end
end
`)
}

func luaIndexDrop(ik, ia int) string {
	return indexReplacer(ik, ia).Replace(`
if KEYS[IK] and ARGV[IA2] ~= '' then redis.call('HDEL', KEYS[IKD], ARGV[IA2]) end
`)
}

// luaCheckHashes is what a write script with an index step (KEYS[ik] and
// KEYS[ik+1] set) checks before its first write: that those keys, and the
// key the Lua expression also names where it is not empty (the bucket of a
// new session), are hashes or absent. A key of another type then fails the
// script before it has written anything, not halfway through (Lua does not
// roll back).
func luaCheckHashes(ik int, also string) string {
	keys := fmt.Sprintf("KEYS[%d], KEYS[%d]", ik, ik+1)
	if also != "" {
		keys += ", " + also
	}
	return fmt.Sprintf(`
if KEYS[%d] then
	for _, k in ipairs({%s}) do
		local t = redis.call('TYPE', k).ok
		if t ~= 'hash' and t ~= 'none' then
			return redis.error_reply('WRONGTYPE a key this write needs holds a ' .. t .. ', not a hash')
		end
	end
end
`, ik, keys)
}

func indexReplacer(ik, ia int) *strings.Replacer {
	return strings.NewReplacer("IKD", strconv.Itoa(ik+1), "IK", strconv.Itoa(ik),
		"IA0", strconv.Itoa(ia), "IA1", strconv.Itoa(ia+1), "IA2", strconv.Itoa(ia+2), "IA3", strconv.Itoa(ia+3),
		"IA4", strconv.Itoa(ia+4))
}

// indexScript is luaIndexAdd on its own, for Redis Cluster: KEYS[1] the
// index, ARGV[1..5] as indexOp.args gives them.
var indexScript = rueidis.NewLuaScript(luaIndexAdd(1, 1) + "\nreturn 1\n")

// dropEntryScript deletes an index entry if its value is still ARGV[2]
// (empty: any): KEYS[1] the index, ARGV[1] the field.
var dropEntryScript = rueidis.NewLuaScript(`
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
return redis.call('HDEL', KEYS[1], ARGV[1])
`)

// indexEntry names one entry of a user's index.
type indexEntry struct{ key, field string }

// writePlan is what a write of a session does besides storing its values.
type writePlan struct {
	ttl   int64         // seconds the session is kept: MaxLifetime may shorten it
	meta  envelope.Meta // the metadata to store with it
	ix    *indexOp      // the index entry the write adds or renews
	drops []indexEntry  // entries to delete once the write landed
	full  bool          // write the session even if its values did not change
}

// errLifetimeOver: the session reached MaxLifetime.
var errLifetimeOver = fmt.Errorf("%w: it reached Config.MaxLifetime", ErrEnded)

// plan works out the metadata, lifetime and index steps of a write of
// session (its ID already the one it is written under) holding user, for
// ttl seconds, from what the request holds: the index is planned from the
// user the write stores against the user stored now (the snapshot's), so
// that the session is on the index of exactly the user it holds; a
// sign-in records the device of r, the request that saves it.
func (s *Store) plan(st *sessionState, session *sessions.Session, user string, ttl int64, r *http.Request) (writePlan, error) {
	p := writePlan{ttl: ttl}
	if s.maxLifetime == 0 && s.userKey == "" {
		return p, nil
	}
	now := s.wallNow().Unix()
	stored := st.stored()
	p.meta.Start = st.snap.meta.Start
	if !stored || p.meta.Start == 0 {
		// A new session begins now; one written before MaxLifetime or
		// UserKey was set begins now too, and is written to record it.
		p.meta.Start, p.full = now, stored
	}
	if s.maxLifetime > 0 {
		left := p.meta.Start + s.maxLifetime - now
		if left <= 0 {
			return p, errLifetimeOver
		}
		p.ttl = min(ttl, left)
	}
	if s.userKey == "" {
		return p, nil
	}
	digest := ""
	if user != "" {
		digest = userDigest(user)
	}
	p.meta.User, p.meta.HasUser = digest, true
	if digest != "" {
		// UserSessions tells when the session was last seen from this
		// and its expiry.
		p.meta.TTL = p.ttl
	}
	if stored && !st.snap.meta.HasUser {
		p.full = true // written before the metadata named the user: record it
	}
	moved := stored && st.id != session.ID
	cluster := s.client.Mode() == rueidis.ClientModeCluster
	var drop *indexEntry
	// The entry of the user stored now goes when the session leaves that
	// user or its ID. In Redis Cluster it would go in a step after the
	// write, and there only for an ID that is gone: a session that changed
	// users may change back before that step, and must not lose the entry
	// then; its stale entry is passed over by the user methods and goes at
	// its deadline.
	if st.snap.user != "" && (moved || st.snap.user != digest && !cluster) {
		drop = &indexEntry{s.indexKeyOf(st.snap.user), rawField(st.id)}
	}
	if digest != "" {
		// Entry deadlines are the server's: so is this, as well as the
		// store knows it (its estimate, or when the snapshot was read).
		// Whether the entry needs renewing is judged only by that: this
		// machine's clock may be off by more than indexSlack.
		snow, known := s.serverNow(st)
		if digest == st.snap.user && !moved && known && st.snap.meta.IndexUntil != 0 && snow+p.ttl+indexSlack <= st.snap.meta.IndexUntil {
			p.meta.IndexUntil = st.snap.meta.IndexUntil
		} else {
			// Signing in, a new ID, or an entry due for renewal: the write
			// adds the entry, before the session.
			// At most 2^31-1 s: a TTL command argument past it is refused
			// by miniredis on 32-bit platforms; the session's own TTL is
			// at most MaxAgeLimit (2^30 s), so the entry still outlives it.
			keep := min(2*p.ttl+indexSlack, math.MaxInt32)
			if !known {
				// A new session, on a store that has not heard from Redis
				// lately: the script keeps the entry at least this long.
				snow = time.Now().Unix()
			}
			p.ix = &indexOp{addKey: s.indexKeyOf(digest), add: rawField(session.ID), keep: keep, until: snow + keep}
			p.ix.device = s.deviceStep(r, digest != st.snap.user, moved, st.id, p.ix.addKey)
			p.meta.IndexUntil = snow + keep
			p.full = true
		}
	}
	if drop == nil {
		return p, nil
	}
	if cluster {
		p.drops = append(p.drops, *drop) // after the write, in a step of its own
		return p, nil
	}
	// Outside a cluster the write's script drops the old entry once it has
	// written, so that nothing comes in between.
	if p.ix == nil {
		p.ix = &indexOp{}
	}
	p.ix.dropKey, p.ix.drop = drop.key, drop.field
	return p, nil
}

// serverNow returns the server's clock in Unix seconds as the store knows
// it: its estimate, or the time the request's snapshot was read at, moved
// on by this machine's monotonic clock; false when it knows neither.
func (s *Store) serverNow(st *sessionState) (int64, bool) {
	if now, ok := s.clock.now(); ok {
		return now.Unix(), true
	}
	if sn := st.snap.stored; !sn.server.IsZero() {
		return sn.server.Add(s.clock.local() - sn.local).Unix(), true
	}
	return 0, false
}

// rawField returns the index field of a valid ID: its 16 raw bytes.
func rawField(id string) string {
	raw, err := rawID(id)
	if err != nil {
		return ""
	}
	return string(raw[:])
}

// beforeWrite runs the index step of a write that cannot be in the write's
// own script (Redis Cluster: the index lives in another slot), and returns
// the op the layout should run in its script.
func (s *Store) beforeWrite(ctx context.Context, ix *indexOp) (*indexOp, error) {
	if ix == nil || s.client.Mode() != rueidis.ClientModeCluster {
		return ix, nil
	}
	ctx, cancel := s.callContext(ctx)
	defer cancel()
	err := indexScript.Exec(ctx, s.client, []string{ix.addKey}, []string{ix.add, itoa(ix.keep), "", itoa(ix.until), ix.device}).Error()
	if err != nil {
		return nil, redisError("indexing session", err)
	}
	return nil, nil
}

// dropEntries deletes index entries of sessions that left a user. A
// failure leaves a stale entry, which the user methods skip and remove
// later; it is not worth failing the request for.
func (s *Store) dropEntries(ctx context.Context, entries []indexEntry) {
	for _, e := range entries {
		if e.field != "" {
			dropEntryScript.Exec(ctx, s.client, []string{e.key}, []string{e.field, ""})
		}
	}
}

// UserSessions returns the live sessions of a user (their Values[UserKey]
// holds user), oldest first. It never lists a session that has ended; on
// the way it drops index entries of sessions that did.
func (s *Store) UserSessions(ctx context.Context, user string) ([]UserSession, error) {
	start := s.began()
	out, err := s.userSessions(ctx, user)
	s.observe(ctx, OpUserSessions, start, opInfo{outcome: OutcomeDone}, err, func(e *Event) {
		e.Sessions = len(out)
		if s.observeUsers {
			e.User = user
		}
	})
	return out, err
}

func (s *Store) userSessions(ctx context.Context, user string) ([]UserSession, error) {
	var out []UserSession
	_, err := s.eachUserSession(ctx, user, nil, func(ctx context.Context, us userSession) error {
		out = append(out, us.info)
		return nil
	})
	slices.SortFunc(out, func(a, b UserSession) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return strings.Compare(a.Handle, b.Handle)
	})
	return out, err
}

// DeleteUserSession ends the session of user named by handle (see Handle
// and UserSessions): "sign out this device". A handle that names no live
// session of this user (another user's, or one that ended) does nothing
// and is not an error. Once it returns, the session opens nothing, and a
// request that had loaded it cannot save it back (ErrEnded).
func (s *Store) DeleteUserSession(ctx context.Context, user, handle string) error {
	_, err := s.deleteUserSessions(ctx, user, func(h string) bool { return h == handle })
	return err
}

// DeleteUserSessions ends every session of user except those whose handles
// are in keep, and returns how many it ended: with no handles, all of them
// ("log out everywhere"); with the current session's handle, every other
// device. Once it returns, no session it ended opens anything, and a
// request that had loaded one cannot save it back (ErrEnded). A session
// signed in while it runs may survive, as a sign-in just after it would.
func (s *Store) DeleteUserSessions(ctx context.Context, user string, keep ...string) (int, error) {
	return s.deleteUserSessions(ctx, user, func(h string) bool { return !slices.Contains(keep, h) })
}

// deleteUserPasses bounds the passes of DeleteUserSessions: a session that
// got a new ID while a pass ended the old one is in the index under the new
// ID, and the next pass ends it.
const deleteUserPasses = 4

func (s *Store) deleteUserSessions(ctx context.Context, user string, end func(handle string) bool) (int, error) {
	start := s.began()
	n, err := s.endUserSessions(ctx, user, end)
	s.observe(ctx, OpDeleteUserSessions, start, opInfo{outcome: OutcomeDone}, err, func(e *Event) {
		e.Sessions = n
		if s.observeUsers {
			e.User = user
		}
	})
	return n, err
}

func (s *Store) endUserSessions(ctx context.Context, user string, end func(handle string) bool) (int, error) {
	n := 0
	p := &userPass{settled: map[string]bool{}, met: map[string]bool{}}
	var errs []error
	for range deleteUserPasses {
		fresh, err := s.eachUserSession(ctx, user, p, func(ctx context.Context, us userSession) error {
			if !end(us.info.Handle) {
				return nil
			}
			ended, err := s.endIndexed(ctx, user, us)
			if ended {
				n++
			}
			return err
		})
		// A failure in one pass (a session it could not decode, say) does
		// not stop the next: it may find a session that got a new ID.
		if err != nil {
			errs = append(errs, err)
		}
		if fresh == 0 {
			return n, errors.Join(errs...)
		}
	}
	errs = append(errs, fmt.Errorf("%w: the user's sessions kept getting new IDs through %d passes; some may be left", ErrConflict, deleteUserPasses))
	return n, errors.Join(errs...)
}

// userPass is what the passes of DeleteUserSessions know of a user's index
// entries: those settled (ended, gone, another user's now, or failed) are
// not checked again; those met but not settled (a session on its way in,
// in Redis Cluster, where the entry is written first) are, and a pass that
// meets no new entry is the last.
type userPass struct {
	settled, met map[string]bool
}

// userSession is one live session of a user found through the index.
type userSession struct {
	info  UserSession
	entry indexEntry
	loc   location
	got   stored
}

// eachUserSession calls fn for every live session of user in its index.
// With p, it skips the entries p says are settled, records what it learns
// there, and returns how many entries it met for the first time.
func (s *Store) eachUserSession(ctx context.Context, user string, p *userPass, fn func(context.Context, userSession) error) (fresh int, err error) {
	if s.userKey == "" {
		return 0, ErrNoUserIndex
	}
	key := s.indexKey(user)
	entries, err := s.indexEntries(ctx, key)
	if err != nil {
		return 0, err
	}
	var fields []string
	for field := range entries {
		if field == indexCursor || p != nil && p.settled[field] {
			continue
		}
		if p != nil && !p.met[field] {
			p.met[field] = true
			fresh++
		}
		fields = append(fields, field)
	}
	// Check the sessions at once (rueidis pipelines the concurrent loads
	// into few round trips), then hand them to fn one by one.
	type checked struct {
		us      userSession
		live    bool
		pending bool
		err     error
	}
	results := make([]checked, len(fields))
	var wg sync.WaitGroup
	limit := make(chan struct{}, userCheckers)
	for i, field := range fields {
		wg.Add(1)
		limit <- struct{}{}
		go func() {
			defer func() { <-limit; wg.Done() }()
			r := &results[i]
			r.us, r.live, r.pending, r.err = s.indexedSession(ctx, user, indexEntry{key, field}, entries[field])
		}()
	}
	wg.Wait()
	var errs []error
	for i, r := range results {
		err := r.err
		if err == nil && r.live {
			err = fn(ctx, r.us)
		}
		if err != nil {
			errs = append(errs, err)
		}
		if p != nil && !r.pending {
			p.settled[fields[i]] = true
		}
	}
	return fresh, errors.Join(errs...)
}

// userCheckers bounds the sessions of a user's index checked at once.
const userCheckers = 32

// indexEntries reads a user's whole index.
func (s *Store) indexEntries(ctx context.Context, key string) (map[string]string, error) {
	entries := map[string]string{}
	cursor := uint64(0)
	for {
		cctx, cancel := s.callContext(ctx)
		e, err := s.client.Do(cctx, s.client.B().Hscan().Key(key).Cursor(cursor).Count(256).Build()).AsScanEntry()
		cancel()
		if err != nil {
			return nil, redisError("reading the user's index", err)
		}
		for i := 0; i+1 < len(e.Elements); i += 2 {
			entries[e.Elements[i]] = e.Elements[i+1]
		}
		if cursor = e.Cursor; cursor == 0 {
			return entries, nil
		}
	}
}

// indexedSession loads the session an index entry names and reports
// whether it is a live session of user; pending, that the session is not
// there yet but may be on its way (in Redis Cluster the entry is written
// first). Entries of sessions that are gone are dropped where that can be
// done in one step with checking that they are (outside Redis Cluster);
// the others go at their deadline.
func (s *Store) indexedSession(ctx context.Context, user string, e indexEntry, value string) (us userSession, live, pending bool, err error) {
	us = userSession{entry: e}
	if len(e.field) != idBytes {
		return us, false, false, s.dropEntry(ctx, e, value)
	}
	id := hex.EncodeToString([]byte(e.field))
	loc, err := s.locate(id)
	if err != nil {
		return us, false, false, err
	}
	cctx, cancel := s.callContext(ctx)
	got, err := s.layout.load(cctx, loc)
	cancel()
	if err != nil {
		if err = redisError("loading session", err); errors.Is(err, ErrCorrupt) {
			return us, false, false, nil // not a session: not listed, and not this method's to remove
		}
		return us, false, false, err
	}
	if !got.found {
		if s.client.Mode() != rueidis.ClientModeCluster {
			return us, false, false, s.dropIfGone(ctx, e, value, loc)
		}
		// The entry's time is the server's.
		now, ok := s.clock.now()
		if !ok {
			now = time.Now()
		}
		added, err := strconv.ParseInt(value[min(len(value), 11):min(len(value), 21)], 10, 64)
		return us, false, err == nil && now.Sub(time.Unix(added, 0)) <= indexGrace, nil
	}
	h, owner, err := s.ownerOf(got.envelope, loc)
	if err != nil {
		// Not this store's to judge or to end: leave it, and say so.
		return us, false, false, fmt.Errorf("a session in the user's index could not be checked: %w", err)
	}
	if owner != userDigest(user) {
		// Signed out, or another user's now: not listed. The entry stays
		// until its deadline, as the session may come back to this user
		// (whose write then renews the entry, in Redis Cluster before this
		// call could drop it).
		return us, false, false, nil
	}
	if s.pastLifetime(h.Meta) {
		// Past a MaxLifetime lowered since it was written: it ends now
		// (raised again later, it must not come back).
		cctx, cancel := s.callContext(ctx)
		defer cancel()
		if err := s.removeExpired(cctx, loc, got); err != nil {
			return us, false, false, err
		}
		return us, false, false, s.dropEntry(ctx, e, value)
	}
	us.loc, us.got = loc, got
	us.info = UserSession{Handle: handleOf(id), Expires: time.Unix(got.expiry, 0)}
	if h.Meta.Start != 0 {
		us.info.Started = time.Unix(h.Meta.Start, 0)
	}
	if h.Meta.TTL != 0 {
		// The expiry is where the last write or renewal put it, the
		// lifetime ahead of then.
		us.info.LastSeen = time.Unix(got.expiry-h.Meta.TTL, 0)
	}
	us.info.UserAgent, us.info.IP = s.entryDevice(value, e.key)
	return us, true, false, nil
}

// dropEntry deletes an index entry if it still holds value.
func (s *Store) dropEntry(ctx context.Context, e indexEntry, value string) error {
	cctx, cancel := s.callContext(ctx)
	defer cancel()
	if err := dropEntryScript.Exec(cctx, s.client, []string{e.key}, []string{e.field, value}).Error(); err != nil {
		return redisError("dropping an index entry", err)
	}
	return nil
}

// dropIfGoneScript deletes the index entry ARGV[1] of KEYS[1] if it still
// holds ARGV[2] and its session is gone by the server's clock, in one step,
// so that a session renewed meanwhile keeps its entry: KEYS[2] the
// session's key, ARGV[3] its field in that bucket ("" in StringMode).
var dropIfGoneScript = rueidis.NewLuaScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] == '' then
	if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
elseif redis.call('TYPE', KEYS[2]).ok == 'hash' then
	local v = redis.call('HGET', KEYS[2], ARGV[3])
	if v and #v >= 4 then
		local a, b, c, d = string.byte(v, 1, 4)
		if ((a * 256 + b) * 256 + c) * 256 + d > tonumber(redis.call('TIME')[1]) then return 0 end
	end
end
return redis.call('HDEL', KEYS[1], ARGV[1])
`)

// dropIfGone deletes the entry of a session that looked gone, if it is.
func (s *Store) dropIfGone(ctx context.Context, e indexEntry, value string, loc location) error {
	cctx, cancel := s.callContext(ctx)
	defer cancel()
	if err := dropIfGoneScript.Exec(cctx, s.client, []string{e.key, loc.key}, []string{e.field, value, loc.field}).Error(); err != nil {
		return redisError("dropping an index entry", err)
	}
	return nil
}

// ownerOf returns the header of a stored envelope, read at loc, and the digest of the
// session's user ("" for none). The metadata names the user; only a
// session written before it did is decoded to learn it.
func (s *Store) ownerOf(env string, loc location) (envelope.Header, string, error) {
	h, err := envelope.ReadHeader(env)
	if err != nil {
		return h, "", envelopeError(err)
	}
	if h.Meta.HasUser {
		return h, h.Meta.User, nil
	}
	values, _, err := s.openValues(env, nil, loc)
	if err != nil {
		return h, "", err
	}
	u, err := s.userOf(values)
	if err != nil || u == "" {
		return h, "", err
	}
	return h, userDigest(u), nil
}

// endIndexed ends a session found by eachUserSession if it is still as
// found, or, after a change, still of user; ended reports that it did.
func (s *Store) endIndexed(ctx context.Context, user string, us userSession) (ended bool, err error) {
	for attempt := 1; ; attempt++ {
		cctx, cancel := s.callContext(ctx)
		err := s.layout.removeIf(cctx, us.loc, us.got)
		cancel()
		var c *conflict
		switch {
		case err == nil:
			s.dropAfter(ctx, us.entry)
			return true, nil
		case errors.Is(err, ErrEnded):
			s.dropAfter(ctx, us.entry)
			return false, nil
		case !errors.As(err, &c):
			return false, redisError("deleting session", err)
		case attempt == MaxMergeAttempts:
			return false, fmt.Errorf("%w: %d attempts to end a session that kept changing", ErrConflict, attempt)
		}
		if _, owner, err := s.ownerOf(c.current.envelope, us.loc); err != nil || owner != userDigest(user) {
			return false, err // no longer this user's
		}
		us.got = c.current
	}
}

// dropAfter deletes the entry of a session that was ended.
func (s *Store) dropAfter(ctx context.Context, e indexEntry) {
	cctx, cancel := s.callContext(ctx)
	defer cancel()
	s.dropEntries(cctx, []indexEntry{e})
}
