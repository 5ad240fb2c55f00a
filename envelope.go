package redistore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/redisession/redistore/internal/strbytes"
)

// The envelope is what the store keeps in Redis for one session (after the
// 4-byte expiry in HashMode):
//
//	byte 0   high nibble: format version (1); low nibble: flags
//	         (bit 0: payload is compressed, with LZ4 unless bit 3 says;
//	         bit 1: compression was tried and did not make it shorter;
//	         bit 2: a metadata block follows the header; bit 3: with bit
//	         0, a byte naming the compressor (Compressor.ID) follows the
//	         metadata block)
//	byte 1   codec that produced the serialized session (codec* constants)
//	[meta]   with bit 2: the block's length as an unsigned varint, then the
//	         block: the session's start (Unix seconds, 0 unknown) and the
//	         deadline its user index entry was last given (Unix seconds, 0
//	         none), both unsigned varints; then, written by stores with
//	         Config.UserKey, whose session it is: a length (0: no user, or
//	         16) and the first 16 bytes of the SHA-256 of the user's ID, as
//	         the user's index key names it, so that what ends a user's
//	         sessions never needs to decode their values; a reader ignores
//	         bytes after the fields it knows, so that later releases can add
//	         fields
//	[comp]   with bits 0 and 3: the compressor's ID
//	rest     the serialized session, or, when compressed, its length as an
//	         unsigned varint followed by the compressed bytes (one LZ4
//	         block, one zstd frame, ...)
//
// A reader refuses versions, flags and codecs it does not know rather than
// guess, so a value written by a later release fails loudly, not silently.
// The metadata block is written only by stores with Config.MaxLifetime or
// Config.UserKey set, so that other stores write exactly what releases
// without it read.
const (
	envelopeVersion    = 1
	flagLZ4            = 1 << 0
	flagIncompressible = 1 << 1
	flagMeta           = 1 << 2
	flagNamed          = 1 << 3
	knownFlags         = flagLZ4 | flagIncompressible | flagMeta | flagNamed
	headerLen          = 2
	maxMetaLen         = 64
)

// envMeta is what the metadata block holds.
type envMeta struct {
	start      int64 // when the session began (Unix seconds); 0: unknown
	indexUntil int64 // the deadline of its user index entry (Unix seconds); 0: none
	// user is the digest of the session's user (userDigest), "" for none;
	// hasUser says the block records it (written by a store with UserKey).
	user    string
	hasUser bool
}

func (m envMeta) empty() bool { return m == envMeta{} }

// appendMeta appends the metadata block of m after a header.
func appendMeta(dst []byte, m envMeta) []byte {
	var block [3*binary.MaxVarintLen64 + userDigestLen]byte
	n := binary.PutUvarint(block[:], uint64(max(m.start, 0)))
	n += binary.PutUvarint(block[n:], uint64(max(m.indexUntil, 0)))
	if m.hasUser {
		n += binary.PutUvarint(block[n:], uint64(len(m.user)))
		n += copy(block[n:], m.user)
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	return append(dst, block[:n]...)
}

// readMeta reads a metadata block from the front of body and returns the
// rest.
func readMeta(body string) (envMeta, string, error) {
	n, k := strbytes.Uvarint(body)
	if k <= 0 || n > maxMetaLen || uint64(len(body)-k) < n {
		return envMeta{}, "", fmt.Errorf("%w: bad metadata block", ErrCorrupt)
	}
	block, rest := body[k:k+int(n)], body[k+int(n):]
	var m envMeta
	for _, f := range []*int64{&m.start, &m.indexUntil} {
		if block == "" {
			break
		}
		v, k := strbytes.Uvarint(block)
		if k <= 0 || v > 1<<40 {
			return envMeta{}, "", fmt.Errorf("%w: bad metadata field", ErrCorrupt)
		}
		*f, block = int64(v), block[k:]
	}
	// The user: bytes that are not one (a field of a release that never
	// wrote it) say nothing, and the user is learned from the values.
	if n, k := strbytes.Uvarint(block); k > 0 && (n == 0 || n == userDigestLen) && uint64(len(block)-k) >= n {
		m.user, m.hasUser = block[k:k+int(n)], true
	}
	return m, rest, nil
}

// Codec identifiers (byte 1 of the envelope). Values below 0x80 belong to this
// package; 0x80 marks a serializer supplied by the application.
const (
	codecCompact byte = 0x01
	codecGob     byte = 0x02
	codecJSON    byte = 0x03
	codecCustom  byte = 0x80
)

// appendEnvelope appends the envelope of payload to dst, compressing when
// payload is at least minCompress bytes (minCompress < 0: never) and the
// result is strictly shorter. With incompressible set (the session's last
// envelope said compression did not help, at about this size) it does not
// try again.
func appendEnvelope(dst, payload []byte, codec byte, minCompress int, incompressible bool) []byte {
	return appendEnvelopeMeta(dst, payload, codec, minCompress, incompressible, envMeta{})
}

// appendEnvelopeMeta is appendEnvelope with a metadata block, unless m is
// empty.
func appendEnvelopeMeta(dst, payload []byte, codec byte, minCompress int, incompressible bool, m envMeta) []byte {
	return appendEnvelopeWith(dst, payload, codec, lz4Compressor{}, minCompress, incompressible, m)
}

// appendEnvelopeWith is appendEnvelopeMeta with the compressor comp. LZ4
// values have the layout they always had (no compressor byte).
func appendEnvelopeWith(dst, payload []byte, codec byte, comp Compressor, minCompress int, incompressible bool, m envMeta) []byte {
	var metaFlag byte
	if !m.empty() {
		metaFlag = flagMeta
	}
	header := func(dst []byte, flags byte) []byte {
		dst = append(dst, envelopeVersion<<4|flags|metaFlag, codec)
		if metaFlag != 0 {
			dst = appendMeta(dst, m)
		}
		return dst
	}
	worth := minCompress >= 0 && len(payload) >= minCompress && len(payload) > 0
	if worth && !incompressible {
		start := len(dst)
		flags := byte(flagLZ4)
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
		flags = flagIncompressible
	}
	dst = header(dst, flags)
	return append(dst, payload...)
}

// grow makes room for n more bytes after len(b).
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}

