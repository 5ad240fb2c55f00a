package redistore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"github.com/redis/rueidis"
)

// Store is a sessions.Store that keeps sessions in Redis. The cookie carries
// only the session ID, signed (and encrypted when a block key is given); the
// server decides when a session expires. A Store is safe for concurrent use.
type Store struct {
	// Options are the cookie options of new sessions. New sets Path "/",
	// MaxAge DefaultMaxAge, HttpOnly and SameSite Lax; set Secure for sites
	// served over HTTPS. Options.MaxAge is also how long the server keeps a
	// session (BrowserSessionTTL when it is 0).
	Options *sessions.Options

	client        rueidis.Client
	layout        layout
	prefix        string
	serializer    Serializer
	codec         byte
	minCompress   int
	maxLength     int
	timeout       time.Duration
	browserTTL    int64
	touchInterval time.Duration
	logger        *slog.Logger
	logKeyErrors  bool
	codecs        []securecookie.Codec
	fastCodecs    []*macCodec // codecs[i]'s allocation-free reader, or nil
	sweepSource   BucketSource
	legacy        *Legacy
	clock         *serverClock
	userKey       string
	maxLifetime   int64 // seconds; 0: none
	observer      Observer
	observeUsers  bool
	compressor    Compressor
	zstd          *zstdDecoder
}

var _ sessions.Store = (*Store)(nil)

// sessionState is what New learned about a loaded session, kept for Save
// in the request's context (gorilla's registry replaces a session's store, so
// the session itself cannot carry it).
type sessionState struct {
	session *sessions.Session
	next    *sessionState // the state of another session of the request

	id      string   // the ID as loaded, or as last saved
	loc     location // where id lives
	payload string   // serialized Values as stored (with loaded.found)
	codec   byte     // codec of payload
	meta    envMeta  // the metadata of the stored session, or of the last write
	user    string   // its user (Config.UserKey), as stored
	cookie  string   // a cookie value for id from the current key pair

	legacyKey string // the boj/redistore key the session was read from
	legacyRaw string // and the value there, as read

	// incompressible: the stored envelope says LZ4 did not help; Save does
	// not try again at a similar size.
	incompressible bool
	// loaded is what the layout found (its envelope aside): found says
	// payload and codec describe the stored session, left how long it had
	// when loaded or last touched.
	loaded stored
}

// opened records what a stored envelope said.
func (st *sessionState) opened(o opened) {
	st.payload, st.codec, st.meta = o.payload, o.codec, o.meta
	st.incompressible = o.flags&flagIncompressible != 0
}

// stateKey finds a Store's sessionStates in a request's context.
type stateKey struct{ s *Store }

// attach records st in the request's context, in place, as
// sessions.GetRegistry does with its registry.
func (s *Store) attach(r *http.Request, st *sessionState) {
	key := stateKey{s}
	st.next, _ = r.Context().Value(key).(*sessionState)
	*r = *r.WithContext(context.WithValue(r.Context(), key, st))
}

// stateOf returns what New recorded for session in the request, or an empty
// state when it recorded nothing (a new session, or another request).
func (s *Store) stateOf(r *http.Request, session *sessions.Session) *sessionState {
	st, _ := r.Context().Value(stateKey{s}).(*sessionState)
	for ; st != nil; st = st.next {
		if st.session == session {
			return st
		}
	}
	return &sessionState{session: session}
}

// Get returns the named session of the request, loading it on the first call
// and returning the same session from the request's registry afterwards.
func (s *Store) Get(r *http.Request, name string) (*sessions.Session, error) {
	if !validCookieName(name) {
		return s.New(r, name) // the registry would return a nil session
	}
	return sessions.GetRegistry(r).Get(s, name)
}

