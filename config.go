package redistore

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"github.com/redis/rueidis"
	"github.com/redisession/redistore/internal/codec"
	"github.com/redisession/redistore/internal/cookie"
	"github.com/redisession/redistore/internal/envelope"
	"github.com/redisession/redistore/internal/seal"
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
	// FieldTTLAuto sets field TTLs where the server supports them and
	// keeps hashes with field TTLs compact (Redis 7.4+; not Valkey).
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
	// ErrEnded: Save of a session loaded from Redis found it gone: logged
	// out, given a new ID or revoked by another request, or expired, while
	// this request held it. Save wrote nothing and set no cookie; the
	// session is not brought back.
	ErrEnded = errors.New("redistore: the session ended while the request held it")
	// ErrConflict: Save of a loaded session found it changed by other
	// requests so many times in a row (MaxMergeAttempts) that it could not
	// merge its own changes in; it wrote nothing.
	ErrConflict = errors.New("redistore: the session kept changing under concurrent requests")
	// ErrNoScripting: the server refuses Lua scripts (Valkey 9 built or
	// run without its Lua engine, or an ACL user without @scripting), which
	// every write needs but StringMode's writes that leave users' indexes
	// alone, on a server with compare-and-set for strings (Valkey 8.1+).
	// Reads work. The error names the server's answer and what to change.
	ErrNoScripting = errors.New("redistore: the Redis server runs no Lua scripts, which this write needs: " +
		"enable its Lua engine (Valkey 9: a build with Lua, or its Lua module loaded) or allow @scripting to the ACL user, " +
		"or use StringMode without UserKey on a server with SET IFEQ (Valkey 8.1+)")
)

// internalError is an error of an internal package (internal/codec,
// internal/envelope) as the store reports it: it matches this package's
// sentinel of its kind and the internal error, and its text is the
// sentinel's followed by what was wrong, as the store's errors have always
// read ("redistore: stored session is corrupt: bad metadata block").
type internalError struct {
	sentinel error // ErrCorrupt, ErrTooLarge or ErrUnknownFormat
	detail   error // what was wrong, in the internal package's words
	err      error // the internal package's error
}

func (e *internalError) Error() string   { return e.sentinel.Error() + ": " + e.detail.Error() }
func (e *internalError) Unwrap() []error { return []error{e.sentinel, e.err} }

// codecError reports an error of the compact codec's decoder (which all
// match codec.ErrCorrupt) as ErrCorrupt.
func codecError(err error) error {
	if !errors.Is(err, codec.ErrCorrupt) {
		return err
	}
	return &internalError{sentinel: ErrCorrupt, detail: err, err: err}
}

// envelopeError reports an error of opening an envelope under this
// package's sentinel of its kind.
func envelopeError(err error) error {
	if u, ok := err.(unknownFormat); ok {
		return u.err
	}
	var e *envelope.Error
	if !errors.As(err, &e) {
		return err
	}
	switch e.Kind {
	case envelope.ErrCorrupt:
		return &internalError{sentinel: ErrCorrupt, detail: e.Err, err: e}
	case envelope.ErrTooLarge:
		return &internalError{sentinel: ErrTooLarge, detail: e.Err, err: e}
	case envelope.ErrUnknownFormat:
		return &internalError{sentinel: ErrUnknownFormat, detail: e.Err, err: e}
	}
	return err
}

// unknownFormat carries an application compressor's error that matches
// ErrUnknownFormat through envelope.Open, which returns such errors as they
// are (the others it reports as corrupt), to envelopeError, which hands the
// application's error back unchanged. The error is a named field, not
// embedded: go doc takes an embedded error for a type of this package, and
// would then list New and Zstd apart from the types they return.
type unknownFormat struct{ err error }

func (e unknownFormat) Error() string        { return e.err.Error() }
func (e unknownFormat) Is(target error) bool { return target == envelope.ErrUnknownFormat }
func (e unknownFormat) Unwrap() error        { return e.err }

// MaxMergeAttempts bounds how many times Save merges its changes into a
// session that other requests changed meanwhile, before ErrConflict.
const MaxMergeAttempts = 8

