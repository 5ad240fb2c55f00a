package redistore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"github.com/redis/rueidis"
)

// Mode selects how sessions are laid out in Redis.
type Mode int

const (
	// HashMode packs sessions into 65536 Redis hashes ("buckets"), so that
	// many small sessions share the per-key overhead of Redis. It is the
	// default.
	HashMode Mode = iota
	// StringMode keeps each session under its own key, expired by Redis.
	StringMode
)

// String returns "hash" or "string".
func (m Mode) String() string {
	switch m {
	case HashMode:
		return "hash"
	case StringMode:
		return "string"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// FieldTTL chooses whether HashMode sets Redis's per-field TTLs.
type FieldTTL int

const (
	// FieldTTLAuto sets field TTLs where the server supports them.
	FieldTTLAuto FieldTTL = iota
	// FieldTTLOn always asks for field TTLs; a server without them still
	// gets its buckets cleaned by the writes.
	FieldTTLOn
	// FieldTTLOff never sets field TTLs: writes clean their buckets.
	FieldTTLOff
)

// String returns "FieldTTLAuto", "FieldTTLOn" or "FieldTTLOff".
func (f FieldTTL) String() string {
	switch f {
	case FieldTTLAuto:
		return "FieldTTLAuto"
	case FieldTTLOn:
		return "FieldTTLOn"
	case FieldTTLOff:
		return "FieldTTLOff"
	}
	return fmt.Sprintf("FieldTTL(%d)", int(f))
}

// Defaults for the zero fields of Config and for Store.Options.
const (
	// DefaultKeyPrefix is the namespace of every key the store writes.
	DefaultKeyPrefix = "session:"
	// DefaultCompressMinLength is the serialized size from which a session
	// is LZ4-compressed.
	DefaultCompressMinLength = 400
	// DefaultMaxLength is the largest serialized session accepted: 64 KiB.
	DefaultMaxLength = 64 << 10
	// DefaultTimeout bounds each Redis call.
	DefaultTimeout = time.Second
	// DefaultBrowserSessionTTL is how long the server keeps a session whose
	// cookie lasts for the browser session (Options.MaxAge == 0).
	DefaultBrowserSessionTTL = 30 * 24 * time.Hour
	// DefaultTouchInterval is how stale an unchanged session's expiry may get
	// before Save renews it.
	DefaultTouchInterval = time.Minute
	// DefaultMaxAge is the cookie MaxAge of new sessions, in seconds: 30 days,
	// as in gorilla/sessions.
	DefaultMaxAge = 86400 * 30
)

// MaxAgeLimit is the longest session lifetime, in seconds (about 34 years):
// a larger Options.MaxAge or BrowserSessionTTL counts as this much, for the
// server's expiry and the cookie's alike (a cookie MaxAge past about 292
// years would overflow into an Expires in the past). It keeps expiries
// within the 4-byte field of the stored value until 2106.
const MaxAgeLimit = 1 << 30

const maxTTL = MaxAgeLimit

// Errors that callers can match with errors.Is. Every error from this
// package starts with "redistore: ".
var (
	// ErrInvalidCookie: the session cookie did not decode: tampered with,
	// truncated, signed with a key that is not in KeyPairs, or meant for
	// another cookie name. The request gets a new session.
	ErrInvalidCookie = errors.New("redistore: invalid session cookie")
	// ErrInvalidID: a session ID is malformed, or a key generator rejected it
	// or mapped it to an unusable key. The session is treated as new.
	ErrInvalidID = errors.New("redistore: invalid session ID")
	// ErrTooLarge: a session is larger than Config.MaxLength. Save writes
	// nothing; a stored session over the limit is not decoded.
	ErrTooLarge = errors.New("redistore: session too large")
	// ErrCorrupt: a value in Redis is not a session this package can decode.
	// It is left untouched and the request gets a new session.
	ErrCorrupt = errors.New("redistore: stored session is corrupt")
	// ErrUnavailable: Redis did not answer in time, the connection failed,
	// or Redis refused the command (out of memory, a read-only replica, ...).
	// The cause is wrapped as well.
	ErrUnavailable = errors.New("redistore: Redis unavailable")
	// ErrUnknownFormat: a value in Redis was written by a newer release or by
	// an application Serializer this store is not configured with.
	ErrUnknownFormat = errors.New("redistore: stored session has an unknown format")
)

// Config configures a Store. Client and KeyPairs are required; every other
// zero field takes the default named in its comment.
type Config struct {
	// Client runs every Redis command. The caller owns it; the Store never
	// closes it. NewClient builds one from a URL.
	Client rueidis.Client

	// KeyPairs sign, and optionally encrypt, the session cookie, as in
	// sessions.NewCookieStore: a hash key (32 or 64 random bytes), then a
	// block key (16, 24 or 32 bytes for AES-128/192/256, or nil for a signed
	// cookie in clear), then more pairs for rotation. The first pair encodes;
	// every pair decodes.
	KeyPairs [][]byte

	// Mode is HashMode (the zero value) or StringMode.
	Mode Mode

	// KeyPrefix starts every key the store writes. Zero means
	// DefaultKeyPrefix. Keep it to sessions only: Sweep and the redistore
	// command treat every key under it as a session.
	KeyPrefix string

	// KeyGenerator maps a session ID to its key (StringMode) or to its field
	// inside the bucket (HashMode). It receives only valid IDs (see ValidID).
	// Nil means RawKeyGenerator(KeyPrefix) in StringMode and
	// RawKeyGenerator("") in HashMode: the 16 raw bytes of the ID.
	KeyGenerator func(id string) (string, error)

	// HashKeyGenerator maps a session ID to its bucket key in HashMode. Nil
	// means KeyPrefix followed by the top bits of the ID: Buckets buckets.
	HashKeyGenerator func(id string) (string, error)

	// Buckets is how many hashes HashMode spreads sessions over with the
	// default HashKeyGenerator: a power of two from 1 to MaxBuckets. Zero
	// means DefaultBuckets (65536). Buckets save memory while they stay in
	// Redis's listpack encoding, up to hash-max-listpack-entries (512 by
	// default) sessions each, expired ones included: 65536 buckets serve up
	// to about 16 million sessions at 256 a bucket, and Stats warns as the
	// average nears the limit. Changing it moves every session to another
	// bucket, so it logs everyone out: choose it once.
	Buckets int

	// Serializer encodes Values. Nil means CompactSerializer; GobSerializer
	// and JSONSerializer are provided. Sessions written with any of these
	// three stay readable when this changes.
	Serializer Serializer

	// CompressMinLength is the serialized size from which a session is
	// LZ4-compressed (when that makes it shorter). Zero means
	// DefaultCompressMinLength; a negative value turns compression off.
	CompressMinLength int

	// MaxLength is the largest serialized (uncompressed) session, in bytes.
	// Zero means DefaultMaxLength.
	MaxLength int

	// Timeout bounds each Redis call, within the request's own context.
	// Zero means DefaultTimeout.
	Timeout time.Duration

	// BrowserSessionTTL is how long the server keeps a session whose cookie
	// has MaxAge 0 (it lasts as long as the browser session, which the server
	// cannot see). Zero means DefaultBrowserSessionTTL; it is rounded up to
	// whole seconds.
	BrowserSessionTTL time.Duration

	// TouchInterval lets Save skip writing a session that did not change
	// since it was loaded while its expiry is less than this much (and less
	// than a tenth of its lifetime) behind where a write would put it; when it
	// is further behind, Save only renews the expiry. Zero means
	// DefaultTouchInterval; a negative value renews the expiry on every Save.
	TouchInterval time.Duration

	// Legacy, when set, reads sessions written by boj/redistore and moves
	// them into this store as they are saved (see Legacy).
	Legacy *Legacy

	// FieldTTL says whether HashMode also gives each session's field a Redis
	// TTL (HEXPIRE: Redis 7.4+, Valkey 9+), so that Redis removes expired
	// sessions itself. Zero means FieldTTLAuto: used where the server has it,
	// learned from the first write. The expiry in the value is kept and
	// checked in every case, so mixed fleets and downgrades stay correct.
	FieldTTL FieldTTL

	// SweepBuckets chooses the buckets Sweep visits. Nil means
	// ScanBuckets(): all of them. SampleBuckets(n) visits n at random.
	SweepBuckets BucketSource

	// Logger receives warnings (see LogKeyErrors). Nil means slog.Default().
	Logger *slog.Logger

	// LogKeyErrors logs, as a warning, every session ID that is malformed or
	// that a key generator rejects. IDs are redacted.
	LogKeyErrors bool
}

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
	backend       backend
	mode          Mode
	prefix        string
	keyGen        func(string) (string, error)
	hashKeyGen    func(string) (string, error)
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
	sweepSource   BucketSource
	buckets       buckets
	legacy        *Legacy
	clock         *serverClock
}

var _ sessions.Store = (*Store)(nil)

// New validates cfg, fills its defaults and returns a Store. It starts no
// goroutines and sends nothing to Redis.
func New(cfg Config) (*Store, error) {
	if cfg.Client == nil {
		return nil, errors.New("redistore: Config.Client is nil: pass a rueidis.Client (NewClient builds one from a URL)")
	}
	codecs, err := cookieCodecs(cfg.KeyPairs)
	if err != nil {
		return nil, err
	}
	s := &Store{
		Options: &sessions.Options{
			Path:     "/",
			MaxAge:   DefaultMaxAge,
			HttpOnly: true,
			SameSite: http.SameSiteLaxMode,
		},
		client:        cfg.Client,
		mode:          cfg.Mode,
		prefix:        orDefault(cfg.KeyPrefix, DefaultKeyPrefix),
		keyGen:        cfg.KeyGenerator,
		hashKeyGen:    cfg.HashKeyGenerator,
		serializer:    cfg.Serializer,
		minCompress:   orDefault(cfg.CompressMinLength, DefaultCompressMinLength),
		maxLength:     orDefault(cfg.MaxLength, DefaultMaxLength),
		timeout:       orDefault(cfg.Timeout, DefaultTimeout),
		touchInterval: orDefault(cfg.TouchInterval, DefaultTouchInterval),
		logger:        cfg.Logger,
		logKeyErrors:  cfg.LogKeyErrors,
		codecs:        codecs,
		sweepSource:   cfg.SweepBuckets,
		clock:         newServerClock(),
	}
	if s.sweepSource == nil {
		s.sweepSource = ScanBuckets()
	}
	if cfg.Legacy != nil {
		l := *cfg.Legacy
		l.KeyPrefix = orDefault(l.KeyPrefix, DefaultLegacyKeyPrefix)
		if l.Serializer == nil {
			l.Serializer = GobSerializer{}
		}
		if strings.HasPrefix(l.KeyPrefix, s.prefix) || strings.HasPrefix(s.prefix, l.KeyPrefix) {
			return nil, fmt.Errorf("redistore: Config.Legacy.KeyPrefix %q and KeyPrefix %q overlap: the two layouts need prefixes of their own", l.KeyPrefix, s.prefix)
		}
		s.legacy = &l
	}
	switch s.mode {
	case HashMode:
		s.backend = &hashBackend{c: cfg.Client, fieldTTL: cfg.FieldTTL, clock: s.clock}
	case StringMode:
		if cfg.HashKeyGenerator != nil {
			return nil, errors.New("redistore: Config.HashKeyGenerator is set but Mode is StringMode: unset it, or use HashMode")
		}
		if cfg.Buckets != 0 {
			return nil, errors.New("redistore: Config.Buckets is set but Mode is StringMode: unset it, or use HashMode")
		}
		s.backend = &stringBackend{c: cfg.Client, now: time.Now}
	default:
		return nil, fmt.Errorf("redistore: Config.Mode %d is unknown: use HashMode or StringMode", int(cfg.Mode))
	}
	if cfg.Buckets != 0 && cfg.HashKeyGenerator != nil {
		return nil, errors.New("redistore: Config.Buckets and Config.HashKeyGenerator are both set: Buckets applies to the default generator only; unset one")
	}
	if s.buckets, err = newBuckets(orDefault(cfg.Buckets, DefaultBuckets)); err != nil {
		return nil, err
	}
	if cfg.FieldTTL < FieldTTLAuto || cfg.FieldTTL > FieldTTLOff {
		return nil, fmt.Errorf("redistore: Config.FieldTTL %d is unknown: use FieldTTLAuto, FieldTTLOn or FieldTTLOff", int(cfg.FieldTTL))
	}
	if s.serializer == nil {
		s.serializer = CompactSerializer{}
	}
	s.codec = codecOf(s.serializer)
	if s.maxLength < 0 {
		return nil, fmt.Errorf("redistore: Config.MaxLength is %d: use a positive size, or 0 for DefaultMaxLength", cfg.MaxLength)
	}
	if s.timeout < 0 {
		return nil, fmt.Errorf("redistore: Config.Timeout is %v: use a positive duration, or 0 for DefaultTimeout (a call without a deadline can hang on a dead server)", cfg.Timeout)
	}
	ttl := orDefault(cfg.BrowserSessionTTL, DefaultBrowserSessionTTL)
	if ttl < 0 {
		return nil, fmt.Errorf("redistore: Config.BrowserSessionTTL is %v: use a positive duration, or 0 for DefaultBrowserSessionTTL", cfg.BrowserSessionTTL)
	}
	s.browserTTL = min(int64((ttl+time.Second-1)/time.Second), maxTTL)
	if s.logger == nil {
		s.logger = slog.Default()
	}
	return s, nil
}

// orDefault returns v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// cookieCodecs builds the securecookie codecs: the cookie holds the ID's
// bytes as they are (no gob) and has no age limit of its own, so that the
// server's expiry is the only one and changing Options.MaxAge never makes
// valid cookies fail to decode.
func cookieCodecs(pairs [][]byte) ([]securecookie.Codec, error) {
	if len(pairs) == 0 {
		return nil, errors.New("redistore: Config.KeyPairs is empty: give at least a hash key of 32 or 64 random bytes")
	}
	codecs := make([]securecookie.Codec, 0, (len(pairs)+1)/2)
	for i := 0; i < len(pairs); i += 2 {
		hashKey := pairs[i]
		var blockKey []byte
		if i+1 < len(pairs) {
			blockKey = pairs[i+1]
		}
		if len(hashKey) == 0 {
			return nil, fmt.Errorf("redistore: Config.KeyPairs[%d] (a hash key) is empty: use 32 or 64 random bytes", i)
		}
		switch len(blockKey) {
		case 0, 16, 24, 32:
		default:
			return nil, fmt.Errorf("redistore: Config.KeyPairs[%d] (a block key) is %d bytes: use 16, 24 or 32 bytes, or nil for no encryption", i+1, len(blockKey))
		}
		if len(blockKey) == 0 {
			blockKey = nil
		}
		sc := securecookie.New(hashKey, blockKey).MaxAge(0).SetSerializer(securecookie.NopEncoder{})
		if _, err := sc.Encode("probe", []byte("probe")); err != nil {
			return nil, fmt.Errorf("redistore: Config.KeyPairs[%d:%d]: %w", i, i+2, err)
		}
		codecs = append(codecs, sc)
	}
	return codecs, nil
}

// sessionState is what New learned about a loaded session, kept for Save
// in the request's context (gorilla's registry replaces a session's store, so
// the session itself cannot carry it).
type sessionState struct {
	session *sessions.Session
	next    *sessionState // the state of another session of the request

	id      string        // the ID as loaded, or as last saved
	loc     location      // where id lives
	found   bool          // payload, codec and left describe the stored session
	payload string        // serialized Values as stored
	codec   byte          // codec of payload
	left    time.Duration // server lifetime left when loaded or touched
	cookie  string        // a cookie value for id from the current key pair

	legacyKey string // the boj/redistore key the session was read from

	// incompressible: the stored envelope says LZ4 did not help; Save does
	// not try again at a similar size.
	incompressible bool
	// loaded is what the backend found (its envelope aside).
	loaded stored
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
	session := sessions.NewSession(s, name)
	opts := *s.Options
	session.Options = &opts
	session.IsNew = true
	if !validCookieName(name) {
		return session, fmt.Errorf("redistore: session name %q is not a valid cookie name", name)
	}
	c, err := r.Cookie(name)
	if err != nil {
		return session, nil
	}
	id, current, err := s.decodeCookie(name, c.Value)
	if err != nil {
		return session, fmt.Errorf("%w %q: %w", ErrInvalidCookie, name, err)
	}
	if s.legacy != nil && !ValidID(id) {
		if lid, ok := legacyID(id); ok {
			return s.newFromLegacy(r, session, lid)
		}
	}
	loc, err := s.locate(id)
	if err != nil {
		s.logKeyError(name, id, err)
		return session, err
	}
	ctx, cancel := s.callContext(r.Context())
	got, err := s.backend.load(ctx, loc)
	cancel()
	if err != nil {
		return session, redisError("loading session", err)
	}
	if !got.found {
		return session, nil
	}
	env, left := got.envelope, got.left
	codec, payload, flags, err := openEnvelope(env, s.maxLength)
	if err == nil {
		if codec == codecCompact {
			// Size the map once instead of growing it entry by entry.
			if n, k := uvarintString(payload); k > 0 && n <= uint64(len(payload)/2) {
				session.Values = make(map[any]any, n)
			}
		}
		err = s.decode(codec, payload, session.Values)
	}
	if err != nil {
		clear(session.Values)
		return session, err
	}
	session.ID = id
	session.IsNew = false
	st := &sessionState{session: session, id: id, loc: loc, found: true, payload: payload, codec: codec, left: left,
		incompressible: flags&flagIncompressible != 0}
	got.envelope = ""
	st.loaded = got
	if current {
		st.cookie = c.Value
	}
	s.attach(r, st)
	return session, nil
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
	var errs securecookie.MultiError
	for i, c := range s.codecs {
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
	return s.save(r, w, session, false)
}

// RegenerateID gives the session a new ID, keeps its values, saves it and
// deletes the session stored under the old ID, in one atomic step (in Redis
// Cluster, where the two IDs live on different nodes: the new one is written
// first, then the old one deleted). Call it when a user logs in or gains
// privileges, so that an ID planted before (session fixation) or seen before
// is worth nothing afterwards.
func (s *Store) RegenerateID(r *http.Request, w http.ResponseWriter, session *sessions.Session) error {
	return s.save(r, w, session, true)
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

func (s *Store) save(r *http.Request, w http.ResponseWriter, session *sessions.Session, regenerate bool) error {
	if _, ok := session.Values[regenerateKey{}]; ok {
		delete(session.Values, regenerateKey{})
		regenerate = true
	}
	name := session.Name()
	if !validCookieName(name) {
		return fmt.Errorf("redistore: session name %q is not a valid cookie name", name)
	}
	opts := session.Options
	if opts == nil {
		opts = s.Options
	}
	st := s.stateOf(r, session)
	ctx, cancel := s.callContext(r.Context())
	defer cancel()

	if opts.MaxAge < 0 {
		var err error
		if st.legacyKey != "" {
			// A legacy session: its new ID was never stored.
			if err = s.backend.remove(ctx, location{key: st.legacyKey}); err != nil {
				err = redisError("deleting session", err)
			}
			st.legacyKey = ""
		} else if session.ID != "" {
			var loc location
			if loc, err = s.locate(session.ID); err == nil {
				if err = s.backend.remove(ctx, loc); err != nil {
					err = redisError("deleting session", err)
				}
			}
		}
		// The cookie goes whatever happened: the user asked to be logged out.
		http.SetCookie(w, sessions.NewCookie(name, "", opts))
		st.found, st.cookie = false, ""
		return err
	}

	var old *location
	switch {
	case st.legacyKey != "":
		// A session read from boj/redistore moves into this store's layout.
		old = &location{key: st.legacyKey}
	case regenerate:
		if loc, err := s.locate(session.ID); err == nil {
			old = &loc
		}
	}
	if regenerate {
		session.ID = ""
	}
	if session.ID == "" {
		session.ID = newID()
	}
	loc := st.loc
	if st.id != session.ID || loc.key == "" {
		var err error
		if loc, err = s.locate(session.ID); err != nil {
			return err
		}
	}

	buf := getBuffer()
	written, err := s.write(ctx, st, session, loc, old, opts, buf)
	if err == nil || !written {
		// After a failed write the client may still hold buf in its pipeline:
		// leave it to the garbage collector.
		putBuffer(buf)
	}
	if err != nil {
		return err
	}

	st.legacyKey = ""
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
	http.SetCookie(w, sessions.NewCookie(name, st.cookie, opts))
	return nil
}

// write stores the session if it changed, or renews its expiry if that is
// due, using buf as scratch. With old set it always writes, and deletes the
// session at old in the same step. written reports whether a command may have
// referenced buf.
func (s *Store) write(ctx context.Context, st *sessionState, session *sessions.Session, loc location, old *location, opts *sessions.Options, buf *[]byte) (written bool, err error) {
	b, err := s.serializer.Encode((*buf)[:0], session.Values)
	if err != nil {
		if s.codec == codecCustom {
			return false, fmt.Errorf("redistore: Serializer: %w", err)
		}
		return false, err
	}
	*buf = b
	if len(b) > s.maxLength {
		return false, fmt.Errorf("%w: %d bytes serialized, MaxLength is %d", ErrTooLarge, len(b), s.maxLength)
	}
	payload := b[:len(b):len(b)]
	ttl := int64(opts.MaxAge)
	if ttl == 0 {
		ttl = s.browserTTL
	}
	ttl = min(ttl, maxTTL)
	full := time.Duration(ttl) * time.Second

	if st.found && st.id == session.ID && st.codec == s.codec && st.payload == bytesToString(payload) {
		behind := full - st.left
		window := min(s.touchInterval, full/10)
		if behind >= 0 && behind < window {
			return false, nil
		}
		if err := s.backend.touch(ctx, loc, ttl); err != nil {
			return false, redisError("renewing session", err)
		}
		st.left = full
		return false, nil
	}

	// The value goes into the same buffer, after the payload: the bytes the
	// backend fills in, then the envelope.
	n := len(st.payload)
	skipLZ4 := st.incompressible && st.id == session.ID && len(payload) >= n/2 && len(payload) <= 2*n
	var reserved [expiryLen]byte
	b = append(b, reserved[:s.backend.reserve()]...)
	b = appendEnvelope(b, payload, s.codec, s.minCompress, skipLZ4)
	*buf = b
	value := b[len(payload):]
	if old != nil {
		err = s.backend.replace(ctx, *old, loc, value, ttl)
	} else {
		var prev stored
		if st.id == session.ID && st.loc == loc {
			prev = st.loaded
		}
		err = s.backend.save(ctx, loc, value, ttl, prev)
	}
	if err != nil {
		return true, redisError("saving session", err)
	}
	// buf goes back to the pool; a second Save in this request writes again.
	st.found = false
	return true, nil
}

// redisError classifies a failed Redis call: a key of the wrong type is
// data that is not a session (ErrCorrupt); anything else means Redis could
// not serve the call (ErrUnavailable).
func redisError(op string, err error) error {
	if re, ok := rueidis.IsRedisErr(err); ok && strings.HasPrefix(re.Error(), "WRONGTYPE") {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, op, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
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