// New returns the named session of the request, loading it from Redis when the
// request carries a valid cookie for a live session. It never returns a nil
// session. A missing cookie or a session that no longer exists gives a new
// session (IsNew) and no error; a cookie that fails to decode, an invalid ID,
// an unreadable stored value or a Redis failure gives a new session and an
// error. A new session gets a fresh ID when first saved: the store never
// adopts an ID it did not issue.
func (s *Store) New(r *http.Request, name string) (*sessions.Session, error) {
	start := s.began()
	session, info, err := s.load(r, name)
	s.observe(r.Context(), OpGet, start, info, err, nil)
	return session, err
}

// load is New; info says what it found.
func (s *Store) load(r *http.Request, name string) (*sessions.Session, opInfo, error) {
	info := opInfo{outcome: OutcomeMiss}
	session := sessions.NewSession(s, name)
	opts := *s.Options
	session.Options = &opts
	session.IsNew = true
	if !validCookieName(name) {
		return session, info, fmt.Errorf("redistore: session name %q is not a valid cookie name", name)
	}
	c, err := r.Cookie(name)
	if err != nil {
		info.outcome = OutcomeNew
		return session, info, nil
	}
	id, current, err := s.decodeCookie(name, c.Value)
	if err != nil {
		return session, info, fmt.Errorf("%w %q: %w", ErrInvalidCookie, name, err)
	}
	if s.legacy != nil && !ValidID(id) {
		if lid, ok := legacyID(id); ok {
			session, err := s.newFromLegacy(r, session, lid)
			if !session.IsNew {
				info.outcome = OutcomeHit
			}
			return session, info, err
		}
	}
	loc, err := s.locate(id)
	if err != nil {
		s.logKeyError(name, id, err)
		return session, info, err
	}
	ctx, cancel := s.callContext(r.Context())
	got, err := s.layout.load(ctx, loc)
	cancel()
	if err != nil {
		return session, info, redisError("loading session", err)
	}
	if !got.found {
		return session, info, nil
	}
	info.storedBytes = len(got.raw)
	o, err := s.open(got.envelope, session)
	if err != nil {
		return session, info, err
	}
	if s.maxLifetime > 0 && o.meta.start != 0 && time.Now().Unix() >= o.meta.start+s.maxLifetime {
		clear(session.Values) // past MaxLifetime (lowered since it was written): ended
		return session, info, nil
	}
	session.ID = id
	session.IsNew = false
	st := &sessionState{session: session, id: id, loc: loc}
	st.opened(o)
	st.user, _ = s.userOf(session.Values)
	got.envelope = ""
	st.loaded = got
	if current {
		st.cookie = c.Value
	}
	s.attach(r, st)
	info.outcome, info.serializedBytes, info.compressed = OutcomeHit, len(o.payload), o.flags&flagLZ4 != 0
	return session, info, nil
}

// opened is what a stored envelope says besides the values.
type opened struct {
	codec   byte    // codec of payload
	payload string  // the serialized values
	flags   byte    // the envelope's flags, flagMeta and flagNamed aside
	meta    envMeta // its metadata block
	comp    byte    // the compressor's ID; 0: stored plain
}

// open decodes a stored envelope into session.Values, leaving them empty
// on error.
func (s *Store) open(env string, session *sessions.Session) (opened, error) {
	values, o, err := s.openValues(env, session.Values)
	if err != nil {
		clear(session.Values)
		return o, err
	}
	session.Values = values
	return o, nil
}

// openValues checks a stored envelope and decodes its values into into (or
// a new map, sized once where the payload gives its length, or when into is
// nil). On a decode error it still returns what the envelope said.
func (s *Store) openValues(env string, into map[any]any) (map[any]any, opened, error) {
	o, err := openEnvelopeWith(env, s.maxLength, s.decompress)
	if err != nil {
		return nil, opened{}, err
	}
	values := into
	if o.codec == codecCompact {
		// Size the map once instead of growing it entry by entry.
		if n, k := uvarintString(o.payload); k > 0 && n <= uint64(len(o.payload)/2) {
			values = make(map[any]any, n)
		}
	}
	if values == nil {
		values = map[any]any{}
	}
	if err := s.decode(o.codec, o.payload, values); err != nil {
		return nil, o, err
	}
	return values, o, nil
}

