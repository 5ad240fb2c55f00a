package redistore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/gorilla/sessions"
	"github.com/redis/rueidis"
	"github.com/redisession/redistore/internal/cookie"
	"github.com/redisession/redistore/internal/envelope"
	"github.com/redisession/redistore/internal/strbytes"
)

// What a request holds for each of its sessions, and what Save does with
// it: one small state machine, the way scs keeps one status per request.
// Every write path (save, merge, renewal, a new ID, logout, the user index
// plan) reads the state and moves it on; none works it out again from the
// session's fields.
//
//	phase            Save                        Save, nothing changed        RegenerateID, cleared ID      MaxAge < 0 (logout)
//	new              store under a new ID        (the same)                   (the same)                    expire the cookie
//	                 -> written
//	loaded,          write the changes since     renew the expiry when due,   move to a new ID, the old     delete it; the object
//	written          the snapshot if it is still if still as in the           one deleted, if still as      becomes a new, empty
//	                 as in it; else merge them   snapshot (else skip: the     in the snapshot (else         session -> new
//	                 onto what is stored now     other write renewed it)      merge, retry) -> written
//	                 and retry -> written
//	ended            ErrEnded, nothing written   ErrEnded                     ErrEnded                      -> new
//	unread           ErrUnavailable, nothing     ErrUnavailable               ErrUnavailable                delete it -> new
//	                 written (Get could not load
//	                 it: it may be alive)
//
// Any Save that finds the session gone or expired in Redis moves it to
// ended. After a write the snapshot is what the request wrote, so a second
// Save in the same request (a handler's, then a middleware's) is an ordinary
// Save of the changes since the first. A logout consumes MaxAge < 0: a
// later Save of that request with values set since (a flash, another
// sign-in) stores them under a new ID with the lifetime of a new session
// (Store.Options.MaxAge) unless the request set another; one with nothing
// set writes nothing, whatever MaxAge says (with -1 it expires the cookie
// again).

// phase is where a session is in its life, as its request sees it.
type phase uint8

const (
	// phaseNew: nothing is stored for the session: the request had no
	// cookie, or one for a session that no longer exists, or it logged out.
	phaseNew phase = iota
	// phaseLoaded: loaded from Redis (or from boj/redistore's key, with
	// Config.Legacy, to be moved at the first Save).
	phaseLoaded
	// phaseWritten: written by this request.
	phaseWritten
	// phaseEnded: it ended while the request held it: logged out, revoked
	// or moved to a new ID elsewhere, expired, or past MaxLifetime.
	phaseEnded
	// phaseUnread: the request's cookie names a session that Redis did not
	// answer for (ErrUnavailable from Get). It may be alive: a Save of the
	// new session Get returned would replace the browser's cookie and sign
	// the user out for one failed read, so Save refuses (ErrUnavailable);
	// a logout deletes it.
	phaseUnread
)

var phaseNames = [...]string{"new", "loaded", "written", "ended", "unread"}

func (p phase) String() string { return nameOf(phaseNames[:], int(p), "unknown") }

// sessionState is what a request holds for one of its sessions (see
// states for where it is kept).
type sessionState struct {
	phase  phase
	id     string   // the ID the session is stored under (not in phaseNew)
	loc    location // where id lives
	snap   snapshot // what is stored, as the request last saw it
	cookie string   // a cookie value for id from the current key pair
	maxAge int      // Options.MaxAge as loaded or last saved: a Save with another sets the lifetime

	legacyKey string // the boj/redistore key a loaded session moves from
	legacyRaw string // and the value there, as read

	// loggedOut: the request logged this session out (MaxAge < 0 and
	// Save) and has stored nothing since. The logout consumed MaxAge < 0:
	// a later Save with values set stores them in a new session (a flash
	// saying "you are logged out", a sign-in as another user) rather than
	// log out again.
	loggedOut bool

	// unopened: in phaseNew, the session the request's cookie names, which
	// Get found but could not open (ErrCorrupt, ErrUnknownFormat,
	// ErrTooLarge: sealed by a key this store lacks, an unregistered type,
	// a lowered MaxLength, garbage). A Save stores a new session beside it;
	// a logout deletes it, as the user asked.
	unopened *unopenedSession

	// pending is a new ID this request wrote under with no answer (a
	// timeout, a lost connection): the write may have landed. A retry of
	// the Save uses it again, so that it neither leaves a session nobody
	// has a cookie for nor, for a move that landed, finds the old ID gone
	// and ends the session (see resume).
	pending string
	// unanswered: a write of this request got no answer, and may have
	// landed. The retry merges onto it: the flashes it added are not added
	// again where what is stored ends with them.
	unanswered bool
}

