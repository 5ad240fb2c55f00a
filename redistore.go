package redistore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"github.com/redis/rueidis"
	"github.com/redisession/redistore/internal/codec"
	"github.com/redisession/redistore/internal/cookie"
	"github.com/redisession/redistore/internal/envelope"
	"github.com/redisession/redistore/internal/seal"
	"github.com/redisession/redistore/internal/strbytes"
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
	fastCodecs    []*cookie.Decoder // codecs[i]'s allocation-free reader, or nil
	sweepSource   BucketSource
	legacy        *Legacy
	clock         *serverClock
	userKey       string
	clientIP      func(*http.Request) string
	maxLifetime   int64 // seconds; 0: none
	observer      Observer
	observeUsers  bool
	compressor    Compressor
	zstd          *envelope.ZstdDecoder
	ring          *seal.Ring      // Config.EncryptionKeys; nil: values in clear
	sealer        envelope.Sealer // ring, or a nil interface without one
	writeClear    bool            // Config.WriteUnsealed: the ring only opens
	rekeyNoLua    atomic.Bool     // Rekey found the server refuses scripts
	// wall is this machine's clock, which a session's start and MaxLifetime
	// count by; nil: time.Now (tests set it).
	wall      func() time.Time
	states    states // what requests hold for their sessions (request.go)
	moveKey   []byte // the current hash key: names the ID a boj/redistore session moves to
	walkCount int    // the SCAN COUNT of Sessions; 0: scanCount (tests lower it)
}

var _ sessions.Store = (*Store)(nil)

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
//
// The name is the cookie's, so it must be a cookie name (an RFC 6265
// token: letters, digits and !#$%&'*+-.^_`|~). Another name gives a new
// session and an error, and Save refuses it: net/http would silently drop
// its cookie, and a session saved under it could never be found again.
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
			return s.newFromLegacy(r, session, lid)
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
		return session, info, s.loadFailed(session, id, loc, err)
	}
	if !got.found {
		return session, info, nil
	}
	cookie := ""
	if current {
		cookie = c.Value
	}
	return s.loaded(r, session, id, loc, got, cookie)
}

// loadFailed records what a failed read of session id at loc leaves the
// request, and returns the error classified. Redis failed: the session may
// well be alive, and a Save of the new one must not replace the browser's
// cookie (see phaseUnread). What Redis answered is not a session (a
// truncated value; in StringMode a key of another type, which is the
// session's alone): a logout deletes it. (In HashMode a bucket of another
// type holds no session, and stays.)
func (s *Store) loadFailed(session *sessions.Session, id string, loc location, err error) error {
	raw := err
	err = redisError("loading session", err)
	switch {
	case errors.Is(err, ErrUnavailable):
		s.states.set(session, &sessionState{phase: phaseUnread, id: id, loc: loc})
	case errors.Is(raw, ErrCorrupt) || errors.Is(err, ErrCorrupt) && loc.field == "":
		s.states.set(session, &sessionState{unopened: &unopenedSession{id: id, loc: loc}})
	}
	return err
}

// loaded makes session the stored session got, found under id at loc, and
// records the request's state of it; cookie is a cookie value for id from
// the current key pair, or "".
func (s *Store) loaded(r *http.Request, session *sessions.Session, id string, loc location, got stored, cookie string) (*sessions.Session, opInfo, error) {
	info := opInfo{outcome: OutcomeMiss, storedBytes: len(got.raw)}
	o, err := s.open(got.envelope, session, loc)
	if err != nil {
		u := &unopenedSession{id: id, loc: loc}
		if o.Meta.HasUser {
			u.user = o.Meta.User
		}
		s.states.set(session, &sessionState{unopened: u})
		return session, info, err
	}
	if s.pastLifetime(o.Meta) {
		// Past MaxLifetime (lowered since it was written): it ends now.
		clear(session.Values)
		ctx, cancel := s.callContext(r.Context())
		defer cancel()
		return session, info, s.removeExpired(ctx, loc, got)
	}
	session.ID = id
	session.IsNew = false
	st := &sessionState{phase: phaseLoaded, id: id, loc: loc, snap: s.snapshotOf(got, o, session.Values), maxAge: session.Options.MaxAge, cookie: cookie}
	s.states.set(session, st)
	info.outcome, info.serializedBytes, info.compressed = OutcomeHit, len(o.Payload), o.Flags&envelope.FlagCompressed != 0
	return session, info, nil
}

// opened is what a stored envelope says besides the values.
type opened struct {
	envelope.Opened
	// canonical: the payload is the only encoding of its values (see
	// decode).
	canonical bool
}