// decompress decompresses what the compressor id wrote: zstd with the
// store's bounded decoder, an application's with the configured one.
func (s *Store) decompress(id byte, dst, src []byte) error {
	switch {
	case id == CompressorZstd:
		return s.zstd.decompress(dst, src)
	case s.compressor.ID() == id && id >= 0x80:
		return s.compressor.Decompress(dst, src)
	}
	return fmt.Errorf("%w: compressed by compressor %#x, which this store does not have (Config.Compressor)", ErrUnknownFormat, id)
}

// decode decodes a payload with the serializer that wrote it.
func (s *Store) decode(codec byte, payload string, values map[any]any) error {
	if b := builtinFor(codec); b != nil {
		return b.decodeString(payload, values)
	}
	if codec == codecCustom && s.codec == codecCustom {
		if err := s.serializer.Decode(stringBytes(payload), values); err != nil {
			return fmt.Errorf("%w: Serializer: %w", ErrCorrupt, err)
		}
		return nil
	}
	if codec == codecCustom {
		return fmt.Errorf("%w: written by an application Serializer, and Config.Serializer is one of this package's", ErrUnknownFormat)
	}
	return fmt.Errorf("%w: codec %#x", ErrUnknownFormat, codec)
}

// decodeCookie returns the ID in a cookie value, and whether the first (the
// current) key pair decoded it.
func (s *Store) decodeCookie(name, value string) (id string, current bool, err error) {
	// The pairs in order, the first that takes the cookie wins: two pairs
	// may share a hash key (encryption turned on), and then only the order
	// says which made it. securecookie reads what the fast reader refuses,
	// for its error (and for the pairs with a block key).
	var errs securecookie.MultiError
	for i, c := range s.codecs {
		if f := s.fastCodecs[i]; f != nil {
			if id, ok := f.decode(name, value); ok {
				return id, i == 0, nil
			}
		}
		var b []byte
		if err := c.Decode(name, value, &b); err != nil {
			errs = append(errs, err)
			continue
		}
		return string(b), i == 0, nil
	}
	if len(errs) == 1 {
		return "", false, errs[0]
	}
	return "", false, errs
}

// Save writes the session to Redis and sets its cookie. With Options.MaxAge
// < 0 it deletes the session from Redis and expires the cookie. A new session
// gets its ID here. A session whose serialized form exceeds MaxLength is not
// written (ErrTooLarge) and whatever was stored before stays. A session that
// did not change since it was loaded is not written again until its expiry
// is due for renewal (see Config.TouchInterval), and then only its expiry is
// renewed.
func (s *Store) Save(r *http.Request, w http.ResponseWriter, session *sessions.Session) error {
	start := s.began()
	info, err := s.save(r, w, session, false)
	s.observe(r.Context(), OpSave, start, info, err, nil)
	return err
}

// RegenerateID gives the session a new ID, keeps its values, saves it and
// deletes the session stored under the old ID, in one atomic step (in Redis
// Cluster, where the two IDs live on different nodes: the new one is written
// first, then the old one deleted). Call it when a user logs in or gains
// privileges, so that an ID planted before (session fixation) or seen before
// is worth nothing afterwards.
func (s *Store) RegenerateID(r *http.Request, w http.ResponseWriter, session *sessions.Session) error {
	start := s.began()
	info, err := s.save(r, w, session, true)
	s.observe(r.Context(), OpSave, start, info, err, nil)
	return err
}

// regenerateKey marks, in a session's Values, a session whose next Save must
// give it a new ID (RegenerateOnSave). It is never stored.
type regenerateKey struct{}