// unopenedSession is a stored session Get could not open: its ID, where it
// is, and its user's digest where its envelope's metadata names one.
type unopenedSession struct {
	id   string
	loc  location
	user string
	// legacyKey: a boj/redistore session's key (Config.Legacy), which
	// goes with it; id and loc are then where it moves to.
	legacyKey string
}

// snapshot is a stored session as its request last saw it: loaded, found
// by a write that conflicted, or written. Conditional writes expect it;
// merges compute the request's changes against it.
type snapshot struct {
	stored                // the value as it is in Redis (raw), its expiry
	payload        string // its serialized Values
	codec          byte   // the codec of payload
	meta           envelope.Meta
	user           string // the digest of its user (userDigest), "" none
	incompressible bool   // its envelope says compression did not help
	// canonical: payload is the only encoding of its values, so that other
	// bytes of the same codec are other values (JSON, and compact without
	// gob-encoded items).
	canonical bool
	// reseal: the value is in clear where the store seals, so that the
	// next Save rewrites it, unchanged or not. (A value sealed by another
	// key of the ring is not rewritten unchanged: during a rotation, stores
	// with the two keys in either order would rewrite each other's on every
	// read. Its next change, or Rekey, re-seals it.)
	reseal bool
}

// stored reports whether the request holds a stored session.
func (st *sessionState) stored() bool { return st.phase == phaseLoaded || st.phase == phaseWritten }

// states keeps what each request holds for its sessions, keyed by the
// session object itself, weakly: a state lives as long as its
// *sessions.Session, and whatever request value a Save is given finds it.
// (A request's context would not do: gorilla's registry loads a session
// with the request it was created with, so a handler that saves with a
// request derived after that, r.WithContext in a router or
// http.TimeoutHandler, would find nothing and store the loaded session as a
// new one beside the old.)
type states struct{ m sync.Map } // weak.Pointer[sessions.Session] -> *sessionState

// of returns the state of session, nil when there is none.
func (t *states) of(session *sessions.Session) *sessionState {
	if v, ok := t.m.Load(weak.Make(session)); ok {
		return v.(*sessionState)
	}
	return nil
}

// set records st as the state of session until the session is garbage.
func (t *states) set(session *sessions.Session, st *sessionState) {
	key := weak.Make(session)
	if _, loaded := t.m.Swap(key, st); !loaded {
		runtime.AddCleanup(session, func(key weak.Pointer[sessions.Session]) { t.m.Delete(key) }, key)
	}
}

// stateOf returns what the request holds for session, recording a new
// state for a session it has not seen.
func (s *Store) stateOf(session *sessions.Session) *sessionState {
	st := s.states.of(session)
	if st == nil {
		st = &sessionState{}
		s.states.set(session, st)
	}
	return st
}

