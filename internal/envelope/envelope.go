// Package envelope is the framing of what the store keeps in Redis for one
// session, after its 4-byte expiry:
//
//	byte 0   high nibble: format version (1, or 2 for a sealed value);
//	         low nibble: flags
//	         (bit 0: payload is compressed, with LZ4 unless bit 3 says;
//	         bit 1: compression was tried and did not make it shorter;
//	         bit 2: a metadata block follows the header; bit 3: with bit
//	         0, a byte naming the compressor (Compressor.ID) follows the
//	         metadata block)
//	byte 1   codec that produced the serialized session (Codec* constants)
//	[ext]    version 2 only: a byte of further flags (bit 0: the rest is
//	         sealed; no other bit is defined)
//	[meta]   with bit 2: the block's length as an unsigned varint, then the
//	         block: the session's start (Unix seconds, 0 unknown) and the
//	         deadline its user index entry was last given (Unix seconds, 0
//	         none), both unsigned varints; then, written by stores with
//	         Config.UserKey, whose session it is: a length (0: no user, or
//	         16) and the first 16 bytes of the SHA-256 of the user's ID, as
//	         the user's index key names it, so that what ends a user's
//	         sessions never needs to decode their values; after a user (16
//	         bytes, not 0), the lifetime in seconds the session's last write
//	         gave it, an unsigned varint (0: unknown), from which the store
//	         tells when the session was last seen; a reader ignores bytes
//	         after the fields it knows, so that later releases can add fields
//	[comp]   with bits 0 and 3: the compressor's ID
//	rest     the serialized session, or, when compressed, its length as an
//	         unsigned varint followed by the compressed bytes (one LZ4
//	         block, one zstd frame, ...)
//
// A sealed value (version 2, ext bit 0) keeps all of the above in clear up
// to the rest, which it replaces by the rest sealed (see Seal), the clear
// front authenticated with it: what the store's scripts, Stats and doctor
// read stays readable without a key, cannot be changed without one, and the
// serialized session is not readable. Values that are not sealed are written
// as version 1, exactly as releases before sealing wrote and read them.
//
// A reader refuses versions, flags and codecs it does not know rather than
// guess, so a value written by a later release fails loudly, not silently.
// The metadata block is written only by stores with Config.MaxLifetime or
// Config.UserKey set, so that other stores write exactly what releases
// without it read.
//
// The package also holds the compressors this format names (compress.go).
// It knows nothing of the store: what it refuses, it reports as an *Error
// of one of its sentinels, which the store reports as its own.
package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/redisession/redistore/internal/strbytes"
)

// The header's version and the flags the store reads.
const (
	Version            = 1
	VersionSealed      = 2
	extSealed          = 1 << 0
	FlagCompressed     = 1 << 0 // with LZ4 unless flagNamed says otherwise
	FlagIncompressible = 1 << 1
	flagMeta           = 1 << 2
	flagNamed          = 1 << 3
	knownFlags         = FlagCompressed | FlagIncompressible | flagMeta | flagNamed
	headerLen          = 2
	maxMetaLen         = 64
	maxTTL             = 1<<31 - 1 // beyond any lifetime the store gives
	// sealIDLen and sealOverheadBound are internal/seal's IDLen and
	// Overhead (checked by the tests), which this package does not import.
	sealIDLen         = 4
	sealOverheadBound = 44
)

// Codec identifiers (byte 1 of the envelope). Values below 0x80 belong to
// the store; 0x80 marks a serializer supplied by the application.
const (
	CodecCompact byte = 0x01
	CodecGob     byte = 0x02
	CodecJSON    byte = 0x03
	CodecCustom  byte = 0x80
)

// UserDigestLen is the length of Meta.User when the block names a user:
// the store's digest of the user's ID.
const UserDigestLen = 16

// Meta is what the metadata block holds.
type Meta struct {
	Start      int64 // when the session began (Unix seconds); 0: unknown
	IndexUntil int64 // the deadline of its user index entry (Unix seconds); 0: none
	// User is the digest of the session's user, "" for none; HasUser says
	// the block records it (written by a store with UserKey).
	User    string
	HasUser bool
	// TTL is the lifetime in seconds the session's last write gave it, 0
	// unknown; the block records it only after a user (User not "").
	TTL int64
}

func (m Meta) empty() bool { return m == Meta{} }

// Errors that the errors of Open and ReadHeader match, as their Kind.
var (
	// ErrCorrupt: the value is not an envelope this package wrote.
	ErrCorrupt = errors.New("envelope: corrupt")
	// ErrTooLarge: the payload is, or expands to, more than maxLength.
	ErrTooLarge = errors.New("envelope: too large")
	// ErrUnknownFormat: a version, flag or compressor this package does
	// not know (a later release's, or an application's it was not given).
	ErrUnknownFormat = errors.New("envelope: unknown format")
)