// openEnvelope checks the header of an envelope and returns the codec and the
// serialized session. An uncompressed payload is a substring of v (no copy);
// a compressed one is decompressed into a new buffer of exactly its recorded
// length, which must not exceed maxLength.
func openEnvelope(v string, maxLength int) (codec byte, payload string, flags byte, err error) {
	codec, payload, flags, _, err = openEnvelopeMeta(v, maxLength)
	return codec, payload, flags, err
}

// openEnvelopeMeta is openEnvelope that also returns the metadata block
// (empty when there is none). The flags it returns never have flagMeta.
func openEnvelopeMeta(v string, maxLength int) (codec byte, payload string, flags byte, m envMeta, err error) {
	o, err := openEnvelopeWith(v, maxLength, nil)
	return o.codec, o.payload, o.flags, o.meta, err
}

// decompressor decompresses the bytes a compressor with the given ID wrote
// into dst, which has the original length.
type decompressor func(id byte, dst, src []byte) error

// openEnvelopeWith opens an envelope whose payload any compressor wrote:
// LZ4 here, the others through dec (nil: LZ4 only). The flags it returns
// never have flagMeta or flagNamed; comp is the compressor's ID (0: plain).
func openEnvelopeWith(v string, maxLength int, dec decompressor) (opened, error) {
	fail := func(err error) (opened, error) { return opened{}, err }
	h, err := readHeader(v)
	if err != nil {
		return fail(err)
	}
	codec, flags, m, comp, body := h.codec, h.flags, h.meta, h.comp, h.body
	if comp == 0 {
		if len(body) > maxLength {
			return fail(fmt.Errorf("%w: stored session is %d bytes, over MaxLength %d", ErrTooLarge, len(body), maxLength))
		}
		return opened{codec: codec, payload: body, flags: flags, meta: m}, nil
	}
	size, n := strbytes.Uvarint(body)
	if n <= 0 {
		return fail(fmt.Errorf("%w: bad compressed length", ErrCorrupt))
	}
	if size > uint64(maxLength) {
		return fail(fmt.Errorf("%w: compressed session expands to %d bytes, over MaxLength %d", ErrTooLarge, size, maxLength))
	}
	out := make([]byte, size)
	switch {
	case comp == CompressorLZ4:
		err = lz4Compressor{}.Decompress(out, strbytes.Bytes(body[n:]))
	case dec == nil:
		return fail(fmt.Errorf("%w: compressor %#x", ErrUnknownFormat, comp))
	default:
		err = dec(comp, out, strbytes.Bytes(body[n:]))
	}
	if errors.Is(err, ErrUnknownFormat) {
		return fail(err)
	}
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrCorrupt, err))
	}
	return opened{codec: codec, payload: strbytes.String(out), flags: flags, meta: m, comp: comp}, nil
}

// header is what an envelope says before its payload.
type header struct {
	codec byte
	flags byte    // flagMeta and flagNamed aside
	meta  envMeta // the metadata block
	comp  byte    // the compressor's ID; 0: stored plain
	body  string  // the rest: the payload, or its length and compressed bytes
}

// readHeader checks an envelope's header and reads its metadata block and
// compressor byte. It needs only the front of the envelope.
func readHeader(v string) (header, error) {
	if len(v) < headerLen {
		return header{}, fmt.Errorf("%w: %d-byte value is shorter than the envelope header", ErrCorrupt, len(v))
	}
	version, flags := v[0]>>4, v[0]&0x0f
	if version != envelopeVersion || flags&^knownFlags != 0 {
		return header{}, fmt.Errorf("%w: envelope version %d flags %#x (this release reads version %d)", ErrUnknownFormat, version, flags, envelopeVersion)
	}
	if flags&(flagLZ4|flagIncompressible) == flagLZ4|flagIncompressible {
		return header{}, fmt.Errorf("%w: envelope says both compressed and incompressible", ErrCorrupt)
	}
	h := header{codec: v[1], body: v[headerLen:]}
	if flags&flagMeta != 0 {
		var err error
		if h.meta, h.body, err = readMeta(h.body); err != nil {
			return header{}, err
		}
		flags &^= flagMeta
	}
	switch {
	case flags&flagNamed != 0 && flags&flagLZ4 == 0:
		return header{}, fmt.Errorf("%w: envelope names a compressor but is not compressed", ErrCorrupt)
	case flags&flagNamed != 0:
		if h.body == "" {
			return header{}, fmt.Errorf("%w: no compressor byte", ErrCorrupt)
		}
		h.comp, h.body = h.body[0], h.body[1:]
		flags &^= flagNamed
	case flags&flagLZ4 != 0:
		h.comp = CompressorLZ4
	}
	h.flags = flags
	return h, nil
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