func (s *Store) save(r *http.Request, w http.ResponseWriter, session *sessions.Session, regenerate bool) (opInfo, error) {
	var info opInfo
	if session.Values == nil {
		session.Values = map[any]any{}
	}
	if _, ok := session.Values[regenerateKey{}]; ok {
		delete(session.Values, regenerateKey{})
		regenerate = true
	}
	name := session.Name()
	if !validCookieName(name) {
		return info, fmt.Errorf("redistore: session name %q is not a valid cookie name", name)
	}
	opts := session.Options
	if opts == nil {
		opts = s.Options
	}
	st := s.stateOf(session)
	if st.loggedOut && st.phase == phaseNew && len(session.Values) == 0 && opts.MaxAge >= 0 {
		// Nothing set since the logout, whatever MaxAge says now: nothing
		// to store, and the logout's cookie stands.
		info.outcome = OutcomeSkipped
		return info, nil
	}
	if opts.MaxAge < 0 && st.loggedOut && st.phase == phaseNew && len(session.Values) > 0 {
		// Set after a logout, with MaxAge still as the logout left it:
		// the new session the logout began, with the lifetime a new
		// session gets.
		fresh := *opts
		fresh.MaxAge = max(s.Options.MaxAge, 0)
		session.Options, opts = &fresh, &fresh
	}
	if opts.MaxAge < 0 {
		ctx, cancel := s.callContext(r.Context())
		defer cancel()
		err := s.logout(ctx, st, session)
		// The cookie goes whatever happened: the user asked to be logged out.
		cookie.Add(w, name, "", opts)
		info.outcome = OutcomeDeleted
		return info, err
	}
	switch st.phase {
	case phaseEnded:
		return info, fmt.Errorf("%w (found by an earlier Save of this request)", ErrEnded)
	case phaseUnread:
		return info, fmt.Errorf("%w: the request's session could not be loaded, and this Save would replace it with a new one: not saved (load it again)", ErrUnavailable)
	}
	// Where the session goes, and what it leaves.
	var old *location
	switch {
	case st.legacyKey != "":
		old = &location{key: st.legacyKey}
		if regenerate || session.ID != st.id {
			session.ID = newID()
		}
	case st.phase == phaseNew:
		// The store never takes an ID it did not issue.
		if session.ID == "" || session.ID != st.pending {
			session.ID = newID()
		}
	case regenerate || session.ID != st.id:
		// A cleared (or replaced) ID is a new ID: the stored session
		// leaves, as with RegenerateID, rather than stay alive beside it.
		old = &st.loc
		if session.ID == "" || session.ID != st.pending {
			session.ID = newID()
		}
	}
	loc := st.loc
	if session.ID != st.id || loc.key == "" {
		var err error
		if loc, err = s.locate(session.ID); err != nil {
			return info, err
		}
	}
	ttl := int64(opts.MaxAge)
	if ttl == 0 {
		ttl = s.browserTTL
	}
	sv := saving{session: session, loc: loc, old: old, buf: getBuffer(), ttl: min(ttl, maxTTL),
		lifetimeSet: st.stored() && opts.MaxAge != st.maxAge, req: r}
	if st.pending != "" && session.ID == st.pending {
		if err := s.resume(r.Context(), st, &sv); err != nil {
			return info, err
		}
	}
	written, ttl, err := s.write(r.Context(), st, &sv, &info)
	if err == nil || !written {
		// After a failed write the client may still hold buf in its pipeline:
		// leave it to the garbage collector.
		putBuffer(sv.buf)
	}
	switch {
	case err == nil:
		st.pending, st.unanswered = "", false
	case written && !errors.Is(err, ErrEnded) && !errors.Is(err, ErrConflict):
		// No answer: it may have landed.
		st.unanswered = true
		if session.ID != st.id {
			st.pending = session.ID
		}
	}
	if err != nil {
		return info, err
	}
	st.maxAge = opts.MaxAge
	if s.maxLifetime > 0 && int64(opts.MaxAge) > ttl {
		// The cookie never outlasts the session's lifetime.
		clamped := *opts
		clamped.MaxAge = int(ttl)
		opts = &clamped
	}
	return info, s.setCookie(w, st, session, opts)
}

// followMove handles a move of a boj/redistore session that found the
// legacy key gone (ErrEnded) or the ID it moves to taken (conflict c, in
// Redis Cluster): if another request moved the session there, it becomes
// the session this request holds, the request's changes merged onto it,
// and the write goes on there. moved is false when nothing is there: the
// session ended (logged out, expired).
func (s *Store) followMove(ctx context.Context, st *sessionState, sv *saving, c *conflict) (moved bool, err error) {
	id := s.movedID(strings.TrimPrefix(st.legacyKey, s.legacy.KeyPrefix))
	loc, err := s.locate(id)
	if err != nil {
		return false, err
	}
	var got stored
	if c != nil && c.taken && sv.loc == loc {
		got = c.current
	} else {
		cctx, cancel := s.callContext(ctx)
		got, err = s.layout.load(cctx, loc)
		cancel()
		if err != nil {
			return false, redisError("loading session", err)
		}
	}
	if !got.found {
		return false, nil
	}
	ch, err := s.legacyChanges(st, sv.session.Values)
	if err != nil {
		return false, err
	}
	st.phase, st.id, st.loc, st.cookie, st.legacyKey, st.legacyRaw = phaseLoaded, id, loc, "", "", ""
	if err := s.merge(st, sv.session, got, ch); err != nil {
		return false, err
	}
	if sv.session.ID == id {
		sv.old = nil
	} else {
		sv.old = &st.loc // regenerated: the session moves on from there
	}
	return true, nil
}

