package redistore

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
)

// IDLength is the length of a session ID: 32 lowercase hexadecimal digits
// encoding 16 bytes (128 bits) from crypto/rand.
const IDLength = 32

const idBytes = IDLength / 2

// maxPrefixOnStack is the prefix length up to which locate builds keys
// without a heap allocation beyond the key itself.
const maxPrefixOnStack = 64

// maxKeyLength bounds what a key generator may return, so that a broken
// generator cannot make every request send megabytes to Redis.
const maxKeyLength = 1024

// newID returns a fresh session ID.
func newID() string {
	var raw [idBytes]byte
	rand.Read(raw[:]) // never returns an error (see crypto/rand.Read)
	return hex.EncodeToString(raw[:])
}

// ValidID reports whether id has the shape of an ID this package issues:
// exactly IDLength lowercase hexadecimal digits. Every ID is checked with it
// before it reaches a key generator or Redis.
func ValidID(id string) bool {
	if len(id) != IDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// rawID decodes a valid ID into its 16 raw bytes.
func rawID(id string) (raw [idBytes]byte, err error) {
	if !ValidID(id) {
		return raw, ErrInvalidID
	}
	hex.Decode(raw[:], []byte(id)) // cannot fail: ValidID checked every digit
	return raw, nil
}

// RawKeyGenerator returns the default key generator: the prefix followed by
// the 16 raw bytes of the ID. In StringMode it makes the session's key; in
// HashMode it is called with an empty prefix and makes the hash field.
func RawKeyGenerator(prefix string) func(id string) (string, error) {
	return func(id string) (string, error) {
		raw, err := rawID(id)
		if err != nil {
			return "", err
		}
		return prefix + string(raw[:]), nil
	}
}

// BucketKeyGenerator returns the default HashMode bucket generator: the prefix
// followed by the first two raw bytes of the ID, which spreads sessions evenly
// over 65536 Redis hashes (DefaultBuckets; Config.Buckets chooses another
// number).
func BucketKeyGenerator(prefix string) func(id string) (string, error) {
	return func(id string) (string, error) {
		raw, err := rawID(id)
		if err != nil {
			return "", err
		}
		return prefix + string(raw[:2]), nil
	}
}

// DefaultBuckets is the number of hashes HashMode spreads sessions over
// unless Config.Buckets says otherwise: 65536, as django-redisession had.
const DefaultBuckets = 1 << 16

// MaxBuckets is the largest Config.Buckets.
const MaxBuckets = 1 << 24

// buckets describes how the default generators map IDs to buckets: the
// bucket is the top bits of the ID, written as the first width bytes of its
// raw form with the bits below them cleared.
type buckets struct {
	n     int  // a power of two from 1 to MaxBuckets
	width int  // bytes of the bucket key after the prefix: 1, 2 or 3
	mask  byte // kept bits of the last of those bytes
}

func newBuckets(n int) (buckets, error) {
	if n < 1 || n > MaxBuckets || n&(n-1) != 0 {
		return buckets{}, fmt.Errorf("redistore: Config.Buckets is %d: use a power of two from 1 to %d (MaxBuckets), or 0 for DefaultBuckets (%d)", n, MaxBuckets, DefaultBuckets)
	}
	bits := bitsOf(n)
	width := max(1, (bits+7)/8)
	return buckets{n: n, width: width, mask: byte(0xff << (8*width - bits))}, nil
}

// appendKey appends the bucket bytes of a raw ID.
func (b buckets) appendKey(dst []byte, raw []byte) []byte {
	dst = append(dst, raw[:b.width]...)
	dst[len(dst)-1] &= b.mask
	return dst
}

// key returns the bytes of bucket i (0 <= i < n).
func (b buckets) key(i int) []byte {
	shift := 8*b.width - bitsOf(b.n)
	v := uint32(i) << shift
	out := make([]byte, b.width)
	for j := range out {
		out[j] = byte(v >> (8 * (b.width - 1 - j)))
	}
	return out
}

// index returns the number of the bucket whose bytes (after the prefix)
// are k, as key makes them; false for bytes key never makes.
func (b buckets) index(k string) (int, bool) {
	if len(k) != b.width {
		return 0, false
	}
	shift := 8*b.width - bitsOf(b.n)
	var v uint32
	for j := 0; j < b.width; j++ {
		v = v<<8 | uint32(k[j])
	}
	if v&(1<<shift-1) != 0 {
		return 0, false
	}
	return int(v >> shift), true
}

func bitsOf(n int) int {
	bits := 0
	for 1<<bits < n {
		bits++
	}
	return bits
}

// locate returns where the session with a valid ID lives.
func (s *Store) locate(id string) (location, error) { return s.layout.locate(id) }

// checkKey calls gen and rejects what would make the store write outside
// its namespace (prefixed: the key must be under prefix) or send absurd
// keys.
func checkKey(prefix, name string, gen func(string) (string, error), id string, prefixed bool) (string, error) {
	k, err := gen(id)
	switch {
	case err != nil:
		return "", &keyError{gen: name, reason: "returned an error", err: err}
	case len(k) == 0:
		return "", &keyError{gen: name, reason: "returned an empty key"}
	case len(k) > maxKeyLength:
		return "", &keyError{gen: name, reason: fmt.Sprintf("returned a key of %d bytes (at most %d)", len(k), maxKeyLength)}
	case prefixed && !underPrefix(k, prefix):
		return "", &keyError{gen: name, reason: fmt.Sprintf("returned a key outside KeyPrefix %q", prefix)}
	case prefixed && isIndexKey(k, prefix):
		return "", &keyError{gen: name, reason: "returned a key shaped like a user index key (KeyPrefix + \"user:\" + 32 hex digits)"}
	}
	return k, nil
}

// underPrefix reports whether key starts with prefix and goes on after it.
func underPrefix(key, prefix string) bool {
	return len(key) > len(prefix) && strings.HasPrefix(key, prefix)
}

// keyError reports an ID that a key generator rejected or mapped to an
// unusable key. It matches ErrInvalidID. Its reason never contains the ID;
// err is the generator's own error, which might.
type keyError struct {
	gen    string
	reason string
	err    error
}

func (e *keyError) Error() string {
	msg := ErrInvalidID.Error() + ": " + e.gen + " " + e.reason
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	return msg
}

func (e *keyError) Unwrap() []error {
	if e.err == nil {
		return []error{ErrInvalidID}
	}
	return []error{ErrInvalidID, e.err}
}

// OwnsKey reports whether key has the shape of this store's keys: under
// KeyPrefix and, with the default key generators, exactly as long as a
// bucket (HashMode) or a session key (StringMode); never a user index key
// (see IsIndexKey). Sweep and the redistore command leave other keys alone.
func (s *Store) OwnsKey(key string) bool { return s.layout.ownsKey(key) }

// KeyType is the Redis type of the keys OwnsKey accepts: "hash" in HashMode,
// "string" in StringMode.
func (s *Store) KeyType() string { return s.layout.keyType() }

// redact describes an ID for a log line without revealing it.
func redact(id string) string {
	return fmt.Sprintf("[redacted, %d bytes]", len(id))
}