// RegenerateOnSave makes the next Save of a session of this package act as
// Store.RegenerateID. It is for code that holds the session but not the
// Store, such as framework middleware that saves sessions itself (Echo's
// session.Get, Buffalo's c.Session().Session).
func RegenerateOnSave(session *sessions.Session) {
	session.Values[regenerateKey{}] = true
}

func (s *Store) save(r *http.Request, w http.ResponseWriter, session *sessions.Session, regenerate bool) (opInfo, error) {
	var info opInfo
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
	st := s.stateOf(r, session)
	if opts.MaxAge < 0 {
		ctx, cancel := s.callContext(r.Context())
		defer cancel()
		err := s.logout(ctx, st, session)
		// The cookie goes whatever happened: the user asked to be logged out.
		addSetCookie(w, name, "", opts)
		info.outcome = OutcomeDeleted
		return info, err
	}

	if session.ID == "" && st.id != "" {
		// A cleared ID is a new ID: the old session goes, as with
		// RegenerateID, rather than stay alive beside the new one.
		session.ID, regenerate = st.id, true
	}
	old := s.leaving(st, session, regenerate)
	if regenerate || session.ID == "" {
		session.ID = newID()
	}
	loc := st.loc
	if st.id != session.ID || loc.key == "" {
		var err error
		if loc, err = s.locate(session.ID); err != nil {
			return info, err
		}
	}
	buf := getBuffer()
	written, ttl, err := s.write(r.Context(), st, session, loc, old, opts, buf, &info)
	if err == nil || !written {
		// After a failed write the client may still hold buf in its pipeline:
		// leave it to the garbage collector.
		putBuffer(buf)
	}
	if err != nil {
		return info, err
	}
	st.legacyKey = ""
	if s.maxLifetime > 0 && int64(opts.MaxAge) > ttl {
		// The cookie never outlasts the session's lifetime.
		clamped := *opts
		clamped.MaxAge = int(ttl)
		opts = &clamped
	}
	return info, s.setCookie(w, st, session, loc, opts)
}

// logout deletes the session, whether it was loaded from this store or
// from boj/redistore.
func (s *Store) logout(ctx context.Context, st *sessionState, session *sessions.Session) error {
	st.loaded.found, st.cookie = false, ""
	loc := location{key: st.legacyKey} // a legacy session: its new ID was never stored
	st.legacyKey = ""
	if loc.key == "" {
		id := session.ID
		if id == "" {
			id = st.id // cleared by the application: still this session
		}
		if id == "" {
			return nil
		}
		var err error
		if loc, err = s.locate(id); err != nil {
			return err
		}
	}
	if err := s.layout.remove(ctx, loc); err != nil {
		return redisError("deleting session", err)
	}
	user := st.user
	if st.id == "" {
		user, _ = s.userOf(session.Values)
	}
	if user != "" {
		id := session.ID
		if st.id != "" {
			id = st.id
		}
		s.dropEntries(ctx, []indexEntry{{s.indexKey(user), rawField(id)}})
	}
	st.user = ""
	return nil
}

// leaving returns where a session that Save moves now lives, or nil: a
// session read from boj/redistore moves into this store's layout, and one
// being regenerated leaves its old ID.
func (s *Store) leaving(st *sessionState, session *sessions.Session, regenerate bool) *location {
	switch {
	case st.legacyKey != "":
		return &location{key: st.legacyKey}
	case regenerate:
		if loc, err := s.locate(session.ID); err == nil {
			return &loc
		}
	}
	return nil
}