// resume is the retry of a write under a new ID (a new session, or a move
// to a new ID) whose first attempt got no answer. If that write landed, the
// session is under the new ID already (and in Redis Cluster the old one may
// be left): the Save goes on as an ordinary Save of the session there, the
// request's changes merged onto it, the old one deleted if it is still as
// the request held it. If nothing is there, the retry takes another new ID:
// the first may have landed and been ended since, and an ended ID stays
// ended.
func (s *Store) resume(ctx context.Context, st *sessionState, sv *saving) error {
	cctx, cancel := s.callContext(ctx)
	defer cancel()
	got, err := s.layout.load(cctx, sv.loc)
	if err != nil {
		return redisError("loading session", err)
	}
	if !got.found {
		// It did not land, or it landed and has ended since (logged out
		// everywhere, deleted by an admin): the write starts again under
		// a new ID, never under one that may have been ended.
		id := newID()
		loc, err := s.locate(id)
		if err != nil {
			return err
		}
		sv.session.ID, sv.loc = id, loc
		return nil
	}
	var ch changes
	if st.legacyKey == "" {
		ch, err = s.changesOf(st, sv.session.Values)
	} else {
		ch, err = s.legacyChanges(st, sv.session.Values)
	}
	if err != nil {
		return err
	}
	switch {
	case sv.old == nil:
		// A new session that landed: from here it is the stored session,
		// and the write is conditional on it, so that an end that comes
		// between this read and the write stands.
	case st.legacyKey == "":
		if err := s.layout.removeIf(cctx, *sv.old, st.snap.stored); err != nil && !errors.Is(err, ErrEnded) {
			var c *conflict
			if !errors.As(err, &c) {
				return redisError("deleting the old session", err)
			}
		}
	default:
		if err := s.layout.remove(cctx, *sv.old); err != nil {
			return redisError("deleting the old session", err)
		}
	}
	st.phase, st.id, st.loc, st.cookie, st.legacyKey, st.legacyRaw = phaseLoaded, sv.session.ID, sv.loc, "", "", ""
	if err := s.merge(st, sv.session, got, ch); err != nil {
		return err
	}
	sv.old = nil
	return nil
}

// logout deletes the session the request holds, whatever its phase (the
// user asked to be logged out), and makes session a new, empty session for
// the rest of the request: a later Save stores only what is set after the
// logout, under a new ID. When the delete fails, the session and the state
// stay as they were, so that the application's retry deletes it.
func (s *Store) logout(ctx context.Context, st *sessionState, session *sessions.Session) error {
	// Every place the request's session may be stored: each goes, with
	// its entries in its users' indexes. ask: its user is not known for
	// sure (not read, or another request may have changed it): the
	// stored value's metadata says.
	type place struct {
		loc   location
		id    string
		users []string
		ask   bool
	}
	var places []place
	add := func(id string, ask bool, users ...string) error {
		for _, p := range places {
			if p.id == id {
				return nil
			}
		}
		loc, err := s.locate(id)
		if err != nil {
			return err
		}
		places = append(places, place{loc, id, users, ask})
		return nil
	}
	valuesUser := func() string {
		if u, err := s.userOf(session.Values); err == nil && u != "" {
			return userDigest(u)
		}
		return ""
	}
	switch {
	case st.legacyKey != "":
		// The boj/redistore key, and the ID it moves to, where another
		// request may have moved it meanwhile (and changed its user).
		places = append(places, place{loc: location{key: st.legacyKey}})
		if err := add(st.id, true, s.legacyUser(st)); err != nil {
			return err
		}
	case st.phase == phaseUnread:
		places = append(places, place{st.loc, st.id, nil, true})
	case st.phase != phaseNew:
		// Another tab may have switched its user since this one read it.
		places = append(places, place{st.loc, st.id, []string{st.snap.user}, true})
	case st.unopened != nil:
		u := st.unopened
		places = append(places, place{u.loc, u.id, []string{u.user}, false})
		if u.legacyKey != "" {
			places = append(places, place{loc: location{key: u.legacyKey}})
		}
	case ValidID(session.ID):
		// A session this store did not load or save (built by hand, or
		// saved with another store): still the session the application
		// names.
		if err := add(session.ID, true, valuesUser()); err != nil {
			return err
		}
	}
	if st.pending != "" {
		// A write under a new ID whose reply was lost may have landed:
		// nobody has its cookie, and it goes too.
		if err := add(st.pending, true, valuesUser()); err != nil {
			return err
		}
	}
	for _, p := range places {
		if p.ask && s.userKey != "" {
			p.users = append(p.users, s.storedUser(ctx, p.loc))
		}
		if err := s.layout.remove(ctx, p.loc); err != nil {
			return redisError("deleting session", err)
		}
		var drop []indexEntry
		for i, u := range p.users {
			if u != "" && !slices.Contains(p.users[:i], u) {
				drop = append(drop, indexEntry{s.indexKeyOf(u), rawField(p.id)})
			}
		}
		if len(drop) > 0 {
			s.dropEntries(ctx, drop)
		}
	}
	*st = sessionState{loggedOut: true}
	session.ID, session.IsNew = "", true
	clear(session.Values)
	return nil
}