// Error is what Open and ReadHeader refuse: Kind is ErrCorrupt, ErrTooLarge
// or ErrUnknownFormat, and Err says what was wrong, in words the store
// puts after its own sentinel's.
type Error struct {
	Kind error
	Err  error
}

// Error reads as the kind, then what was wrong; Unwrap gives both.
func (e *Error) Error() string   { return e.Kind.Error() + ": " + e.Err.Error() }
func (e *Error) Unwrap() []error { return []error{e.Kind, e.Err} }

// fail returns the *Error of kind that says what format and args say.
func fail(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Err: fmt.Errorf(format, args...)}
}

// appendMeta appends the metadata block of m after a header.
func appendMeta(dst []byte, m Meta) []byte {
	var block [4*binary.MaxVarintLen64 + UserDigestLen]byte
	n := binary.PutUvarint(block[:], uint64(max(m.Start, 0)))
	n += binary.PutUvarint(block[n:], uint64(max(m.IndexUntil, 0)))
	if m.HasUser {
		n += binary.PutUvarint(block[n:], uint64(len(m.User)))
		n += copy(block[n:], m.User)
		if len(m.User) == UserDigestLen && m.TTL > 0 {
			n += binary.PutUvarint(block[n:], uint64(m.TTL))
		}
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	return append(dst, block[:n]...)
}

// readMeta reads a metadata block from the front of body and returns the
// rest.
func readMeta(body string) (Meta, string, error) {
	n, k := strbytes.Uvarint(body)
	if k <= 0 || n > maxMetaLen || uint64(len(body)-k) < n {
		return Meta{}, "", fail(ErrCorrupt, "bad metadata block")
	}
	block, rest := body[k:k+int(n)], body[k+int(n):]
	var m Meta
	for _, f := range []*int64{&m.Start, &m.IndexUntil} {
		if block == "" {
			break
		}
		v, k := strbytes.Uvarint(block)
		if k <= 0 || v > 1<<40 {
			return Meta{}, "", fail(ErrCorrupt, "bad metadata field")
		}
		*f, block = int64(v), block[k:]
	}
	// The user: bytes that are not one (a field of a release that never
	// wrote it) say nothing, and the user is learned from the values.
	if n, k := strbytes.Uvarint(block); k > 0 && (n == 0 || n == UserDigestLen) && uint64(len(block)-k) >= n {
		m.User, m.HasUser = block[k:k+int(n)], true
		// The lifetime follows only a user: after "no user" a byte is
		// a later release's field.
		if rest := block[k+int(n):]; n == UserDigestLen {
			if v, k := strbytes.Uvarint(rest); k > 0 && v <= maxTTL {
				m.TTL = int64(v)
			}
		}
	}
	return m, rest, nil
}

// Compressor is what Append needs of a compressor; the store's Compressor
// values have these methods, and more.
type Compressor interface {
	ID() byte
	Compress(dst, src []byte) ([]byte, error)
}

// Append appends the envelope of payload, written by codec, to dst,
// compressing with comp when payload is at least minCompress bytes
// (minCompress < 0: never) and the result is strictly shorter. With
// incompressible set (the session's last envelope said compression did not
// help, at about this size) it does not try again. The metadata block is
// written unless m is empty; LZ4 values have the layout they had before
// other compressors (no compressor byte).
func Append(dst, payload []byte, codec byte, comp Compressor, minCompress int, incompressible bool, m Meta) []byte {
	var metaFlag byte
	if !m.empty() {
		metaFlag = flagMeta
	}
	header := func(dst []byte, flags byte) []byte {
		dst = append(dst, Version<<4|flags|metaFlag, codec)
		if metaFlag != 0 {
			dst = appendMeta(dst, m)
		}
		return dst
	}
	worth := minCompress >= 0 && len(payload) >= minCompress && len(payload) > 0
	if worth && !incompressible {
		start := len(dst)
		flags := byte(FlagCompressed)
		named := comp.ID() != CompressorLZ4
		if named {
			flags |= flagNamed
		}
		dst = header(dst, flags)
		plainLen := len(dst) - start + len(payload) // the plain envelope's
		if named {
			dst = append(dst, comp.ID())
		}
		dst = binary.AppendUvarint(dst, uint64(len(payload)))
		if out, err := comp.Compress(dst, payload); err == nil && len(out)-start < plainLen && len(out) > len(dst) {
			return out
		}
		dst = dst[:start]
	}
	var flags byte
	if worth {
		flags = FlagIncompressible
	}
	dst = header(dst, flags)
	return append(dst, payload...)
}

// Decompressor decompresses the bytes the compressor with the given ID
// wrote into dst, which has the original length. An error that matches
// ErrUnknownFormat (a compressor the caller does not have) is returned by
// Open as it is; any other says the value is corrupt.
type Decompressor func(id byte, dst, src []byte) error

// Opened is what an envelope says.
type Opened struct {
	Codec      byte   // codec of Payload
	Payload    string // the serialized values
	Flags      byte   // the envelope's flags, flagMeta and flagNamed aside
	Meta       Meta   // its metadata block
	Compressor byte   // the compressor's ID; 0: stored plain
	// SealedBy is the index in the ring of the key that sealed the value;
	// -1: not sealed.
	SealedBy int
}

// A Sealer seals and opens the rest of an envelope (the store's key ring,
// internal/seal.Ring). Open returns the index of the key that opened a
// value.
type Sealer interface {
	Seal(dst, plaintext, ad []byte) []byte
	Open(dst, sealed, ad []byte) ([]byte, int, error)
}

// Seal appends to dst the sealed form of env, an envelope as Append wrote
// it: the same header, metadata block and compressor byte, marked as
// version 2 and sealed, then the rest sealed by sl with the associated data
// ad (which names where the value lives, so that a copy elsewhere does not
// open). dst must not overlap env.
func Seal(dst, env []byte, sl Sealer, ad []byte) ([]byte, error) {
	h, err := ReadHeader(strbytes.String(env))
	if err != nil {
		return dst, err
	}
	if h.Sealed {
		return dst, fail(ErrCorrupt, "envelope is sealed already")
	}
	front := env[:len(env)-len(h.Body)]
	start := len(dst)
	dst = append(dst, VersionSealed<<4|front[0]&0x0f, front[1], extSealed)
	dst = append(dst, front[headerLen:]...)
	return sl.Seal(dst, env[len(front):], sealAD(ad, dst[start:])), nil
}

// sealAD is the associated data of a sealed value: the caller's (where the
// value lives), then the value's clear front (header, extension byte,
// metadata block, compressor byte), then the front's length in a byte (a
// front is at most FrontRoom bytes), so that a change to what stays in
// clear makes the value not open, as a change to what is sealed does. It
// appends to ad, in its spare capacity where it has FrontRoom bytes more
// (as the store's are made), so that opening a value allocates nothing for
// it; ad's own bytes are left as they are.
func sealAD(ad, front []byte) []byte {
	return append(append(ad, front...), byte(len(front)))
}

// FrontRoom is the spare capacity of an associated data slice that lets
// Seal, Open and Unseal add a value's clear front to it without allocating:
// the header and extension byte, the metadata block with its length, the
// compressor byte, and sealAD's length byte.
const FrontRoom = headerLen + 1 + 1 + maxMetaLen + 1 + 1

// Unseal returns the envelope in clear that a sealed envelope v was sealed
// from, and the index of the key that opened it; an envelope in clear is
// returned as it is, with -1. It is Seal undone, for re-sealing with
// another key without decompressing or decoding anything.
func Unseal(v string, sl Sealer, ad []byte) ([]byte, int, error) {
	h, err := ReadHeader(v)
	if err != nil {
		return nil, -1, err
	}
	if !h.Sealed {
		return []byte(v), -1, nil
	}
	if sl == nil {
		return nil, -1, fail(ErrCorrupt, "the value is sealed and the store has no EncryptionKeys")
	}
	front := v[:len(v)-len(h.Body)]
	clear := make([]byte, 0, len(v))
	clear = append(clear, Version<<4|front[0]&0x0f, front[1])
	clear = append(clear, front[headerLen+1:]...)
	clear, i, err := sl.Open(clear, strbytes.Bytes(h.Body), sealAD(ad, strbytes.Bytes(front)))
	if err != nil {
		return nil, -1, &Error{Kind: ErrCorrupt, Err: err}
	}
	return clear, i, nil
}

// Open checks an envelope and returns what it holds. An uncompressed
// payload is a substring of v (no copy); a compressed one is decompressed
// into a new buffer of exactly its recorded length, which must not exceed
// maxLength: LZ4 here, the others through dec (nil: LZ4 only).
//
// A sealed envelope is opened with sl and ad first: without a Sealer, or
// when the value does not open (tampered with, sealed elsewhere, or by a
// key sl does not have), it is ErrCorrupt.
func Open(v string, maxLength int, dec Decompressor, sl Sealer, ad []byte) (Opened, error) {
	h, err := ReadHeader(v)
	if err != nil {
		return Opened{}, err
	}
	codec, flags, m, comp, body := h.Codec, h.Flags, h.Meta, h.Compressor, h.Body
	sealedBy := -1
	if h.Sealed {
		if sl == nil {
			return Opened{}, fail(ErrCorrupt, "the value is sealed and the store has no EncryptionKeys")
		}
		// The box is at most the plaintext's bound plus the overhead.
		if len(body) > maxLength+sealOverheadBound {
			return Opened{}, fail(ErrTooLarge, "sealed session is %d bytes, over MaxLength %d", len(body), maxLength)
		}
		plain, i, err := sl.Open(nil, strbytes.Bytes(body), sealAD(ad, strbytes.Bytes(v[:len(v)-len(body)])))
		if err != nil {
			return Opened{}, &Error{Kind: ErrCorrupt, Err: err}
		}
		body, sealedBy = strbytes.String(plain), i
	}
	if comp == 0 {
		if len(body) > maxLength {
			return Opened{}, fail(ErrTooLarge, "stored session is %d bytes, over MaxLength %d", len(body), maxLength)
		}
		return Opened{Codec: codec, Payload: body, Flags: flags, Meta: m, SealedBy: sealedBy}, nil
	}
	size, n := strbytes.Uvarint(body)
	if n <= 0 {
		return Opened{}, fail(ErrCorrupt, "bad compressed length")
	}
	if size > uint64(maxLength) {
		return Opened{}, fail(ErrTooLarge, "compressed session expands to %d bytes, over MaxLength %d", size, maxLength)
	}
	out := make([]byte, size)
	switch {
	case comp == CompressorLZ4:
		err = LZ4{}.Decompress(out, strbytes.Bytes(body[n:]))
	case dec == nil:
		return Opened{}, fail(ErrUnknownFormat, "compressor %#x", comp)
	default:
		err = dec(comp, out, strbytes.Bytes(body[n:]))
	}
	if errors.Is(err, ErrUnknownFormat) {
		return Opened{}, err
	}
	if err != nil {
		return Opened{}, &Error{Kind: ErrCorrupt, Err: err}
	}
	return Opened{Codec: codec, Payload: strbytes.String(out), Flags: flags, Meta: m, Compressor: comp, SealedBy: sealedBy}, nil
}

// Header is what an envelope says before its payload.
type Header struct {
	Codec      byte
	Flags      byte // flagMeta and flagNamed aside
	Meta       Meta // the metadata block
	Compressor byte // the compressor's ID; 0: stored plain
	// Sealed says the body is sealed (version 2): it starts with the
	// sealing key's fingerprint (KeyID).
	Sealed bool
	Body   string // the rest: the payload, or its length and compressed bytes (sealed, when Sealed)
}

// KeyID returns the fingerprint of the key that sealed a sealed header's
// body, "" when the header is not sealed or the body too short to hold one.
func (h Header) KeyID() string {
	if !h.Sealed || len(h.Body) < sealIDLen {
		return ""
	}
	return h.Body[:sealIDLen]
}

// ReadHeader checks an envelope's header and reads its metadata block and
// compressor byte. It needs only the front of the envelope.
func ReadHeader(v string) (Header, error) {
	if len(v) < headerLen {
		return Header{}, fail(ErrCorrupt, "%d-byte value is shorter than the envelope header", len(v))
	}
	version, flags := v[0]>>4, v[0]&0x0f
	if version != Version && version != VersionSealed || flags&^knownFlags != 0 {
		return Header{}, fail(ErrUnknownFormat, "envelope version %d flags %#x (this release reads versions %d and %d)", version, flags, Version, VersionSealed)
	}
	if flags&(FlagCompressed|FlagIncompressible) == FlagCompressed|FlagIncompressible {
		return Header{}, fail(ErrCorrupt, "envelope says both compressed and incompressible")
	}
	h := Header{Codec: v[1], Body: v[headerLen:]}
	if version == VersionSealed {
		if h.Body == "" {
			return Header{}, fail(ErrCorrupt, "no extension byte")
		}
		if ext := h.Body[0]; ext != extSealed {
			return Header{}, fail(ErrUnknownFormat, "envelope extension flags %#x (this release reads %#x)", ext, extSealed)
		}
		h.Sealed, h.Body = true, h.Body[1:]
	}
	if flags&flagMeta != 0 {
		var err error
		if h.Meta, h.Body, err = readMeta(h.Body); err != nil {
			return Header{}, err
		}
		flags &^= flagMeta
	}
	switch {
	case flags&flagNamed != 0 && flags&FlagCompressed == 0:
		return Header{}, fail(ErrCorrupt, "envelope names a compressor but is not compressed")
	case flags&flagNamed != 0:
		if h.Body == "" {
			return Header{}, fail(ErrCorrupt, "no compressor byte")
		}
		h.Compressor, h.Body = h.Body[0], h.Body[1:]
		flags &^= flagNamed
	case flags&FlagCompressed != 0:
		h.Compressor = CompressorLZ4
	}
	h.Flags = flags
	return h, nil
}