// setCookie sets the session's cookie after a write, encoding it only when
// the ID changed or was loaded with an old key pair, and keeps the state for
// another Save in the request.
func (s *Store) setCookie(w http.ResponseWriter, st *sessionState, session *sessions.Session, loc location, opts *sessions.Options) error {
	name := session.Name()
	if st.id != session.ID || st.cookie == "" {
		v, err := s.codecs[0].Encode(name, []byte(session.ID))
		if err != nil {
			return fmt.Errorf("redistore: encoding cookie %q: %w", name, err)
		}
		st.cookie = v
	}
	st.id, st.loc = session.ID, loc
	if opts.MaxAge > MaxAgeLimit {
		clamped := *opts
		clamped.MaxAge = MaxAgeLimit
		opts = &clamped
	}
	addSetCookie(w, name, st.cookie, opts)
	return nil
}

// write stores the session if it changed, or renews its expiry if that is
// due, using buf as scratch. With old set it always writes, and deletes the
// session at old in the same step. A session that was loaded is written
// only if it is still as loaded; when another request changed it meanwhile,
// write merges this request's changes into what is stored now and tries
// again (see merge), up to MaxMergeAttempts times. written reports whether
// a command may have referenced buf.
func (s *Store) write(ctx context.Context, st *sessionState, session *sessions.Session, loc location, old *location, opts *sessions.Options, buf *[]byte, info *opInfo) (written bool, kept int64, err error) {
	ttl := int64(opts.MaxAge)
	if ttl == 0 {
		ttl = s.browserTTL
	}
	ttl = min(ttl, maxTTL)
	for attempt := 1; ; attempt++ {
		var c *conflict
		// Each attempt has its own deadline: merges under contention are
		// more calls, not slower ones.
		actx, cancel := s.callContext(ctx)
		w, kept, err := s.writeOnce(actx, st, session, loc, old, ttl, buf, info)
		cancel()
		written = written || w
		switch {
		case err == nil:
			return written, kept, nil
		case errors.Is(err, ErrEnded):
			return written, 0, err
		case !errors.As(err, &c):
			return written, 0, err
		case attempt == MaxMergeAttempts:
			return written, 0, fmt.Errorf("%w: %d attempts to merge this request's changes failed", ErrConflict, attempt)
		case st.legacyKey != "":
			return written, 0, fmt.Errorf("%w: the boj/redistore session changed while it was moved", ErrConflict)
		}
		if err := s.merge(st, session, c.current); err != nil {
			return written, 0, err
		}
		info.merges++
	}
}

// writeOnce is one attempt of write; kept is how long the session is kept.
func (s *Store) writeOnce(ctx context.Context, st *sessionState, session *sessions.Session, loc location, old *location, ttl int64, buf *[]byte, info *opInfo) (written bool, kept int64, err error) {
	user, err := s.userOf(session.Values)
	if err != nil {
		return false, 0, err
	}
	p, err := s.plan(st, session, user, ttl)
	if errors.Is(err, errLifetimeOver) {
		return false, 0, s.endLifetime(ctx, st)
	}
	b, err := s.serializer.Encode((*buf)[:0], session.Values)
	if err != nil {
		if s.codec == codecCustom {
			return false, 0, fmt.Errorf("redistore: Serializer: %w", err)
		}
		return false, 0, err
	}
	*buf = b
	if len(b) > s.maxLength {
		return false, 0, fmt.Errorf("%w: %d bytes serialized, MaxLength is %d", ErrTooLarge, len(b), s.maxLength)
	}
	payload := b[:len(b):len(b)]
	if !p.full && st.loaded.found && st.id == session.ID && st.codec == s.codec && st.payload == bytesToString(payload) {
		touched, err := s.renew(ctx, st, loc, p.ttl)
		info.outcome = OutcomeSkipped
		if touched {
			info.outcome = OutcomeTouched
		}
		return false, p.ttl, err
	}
	ix, err := s.beforeWrite(ctx, p.ix)
	if err != nil {
		return false, 0, err
	}

	// The value goes into the same buffer, after the payload: the bytes the
	// layout fills in, then the envelope.
	n := len(st.payload)
	skipLZ4 := st.incompressible && st.id == session.ID && len(payload) >= n/2 && len(payload) <= 2*n
	var reserved [expiryLen]byte
	b = append(b, reserved[:s.layout.reserve()]...)
	b = appendEnvelopeWith(b, payload, s.codec, s.compressor, s.minCompress, skipLZ4, p.meta)
	*buf = b
	value := b[len(payload):]
	*info = opInfo{outcome: OutcomeWritten, serializedBytes: len(payload), storedBytes: len(value),
		compressed: value[s.layout.reserve()]&flagLZ4 != 0, merges: info.merges}
	var prev stored // the session as loaded, where it lived: written only if still so
	switch {
	case old != nil && st.legacyKey != "":
		prev = stored{raw: st.legacyRaw, found: true}
	case old != nil || st.id == session.ID && st.loc == loc:
		prev = st.loaded
	}
	if old != nil {
		err = s.layout.replace(ctx, *old, loc, value, p.ttl, prev, ix)
	} else {
		err = s.layout.save(ctx, loc, value, p.ttl, prev, ix)
	}
	var c *conflict
	if err != nil && !errors.Is(err, ErrEnded) && !errors.As(err, &c) {
		return true, 0, redisError("saving session", err)
	}
	if err == nil {
		// buf goes back to the pool, so the request no longer holds what
		// is stored: a second Save in this request writes again, on the
		// one condition that the session still exists, so that it cannot
		// bring back a session ended in between.
		st.loaded = stored{raw: anyStored, found: true, left: time.Duration(p.ttl) * time.Second}
		st.codec = 0 // what is stored is not known: never "unchanged"
		st.meta, st.user = p.meta, user
		s.dropEntries(ctx, p.drops)
	}
	return true, p.ttl, err
}