// storedUser returns the digest of the user the session stored at loc
// names in its metadata, "" when none, when it cannot be read, or when it
// was written before the metadata named users.
func (s *Store) storedUser(ctx context.Context, loc location) string {
	cctx, cancel := s.callContext(ctx)
	defer cancel()
	got, err := s.layout.load(cctx, loc)
	if err != nil || !got.found {
		return ""
	}
	if h, err := envelope.ReadHeader(got.envelope); err == nil && h.Meta.HasUser {
		return h.Meta.User
	}
	return ""
}

// setCookie sets the session's cookie after a write, encoding it only when
// the ID changed or was loaded with an old key pair.
func (s *Store) setCookie(w http.ResponseWriter, st *sessionState, session *sessions.Session, opts *sessions.Options) error {
	name := session.Name()
	if st.cookie == "" {
		v, err := s.codecs[0].Encode(name, []byte(session.ID))
		if err != nil {
			return fmt.Errorf("redistore: encoding cookie %q: %w", name, err)
		}
		st.cookie = v
	}
	if opts.MaxAge > MaxAgeLimit {
		clamped := *opts
		clamped.MaxAge = MaxAgeLimit
		opts = &clamped
	}
	cookie.Add(w, name, st.cookie, opts)
	return nil
}

// saving is what one Save writes.
type saving struct {
	session *sessions.Session
	loc     location  // where it goes
	old     *location // where it leaves, for a new ID or a move; nil: it stays
	ttl     int64     // seconds it is kept (MaxLifetime may shorten it)
	// lifetimeSet: the request set another MaxAge than the session had,
	// so that its lifetime is one of its changes.
	lifetimeSet bool
	buf         *[]byte // scratch for the value
	req         *http.Request
}

// bufferPool recycles the buffers Save serializes into.
var bufferPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledBuffer keeps one huge session from pinning its buffer forever.
const maxPooledBuffer = 256 << 10

func getBuffer() *[]byte { return bufferPool.Get().(*[]byte) }

func putBuffer(b *[]byte) {
	if cap(*b) <= maxPooledBuffer {
		bufferPool.Put(b)
	}
}