// snapshotOf is the snapshot of a stored session, got as read, o as its
// envelope says and values as decoded.
func (s *Store) snapshotOf(got stored, o opened, values map[any]any) snapshot {
	got.envelope = ""
	user := o.Meta.User
	if !o.Meta.HasUser {
		// Written before the metadata named the user.
		if u, err := s.userOf(values); err == nil && u != "" {
			user = userDigest(u)
		}
	}
	return snapshot{stored: got, payload: o.Payload, codec: o.Codec, meta: o.Meta, user: user,
		incompressible: o.Flags&envelope.FlagIncompressible != 0, canonical: o.canonical,
		reseal: s.ring != nil && !s.writeClear && o.SealedBy < 0}
}

// wallNow is this machine's time, by which sessions start and MaxLifetime
// ends them.
func (s *Store) wallNow() time.Time {
	if s.wall != nil {
		return s.wall()
	}
	return time.Now()
}

// pastLifetime reports whether a session with this metadata reached
// MaxLifetime.
func (s *Store) pastLifetime(m envelope.Meta) bool {
	return s.maxLifetime > 0 && m.Start != 0 && s.wallNow().Unix() >= m.Start+s.maxLifetime
}

// open decodes a stored envelope, read at loc, into session.Values, leaving them empty
// on error.
func (s *Store) open(env string, session *sessions.Session, loc location) (opened, error) {
	values, o, err := s.openValues(env, session.Values, loc)
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
//
// loc is where the envelope was read: a sealed envelope opens only there.
func (s *Store) openValues(env string, into map[any]any, loc location) (map[any]any, opened, error) {
	var o opened
	var err error
	var ad []byte
	if s.sealer != nil && len(env) > 0 && env[0]>>4 == envelope.VersionSealed {
		ad = sealedAt(loc)
	}
	if o.Opened, err = envelope.Open(env, s.maxLength, s.decompress, s.sealer, ad); err != nil {
		// What is in clear still says what it says (the start, the
		// compressor): Sessions and Lookup report it, MaxLifetime ends it.
		if h, herr := envelope.ReadHeader(env); herr == nil {
			o.Codec, o.Flags, o.Meta, o.Compressor, o.SealedBy = h.Codec, h.Flags, h.Meta, h.Compressor, -1
		}
		return nil, o, envelopeError(err)
	}
	values := into
	if o.Codec == envelope.CodecCompact {
		// Size the map once instead of growing it entry by entry.
		if n, ok := codec.Count(o.Payload); ok {
			values = make(map[any]any, n)
		}
	}
	if values == nil {
		values = map[any]any{}
	}
	if o.canonical, err = s.decode(o.Codec, o.Payload, values); err != nil {
		return nil, o, err
	}
	return values, o, nil
}

// sealedAt is the associated data a value stored at loc is sealed with: a
// sealed value opens only where it was written.
func sealedAt(loc location) []byte {
	ad := make([]byte, 0, len(loc.key)+1+len(loc.field)+envelope.FrontRoom)
	ad = append(ad, loc.key...)
	ad = append(ad, 0)
	return append(ad, loc.field...)
}

// decompress decompresses what the compressor id wrote: zstd with the
// store's bounded decoder, an application's with the configured one.
func (s *Store) decompress(id byte, dst, src []byte) error {
	switch {
	case id == CompressorZstd:
		return s.zstd.Decompress(dst, src)
	case s.compressor.ID() == id && id >= 0x80:
		err := s.compressor.Decompress(dst, src)
		if errors.Is(err, ErrUnknownFormat) {
			return unknownFormat{err: err}
		}
		return err
	}
	return &envelope.Error{Kind: envelope.ErrUnknownFormat,
		Err: fmt.Errorf("compressed by compressor %#x, which this store does not have (Config.Compressor)", id)}
}

// decode decodes a payload with the serializer that wrote it. canonical
// reports that the payload is the only encoding of the values it holds, so
// that other bytes from the same serializer are other values: JSON's (it
// sorts map keys), and the compact codec's when it holds no gob-encoded
// item (gob writes maps in random order).
func (s *Store) decode(codecID byte, payload string, values map[any]any) (canonical bool, err error) {
	switch b := builtinFor(codecID); {
	case codecID == envelope.CodecCompact:
		canonical, err := codec.Decode(payload, values)
		return canonical, codecError(err)
	case b != nil:
		return codecID == envelope.CodecJSON, b.decodeString(payload, values)
	case codecID == envelope.CodecCustom && s.codec == envelope.CodecCustom:
		if err := s.serializer.Decode(strbytes.Bytes(payload), values); err != nil {
			return false, fmt.Errorf("%w: Serializer: %w", ErrCorrupt, err)
		}
		return false, nil
	case codecID == envelope.CodecCustom:
		return false, fmt.Errorf("%w: written by an application Serializer, and Config.Serializer is one of this package's", ErrUnknownFormat)
	}
	return false, fmt.Errorf("%w: codec %#x", ErrUnknownFormat, codecID)
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
			if id, ok := f.Decode(name, value); ok {
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
	if session.Values == nil {
		session.Values = map[any]any{}
	}
	session.Values[regenerateKey{}] = true
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