// endLifetime ends a loaded session that reached MaxLifetime (its Redis
// TTL ends it too; this is for a MaxLifetime lowered since it was written).
func (s *Store) endLifetime(ctx context.Context, st *sessionState) error {
	if st.loaded.found {
		if err := s.layout.removeIf(ctx, st.loc, st.loaded); err != nil && !errors.Is(err, ErrEnded) {
			var c *conflict
			if !errors.As(err, &c) {
				return redisError("ending session", err)
			}
			s.layout.remove(ctx, st.loc) // changed meanwhile, and past its lifetime all the same
		}
	}
	if st.user != "" {
		s.dropEntries(ctx, []indexEntry{{s.indexKey(st.user), rawField(st.id)}})
	}
	st.loaded.found = false
	return errLifetimeOver
}

// renew renews the expiry of a session that did not change, if that is due
// (see Config.TouchInterval).
func (s *Store) renew(ctx context.Context, st *sessionState, loc location, ttl int64) (touched bool, err error) {
	full := time.Duration(ttl) * time.Second
	behind := full - st.loaded.left
	window := min(s.touchInterval, full/10)
	if behind >= 0 && behind < window {
		return false, nil
	}
	if err := s.layout.touch(ctx, loc, ttl); err != nil {
		if errors.Is(err, ErrEnded) {
			return true, err
		}
		return true, redisError("renewing session", err)
	}
	st.loaded.left = full
	return true, nil
}

// callContext bounds one Redis call.
func (s *Store) callContext(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, s.timeout)
}

func (s *Store) logKeyError(name, id string, err error) {
	if !s.logKeyErrors {
		return
	}
	reason := "malformed ID"
	var ke *keyError
	if errors.As(err, &ke) {
		reason = ke.gen + " " + ke.reason
	}
	s.logger.Warn("redistore: rejected session ID", "cookie", name, "id", redact(id), "reason", reason)
}

// validCookieName reports whether name is an RFC 6265 token, which net/http
// requires of a cookie name (it silently drops cookies with other names).
func validCookieName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f {
			return false
		}
		switch c {
		case '(', ')', '<', '>', '@', ',', ';', ':', '\\', '"', '/', '[', ']', '?', '=', '{', '}':
			return false
		}
	}
	return true
}