// write stores the session if it changed, or renews its expiry if that is
// due; with sv.old set it always writes, and deletes the session at old in
// the same step. A stored session is written only if it is still as in the
// request's snapshot; when another request changed it meanwhile, write
// merges this request's changes into what is stored now and tries again
// (see merge), up to MaxMergeAttempts times. written reports whether a
// command may have referenced sv.buf; kept is how long the session is kept.
func (s *Store) write(ctx context.Context, st *sessionState, sv *saving, info *opInfo) (written bool, kept int64, err error) {
	var ch *changes // this request's, worked out at the first conflict
	for attempt := 1; ; attempt++ {
		var c *conflict
		w, kept, err := s.writeOnce(ctx, st, sv, info)
		written = written || w
		isConflict := errors.As(err, &c)
		if st.legacyKey != "" && attempt < MaxMergeAttempts && (isConflict && c.taken || errors.Is(err, ErrEnded)) {
			// A boj/redistore session another request moved meanwhile?
			moved, err := s.followMove(ctx, st, sv, c)
			if err != nil {
				return written, 0, err
			}
			if moved {
				info.merges++
				continue
			}
		}
		switch {
		case err == nil:
			return written, kept, nil
		case errors.Is(err, ErrEnded):
			st.phase = phaseEnded
			return written, 0, err
		case !isConflict:
			return written, 0, err
		case st.legacyKey != "":
			return written, 0, fmt.Errorf("%w: the boj/redistore session changed while it was moved", ErrConflict)
		case attempt == MaxMergeAttempts:
			return written, 0, fmt.Errorf("%w: %d attempts to merge this request's changes failed", ErrConflict, attempt)
		}
		if ch == nil {
			c, err := s.changesOf(st, sv.session.Values)
			if err != nil {
				return written, 0, err
			}
			ch = &c
		}
		if err := s.merge(st, sv.session, c.current, *ch); err != nil {
			return written, 0, err
		}
		info.merges++
	}
}

// writeOnce is one attempt of write. Each Redis call has its own deadline
// (Config.Timeout), from the request's context: merges under contention
// are more calls, not slower ones, and serializing and compressing a large
// session takes none of it.
func (s *Store) writeOnce(ctx context.Context, st *sessionState, sv *saving, info *opInfo) (written bool, kept int64, err error) {
	session := sv.session
	user, err := s.userOf(session.Values)
	if err != nil {
		return false, 0, err
	}
	p, err := s.plan(st, session, user, sv.ttl, sv.req)
	if errors.Is(err, errLifetimeOver) {
		cctx, cancel := s.callContext(ctx)
		defer cancel()
		return false, 0, s.endLifetime(cctx, st)
	}
	buf := sv.buf
	b, err := s.serializer.Encode((*buf)[:0], session.Values)
	if err != nil {
		if s.codec == envelope.CodecCustom {
			return false, 0, fmt.Errorf("redistore: Serializer: %w", err)
		}
		return false, 0, err
	}
	*buf = b
	if len(b) > s.maxLength {
		return false, 0, fmt.Errorf("%w: %d bytes serialized, MaxLength is %d", ErrTooLarge, len(b), s.maxLength)
	}
	payload := b[:len(b):len(b)]
	merged := info.merges > 0
	if sv.old == nil && st.stored() && !st.snap.reseal && (merged && !sv.lifetimeSet || !p.full) && s.unchanged(st, payload, session.Values) {
		if merged && !sv.lifetimeSet {
			// Merged into what another request wrote meanwhile, and nothing of
			// this request's is left to write: that write renewed the
			// session, with its own lifetime and user.
			info.outcome = OutcomeSkipped
			return false, p.ttl, nil
		}
		if !s.relifes(st, p) {
			return false, p.ttl, s.renew(ctx, st, sv, p.ttl, info)
		}
	}
	ix, err := s.beforeWrite(ctx, p.ix)
	if err != nil {
		return false, 0, err
	}

	// The value goes into the same buffer, after the payload: the bytes the
	// layout fills in, then the envelope.
	n := len(st.snap.payload)
	skipLZ4 := st.snap.incompressible && sv.old == nil && len(payload) >= n/2 && len(payload) <= 2*n
	var reserved [expiryLen]byte
	b = append(b, reserved[:s.layout.reserve()]...)
	b = envelope.Append(b, payload, s.codec, s.compressor, s.minCompress, skipLZ4, p.meta)
	if s.sealer != nil && !s.writeClear {
		// Sealed after the envelope, then moved into its place.
		at := len(payload) + s.layout.reserve()
		sealed, err := envelope.Seal(b, b[at:], s.sealer, sealedAt(sv.loc))
		if err != nil {
			return false, 0, envelopeError(err)
		}
		b = append(b[:at], sealed[len(b):]...)
	}
	*buf = b
	value := b[len(payload):]
	*info = opInfo{outcome: OutcomeWritten, serializedBytes: len(payload), storedBytes: len(value),
		compressed: value[s.layout.reserve()]&envelope.FlagCompressed != 0, merges: info.merges}
	var prev stored // the session as the request holds it: written only if still so
	switch {
	case st.legacyKey != "":
		prev = stored{raw: st.legacyRaw, found: true}
	case st.stored():
		prev = st.snap.stored
	}
	var exp int64
	cctx, cancel := s.callContext(ctx)
	defer cancel()
	if sv.old != nil {
		exp, err = s.layout.replace(cctx, *sv.old, sv.loc, value, p.ttl, prev, ix)
	} else {
		exp, err = s.layout.save(cctx, sv.loc, value, p.ttl, prev, ix)
	}
	var c *conflict
	if err != nil && !errors.Is(err, ErrEnded) && !errors.As(err, &c) {
		// The server's own error answers that nothing was written; any
		// other failure (no answer) may have followed a write that landed.
		var answer *rueidis.RedisError
		return !errors.As(err, &answer), 0, redisError("saving session", err)
	}
	if errors.Is(err, ErrEnded) && p.ix != nil && ix == nil {
		// In Redis Cluster the entry went in a step of its own: the session
		// it names has ended, and cannot come back.
		dctx, cancel := s.callContext(ctx)
		s.dropEntries(dctx, []indexEntry{{p.ix.addKey, p.ix.add}})
		cancel()
	}
	if err == nil {
		st.wrote(session.ID, sv.loc, b, len(payload), exp, p)
		if s.layout.serverExpiry() {
			// Written at the server's time exp - ttl (to the second).
			st.snap.server, st.snap.local = time.Unix(exp-p.ttl, 0), s.clock.local()
		}
		if len(p.drops) > 0 {
			dctx, cancel := s.callContext(ctx)
			s.dropEntries(dctx, p.drops)
			cancel()
		}
	}
	return true, p.ttl, err
}