// redisError classifies a failed Redis call: a key of the wrong type is
// data that is not a session (ErrCorrupt); anything else means Redis could
// not serve the call (ErrUnavailable).
func redisError(op string, err error) error {
	re, ok := rueidis.IsRedisErr(err)
	switch {
	case errors.Is(err, ErrCorrupt):
		return fmt.Errorf("%s: %w", op, err) // what Redis answered is not a session
	case ok && strings.HasPrefix(re.Error(), "WRONGTYPE"):
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, op, err)
	case ok && refusesScripts(re.Error()):
		return fmt.Errorf("%w (%s: %w)", ErrNoScripting, op, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

// refusesScripts reports whether a server's error says it runs no scripts:
// no scripting engine (Valkey without Lua), or an ACL that denies them.
func refusesScripts(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "scripting engine") ||
		strings.HasPrefix(m, "noperm") && (strings.Contains(m, "eval") || strings.Contains(m, "script"))
}

// Config configures a Store. Client and KeyPairs are required; every other
// zero field takes the default named in its comment.
type Config struct {
	// Client runs every Redis command. The caller owns it; the Store never
	// closes it. NewClient builds one from a URL.
	Client rueidis.Client

	// KeyPairs sign, and optionally encrypt, the session cookie, as in
	// sessions.NewCookieStore: a hash key, then a block key (16, 24 or 32
	// bytes for AES-128/192/256, or nil for a signed cookie in clear), then
	// more pairs for rotation. The first pair signs every new cookie: its
	// hash key must be at least MinHashKeyLength (32) random bytes. Later
	// pairs only read cookies issued before, and may be shorter (the key
	// of a store being moved from, say; New logs a warning once, never
	// the key): a cookie they read is signed with the first pair at its
	// next Save.
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

	// Compressor compresses sessions of CompressMinLength bytes or more. Nil
	// means LZ4(); Zstd(level) stores large sessions in less. Values
	// written with either stay readable when this changes.
	Compressor Compressor

	// EncryptionKeys seal every session's values at rest: each key is 32
	// random bytes (from crypto/rand, or `openssl rand -hex 32`); the first
	// seals what the store writes, and every key opens what it reads. A new
	// key is deployed second first (it opens, nothing is sealed with it),
	// then first, and the old one stays after it until `redistore rekey`
	// (or Store.Rekey) has re-sealed every session. Values are sealed with
	// XChaCha20-Poly1305 and bound to the key and field they are stored
	// under; the expiry and the envelope's header stay in clear, so the
	// layouts' scripts, Sweep, Stats and doctor need no key. Nil: values
	// are stored in clear. Sessions written in clear stay readable and are
	// sealed at their next Save; a value sealed by a key not in the ring
	// is ErrCorrupt. See docs/sealing.md.
	EncryptionKeys [][]byte

	// WriteUnsealed makes a store with EncryptionKeys write values in
	// clear: its keys only open sealed values. It is the first step of
	// turning sealing on across many instances (every instance must open
	// sealed values before any writes one), and the way back (Rekey then
	// writes every sealed session in clear, after which the keys can go).
	WriteUnsealed bool

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

	// UserKey names the Values key that holds the signed-in user's ID (a
	// string or an integer). When set, Save keeps an index of each user's
	// sessions, so that UserSessions lists them and DeleteUserSessions ends
	// them ("log out everywhere"). Empty means no index.
	UserKey string

	// ClientIP, with UserKey, gives the client's address that a session
	// records when it signs in, for UserSessions (UserSession.IP). Only the
	// application knows the real address behind its proxies, and an
	// address is personal data: nil (the default) records none.
	ClientIP func(r *http.Request) string

	// MaxLifetime ends a session this long after it began, however often it
	// is saved (OWASP's absolute timeout); RegenerateID keeps its start.
	// Zero means no limit. It is rounded down to whole seconds.
	MaxLifetime time.Duration

	// Observer, when set, is told what each Get, Save, Delete, Sweep and
	// user method did (see Event): for metrics and traces, e.g. with the
	// redistoreotel module. Nil costs nothing.
	Observer Observer

	// ObserveUserIDs puts the user's ID in the Events of UserSessions and
	// DeleteUserSession(s). Off by default: user IDs are personal data, and
	// a metric labeled with them has no bound on its series.
	ObserveUserIDs bool

	// Legacy, when set, reads sessions written by boj/redistore and moves
	// them into this store as they are saved (see Legacy).
	Legacy *Legacy

	// FieldTTL says whether HashMode also gives each session's field a Redis
	// TTL (HEXPIRE: Redis 7.4+, Valkey 9+), so that Redis removes expired
	// sessions itself. Zero means FieldTTLAuto: used where the server has it
	// and keeps a hash whose fields have TTLs compact (Redis 7.4+, as
	// listpackex), learned from the first read or write; not on Valkey,
	// where such a hash is a hashtable (at 1 M sessions of 150 B, 145
	// bytes a session against 100 without field TTLs), and writes clean
	// their buckets instead. The expiry in the value is kept and checked in
	// every case, so mixed fleets and downgrades stay correct.
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

// New validates cfg, fills its defaults and returns a Store. It starts no
// goroutines and sends nothing to Redis.
func New(cfg Config) (*Store, error) {
	if cfg.Client == nil {
		return nil, errors.New("redistore: Config.Client is nil: pass a rueidis.Client (NewClient builds one from a URL)")
	}
	codecs, fast, short, err := cookieCodecs(cfg.KeyPairs)
	if err != nil {
		return nil, err
	}
	s := &Store{
		moveKey: cfg.KeyPairs[0],
		Options: &sessions.Options{
			Path:     "/",
			MaxAge:   DefaultMaxAge,
			HttpOnly: true,
			SameSite: http.SameSiteLaxMode,
		},
		client:        cfg.Client,
		prefix:        orDefault(cfg.KeyPrefix, DefaultKeyPrefix),
		serializer:    cfg.Serializer,
		minCompress:   orDefault(cfg.CompressMinLength, DefaultCompressMinLength),
		maxLength:     orDefault(cfg.MaxLength, DefaultMaxLength),
		timeout:       orDefault(cfg.Timeout, DefaultTimeout),
		touchInterval: orDefault(cfg.TouchInterval, DefaultTouchInterval),
		logger:        cfg.Logger,
		logKeyErrors:  cfg.LogKeyErrors,
		codecs:        codecs,
		fastCodecs:    fast,
		sweepSource:   cfg.SweepBuckets,
		clock:         newServerClock(),
		userKey:       cfg.UserKey,
		clientIP:      cfg.ClientIP,
		compressor:    cfg.Compressor,
		observer:      cfg.Observer,
		observeUsers:  cfg.ObserveUserIDs,
		maxLifetime:   int64(cfg.MaxLifetime / time.Second),
	}
	if cfg.MaxLifetime < 0 || cfg.MaxLifetime > 0 && s.maxLifetime == 0 {
		return nil, fmt.Errorf("redistore: Config.MaxLifetime is %v: use at least a second, or 0 for no limit", cfg.MaxLifetime)
	}
	if s.sweepSource == nil {
		s.sweepSource = ScanBuckets()
	}
	if s.legacy, err = legacyConfig(cfg.Legacy, s.prefix); err != nil {
		return nil, err
	}
	if s.layout, err = newLayout(cfg, s.prefix, s.timeout, s.clock); err != nil {
		return nil, err
	}
	if s.serializer == nil {
		s.serializer = CompactSerializer{}
	}
	if s.compressor == nil {
		s.compressor = LZ4()
	}
	switch s.compressor.(type) {
	case envelope.LZ4, *envelope.Zstd:
	default:
		if s.compressor.ID() < 0x80 {
			return nil, fmt.Errorf("redistore: Config.Compressor %s has ID %#x: an application's compressor uses 0x80 to 0xff (lower IDs are this package's)", s.compressor.Name(), s.compressor.ID())
		}
	}
	s.zstd = envelope.NewZstdDecoder(s.maxLength)
	if cfg.EncryptionKeys != nil {
		ring, err := seal.NewRing(cfg.EncryptionKeys)
		if err != nil {
			return nil, fmt.Errorf("redistore: Config.EncryptionKeys: %v", err)
		}
		s.ring, s.sealer = ring, ring
	}
	if cfg.WriteUnsealed && cfg.EncryptionKeys == nil {
		return nil, errors.New("redistore: Config.WriteUnsealed is set without EncryptionKeys: it keeps a store that has keys from sealing; without keys every value is written in clear already")
	}
	s.writeClear = cfg.WriteUnsealed
	s.codec = codecOf(s.serializer)
	if err := s.checkLimits(cfg); err != nil {
		return nil, err
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	for _, i := range short {
		s.logger.Warn("redistore: a short hash key in Config.KeyPairs reads cookies issued before, and signs none; drop it once they have been re-signed", "pair", i, "bytes", len(cfg.KeyPairs[i]), "min", MinHashKeyLength)
	}
	return s, nil
}

// newLayout builds the layout cfg.Mode names, with the key generators'
// defaults resolved.
func newLayout(cfg Config, prefix string, timeout time.Duration, clock *serverClock) (layout, error) {
	if cfg.FieldTTL < FieldTTLAuto || cfg.FieldTTL > FieldTTLOff {
		return nil, fmt.Errorf("redistore: Config.FieldTTL %d is unknown: use FieldTTLAuto, FieldTTLOn or FieldTTLOff", int(cfg.FieldTTL))
	}
	switch cfg.Mode {
	case HashMode:
		if cfg.Buckets != 0 && cfg.HashKeyGenerator != nil {
			return nil, errors.New("redistore: Config.Buckets and Config.HashKeyGenerator are both set: Buckets applies to the default generator only; unset one")
		}
		bs, err := newBuckets(orDefault(cfg.Buckets, DefaultBuckets))
		if err != nil {
			return nil, err
		}
		l := &hashLayout{c: cfg.Client, prefix: prefix, timeout: timeout, buckets: bs,
			fieldGen: cfg.KeyGenerator, bucketGen: cfg.HashKeyGenerator, fieldTTL: cfg.FieldTTL, clock: clock}
		if l.fieldGen != nil || l.bucketGen != nil {
			l.fieldGen = orFunc(l.fieldGen, RawKeyGenerator(""))
			l.bucketGen = orFunc(l.bucketGen, l.defaultBucketGen)
		}
		return l, nil
	case StringMode:
		if cfg.HashKeyGenerator != nil {
			return nil, errors.New("redistore: Config.HashKeyGenerator is set but Mode is StringMode: unset it, or use HashMode")
		}
		if cfg.Buckets != 0 {
			return nil, errors.New("redistore: Config.Buckets is set but Mode is StringMode: unset it, or use HashMode")
		}
		return &stringLayout{c: cfg.Client, prefix: prefix, keyGen: cfg.KeyGenerator, now: time.Now, clock: clock}, nil
	}
	return nil, fmt.Errorf("redistore: Config.Mode %d is unknown: use HashMode or StringMode", int(cfg.Mode))
}

// orFunc returns f, or def when f is nil.
func orFunc(f, def func(string) (string, error)) func(string) (string, error) {
	if f == nil {
		return def
	}
	return f
}

// legacyConfig fills the defaults of a Legacy configuration and checks it.
func legacyConfig(cfg *Legacy, prefix string) (*Legacy, error) {
	if cfg == nil {
		return nil, nil
	}
	l := *cfg
	l.KeyPrefix = orDefault(l.KeyPrefix, DefaultLegacyKeyPrefix)
	if l.Serializer == nil {
		l.Serializer = GobSerializer{}
	}
	if strings.HasPrefix(l.KeyPrefix, prefix) || strings.HasPrefix(prefix, l.KeyPrefix) {
		return nil, fmt.Errorf("redistore: Config.Legacy.KeyPrefix %q and KeyPrefix %q overlap: the two layouts need prefixes of their own", l.KeyPrefix, prefix)
	}
	return &l, nil
}

// checkLimits checks the sizes and durations of cfg and fills
// browserTTL.
func (s *Store) checkLimits(cfg Config) error {
	if s.maxLength < 0 {
		return fmt.Errorf("redistore: Config.MaxLength is %d: use a positive size, or 0 for DefaultMaxLength", cfg.MaxLength)
	}
	if s.timeout < 0 {
		return fmt.Errorf("redistore: Config.Timeout is %v: use a positive duration, or 0 for DefaultTimeout (a call without a deadline can hang on a dead server)", cfg.Timeout)
	}
	ttl := orDefault(cfg.BrowserSessionTTL, DefaultBrowserSessionTTL)
	if ttl < 0 {
		return fmt.Errorf("redistore: Config.BrowserSessionTTL is %v: use a positive duration, or 0 for DefaultBrowserSessionTTL", cfg.BrowserSessionTTL)
	}
	s.browserTTL = min(int64((ttl+time.Second-1)/time.Second), maxTTL)
	return nil
}

// orDefault returns v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// MinHashKeyLength is the shortest hash key New accepts: a shorter HMAC key
// can be guessed, and then any cookie forged.
const MinHashKeyLength = 32

// cookieCodecs builds the securecookie codecs: the cookie holds the ID's
// bytes as they are (no gob) and has no age limit of its own, so that the
// server's expiry is the only one and changing Options.MaxAge never makes
// valid cookies fail to decode. For each pair without a block key it also
// builds the allocation-free reader of its values (cookie.Decoder); fast[i]
// is nil for a pair with one.
func cookieCodecs(pairs [][]byte) (codecs []securecookie.Codec, fast []*cookie.Decoder, short []int, err error) {
	if len(pairs) == 0 {
		return nil, nil, nil, errors.New("redistore: Config.KeyPairs is empty: give at least a hash key of 32 or 64 random bytes")
	}
	codecs = make([]securecookie.Codec, 0, (len(pairs)+1)/2)
	for i := 0; i < len(pairs); i += 2 {
		hashKey := pairs[i]
		var blockKey []byte
		if i+1 < len(pairs) {
			blockKey = pairs[i+1]
		}
		switch {
		case i == 0 && len(hashKey) < MinHashKeyLength:
			return nil, nil, nil, fmt.Errorf("redistore: Config.KeyPairs[0], the hash key every new cookie is signed with, is %d bytes: "+
				"use at least %d random bytes, from securecookie.GenerateRandomKey(32) (or `openssl rand -hex 32` for an environment variable holding it in hex). "+
				"To keep users signed in with cookies signed by a shorter key (moving from boj/redistore, say): put the new key first and the old pair after it, "+
				"KeyPairs: {newHashKey, nil, oldHashKey, oldBlockKey}; old cookies keep working and are signed with the new key at their next Save",
				len(hashKey), MinHashKeyLength)
		case len(hashKey) == 0:
			return nil, nil, nil, fmt.Errorf("redistore: Config.KeyPairs[%d] (a hash key) is empty", i)
		case len(hashKey) < MinHashKeyLength:
			short = append(short, i)
		}
		switch len(blockKey) {
		case 0, 16, 24, 32:
		default:
			return nil, nil, nil, fmt.Errorf("redistore: Config.KeyPairs[%d] (a block key) is %d bytes: use 16, 24 or 32 bytes, or nil for no encryption", i+1, len(blockKey))
		}
		if len(blockKey) == 0 {
			blockKey = nil
		}
		sc := securecookie.New(hashKey, blockKey).MaxAge(0).SetSerializer(securecookie.NopEncoder{})
		if _, err := sc.Encode("probe", []byte("probe")); err != nil {
			return nil, nil, nil, fmt.Errorf("redistore: Config.KeyPairs[%d:%d]: %w", i, i+2, err)
		}
		codecs = append(codecs, sc)
		var f *cookie.Decoder
		if blockKey == nil {
			f = cookie.NewDecoder(hashKey)
		}
		fast = append(fast, f)
	}
	return codecs, fast, short, nil
}

// EncryptionKeyID returns the fingerprint by which sealed values, Stats and
// the redistore command name an encryption key (8 hexadecimal digits: it
// says which key, and nothing usable about it), or an error for a key that
// is not 32 bytes.
func EncryptionKeyID(key []byte) (string, error) {
	r, err := seal.NewRing([][]byte{key})
	if err != nil {
		return "", fmt.Errorf("redistore: encryption key: %v", err)
	}
	return r.ID(0), nil
}