// wrote records a write: the session is stored under id at loc as b holds
// it (the payload, its first n bytes, then the value, whose expiry the
// layout reports), and b goes back to the pool.
func (st *sessionState) wrote(id string, loc location, b []byte, n int, exp int64, p writePlan) {
	putExpiry(b[n:], exp)
	kept := string(b)
	raw := kept[n:]
	flags := raw[expiryLen] & 0x0f
	if id != st.id {
		st.cookie = ""
	}
	st.phase, st.id, st.loc, st.legacyKey, st.legacyRaw = phaseWritten, id, loc, "", ""
	st.snap = snapshot{
		stored:  stored{raw: raw, found: true, expiry: exp, left: time.Duration(p.ttl) * time.Second},
		payload: kept[:n], codec: raw[expiryLen+1], meta: p.meta, user: p.meta.User,
		incompressible: flags&envelope.FlagIncompressible != 0,
	}
}

// unchanged reports whether values, serialized as payload, are what the
// snapshot holds: the same bytes, or, where a serializer may write the
// same values in other bytes (gob writes maps in random order), equal
// values (sameValue: NaN equals NaN).
func (s *Store) unchanged(st *sessionState, payload []byte, values map[any]any) bool {
	sn := &st.snap
	if sn.codec == s.codec {
		if sn.payload == strbytes.String(payload) {
			return true
		}
		if sn.canonical {
			return false
		}
	}
	was := map[any]any{}
	if _, err := s.decode(sn.codec, sn.payload, was); err != nil {
		return false
	}
	return sameValues(was, values)
}

// endLifetime ends a stored session that reached MaxLifetime (its Redis
// TTL ends it too; this is for a MaxLifetime lowered since it was written).
func (s *Store) endLifetime(ctx context.Context, st *sessionState) error {
	if st.stored() {
		if err := s.removeExpired(ctx, st.loc, st.snap.stored); err != nil {
			return err
		}
		if st.snap.user != "" {
			s.dropEntries(ctx, []indexEntry{{s.indexKeyOf(st.snap.user), rawField(st.id)}})
		}
	}
	st.phase = phaseEnded
	return errLifetimeOver
}

// removeExpired deletes a session past its lifetime: if it is still as
// found, or, changed meanwhile, all the same.
func (s *Store) removeExpired(ctx context.Context, loc location, got stored) error {
	err := s.layout.removeIf(ctx, loc, got)
	var c *conflict
	switch {
	case err == nil, errors.Is(err, ErrEnded):
		return nil
	case errors.As(err, &c):
		if err := s.layout.remove(ctx, loc); err != nil {
			return redisError("ending session", err)
		}
		return nil
	}
	return redisError("ending session", err)
}

// renew renews the expiry of a session that did not change, if that is
// due (see Config.TouchInterval), and only if it is still as in the
// snapshot: a renewal of a session another request wrote meanwhile would
// apply this request's lifetime to that request's session. Then the
// session merges what is stored now and the Save ends there, unless the
// request set the lifetime itself: then write tries again on what is
// stored now, planning the user index for that lifetime.
func (s *Store) renew(ctx context.Context, st *sessionState, sv *saving, ttl int64, info *opInfo) error {
	full := time.Duration(ttl) * time.Second
	info.outcome = OutcomeSkipped
	var exp int64
	for attempt := 1; ; attempt++ {
		if !s.renewalDue(st, ttl) {
			return nil
		}
		if attempt > MaxMergeAttempts {
			return fmt.Errorf("%w: %d attempts to renew a session that kept changing", ErrConflict, MaxMergeAttempts)
		}
		cctx, cancel := s.callContext(ctx)
		var err error
		exp, err = s.layout.touch(cctx, sv.loc, ttl, st.snap.stored)
		cancel()
		var c *conflict
		switch {
		case errors.As(err, &c) && sv.lifetimeSet:
			return err
		case errors.As(err, &c):
			// Another write meanwhile: it renewed the session, with its
			// own lifetime. Unless it only re-sealed it (Rekey), keeping
			// the expiry, the metadata and the values: then the renewal
			// is still this request's to make, on what is stored now.
			kept, meta, before := c.current.expiry == st.snap.expiry, st.snap.meta, maps.Clone(sv.session.Values)
			if err := s.merge(st, sv.session, c.current, changes{}); err != nil {
				return err
			}
			info.merges++
			if kept && st.snap.meta == meta && sameValues(before, sv.session.Values) {
				continue
			}
			return nil
		case errors.Is(err, ErrEnded):
			return err
		case err != nil:
			return redisError("renewing session", err)
		}
		break
	}
	st.snap.raw = string(expiryBytes(exp)) + st.snap.raw[expiryLen:]
	st.snap.expiry, st.snap.left = exp, full
	info.outcome = OutcomeTouched
	return nil
}

// renewalDue reports whether an unchanged session's expiry has slipped far
// enough behind where a write of ttl seconds would put it to be renewed.
func (s *Store) renewalDue(st *sessionState, ttl int64) bool {
	behind := time.Duration(ttl)*time.Second - st.snap.left
	return behind < 0 || behind >= s.slip(ttl)
}

// slip is how far an unchanged session's expiry may slip behind before it
// is renewed: TouchInterval, at most a tenth of the lifetime.
func (s *Store) slip(ttl int64) time.Duration {
	return min(s.touchInterval, time.Duration(ttl)*time.Second/10)
}

// relifes reports whether an unchanged signed-in session is written rather
// than renewed (or left alone), in the one command a renewal takes, so that
// UserSessions' LastSeen (its expiry less the lifetime its metadata
// records) is never further off than a renewal lets it slip: when a
// renewal is due and gives a lifetime that far from the recorded one (the
// request set another MaxAge; one written before the lifetime was
// recorded), or when MaxLifetime holds the expiry where it is and the last
// write is that far behind.
func (s *Store) relifes(st *sessionState, p writePlan) bool {
	was := st.snap.meta.TTL
	if p.meta.TTL == 0 || p.meta.TTL == was {
		return false
	}
	off := time.Duration(abs(p.ttl-was)) * time.Second
	return s.renewalDue(st, p.ttl) && off >= s.slip(p.ttl) || was != 0 && s.renewalDue(st, was)
}

func abs(n int64) int64 { return max(n, -n) }

// expiryBytes is the 4-byte expiry in front of a stored value.
func expiryBytes(exp int64) []byte {
	var b [expiryLen]byte
	putExpiry(b[:], exp)
	return b[:]
}
