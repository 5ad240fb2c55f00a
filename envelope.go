package redistore

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/pierrec/lz4/v4"
)

// The envelope is what the store keeps in Redis for one session (after the
// 4-byte expiry in HashMode):
//
//	byte 0   high nibble: format version (1); low nibble: flags
//	         (bit 0: payload is LZ4-compressed; bit 1: compression was tried
//	         and did not make it shorter; bit 2: a metadata block follows
//	         the header; bit 3 must be 0)
//	byte 1   codec that produced the serialized session (codec* constants)
//	[meta]   with bit 2: the block's length as an unsigned varint, then the
//	         block: the session's start (Unix seconds, 0 unknown) and the
//	         deadline its user index entry was last given (Unix seconds, 0
//	         none), both unsigned varints; a reader ignores bytes after the
//	         fields it knows, so that later releases can add fields
//	rest     the serialized session, or, when compressed, its length as an
//	         unsigned varint followed by one LZ4 block
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
	knownFlags         = flagLZ4 | flagIncompressible | flagMeta
	headerLen          = 2
	maxMetaLen         = 64
)

// envMeta is what the metadata block holds.
type envMeta struct {
	start      int64 // when the session began (Unix seconds); 0: unknown
	indexUntil int64 // the deadline of its user index entry (Unix seconds); 0: none
}

func (m envMeta) empty() bool { return m == envMeta{} }

// appendMeta appends the metadata block of m after a header.
func appendMeta(dst []byte, m envMeta) []byte {
	var block [2 * binary.MaxVarintLen64]byte
	n := binary.PutUvarint(block[:], uint64(max(m.start, 0)))
	n += binary.PutUvarint(block[n:], uint64(max(m.indexUntil, 0)))
	dst = binary.AppendUvarint(dst, uint64(n))
	return append(dst, block[:n]...)
}

// readMeta reads a metadata block from the front of body and returns the
// rest.
func readMeta(body string) (envMeta, string, error) {
	n, k := uvarintString(body)
	if k <= 0 || n > maxMetaLen || uint64(len(body)-k) < n {
		return envMeta{}, "", fmt.Errorf("%w: bad metadata block", ErrCorrupt)
	}
	block, rest := body[k:k+int(n)], body[k+int(n):]
	var m envMeta
	for _, f := range []*int64{&m.start, &m.indexUntil} {
		if block == "" {
			break
		}
		v, k := uvarintString(block)
		if k <= 0 || v > 1<<40 {
			return envMeta{}, "", fmt.Errorf("%w: bad metadata field", ErrCorrupt)
		}
		*f, block = int64(v), block[k:]
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

// compressorPool holds lz4.Compressors: each carries a 64 KiB hash table that
// is far too costly to allocate per call.
var compressorPool = sync.Pool{New: func() any { return new(lz4.Compressor) }}

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
		dst = header(dst, flagLZ4)
		plainLen := len(dst) - start + len(payload)
		dst = binary.AppendUvarint(dst, uint64(len(payload)))
		// Room for anything strictly shorter than the plain envelope; LZ4
		// returns 0 when the block does not fit, i.e. is not worth it.
		room := plainLen - (len(dst) - start) - 1
		if room > 0 {
			dst = grow(dst, room)
			c := compressorPool.Get().(*lz4.Compressor)
			n, err := c.CompressBlock(payload, dst[len(dst):len(dst)+room])
			compressorPool.Put(c)
			if err == nil && n > 0 {
				return dst[:len(dst)+n]
			}
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
	fail := func(err error) (byte, string, byte, envMeta, error) { return 0, "", 0, envMeta{}, err }
	if len(v) < headerLen {
		return fail(fmt.Errorf("%w: %d-byte value is shorter than the envelope header", ErrCorrupt, len(v)))
	}
	version, flags := v[0]>>4, v[0]&0x0f
	if version != envelopeVersion || flags&^knownFlags != 0 {
		return fail(fmt.Errorf("%w: envelope version %d flags %#x (this release reads version %d)", ErrUnknownFormat, version, flags, envelopeVersion))
	}
	if flags&(flagLZ4|flagIncompressible) == flagLZ4|flagIncompressible {
		return fail(fmt.Errorf("%w: envelope says both compressed and incompressible", ErrCorrupt))
	}
	codec = v[1]
	body := v[headerLen:]
	if flags&flagMeta != 0 {
		if m, body, err = readMeta(body); err != nil {
			return fail(err)
		}
		flags &^= flagMeta
	}
	if flags&flagLZ4 == 0 {
		if len(body) > maxLength {
			return fail(fmt.Errorf("%w: stored session is %d bytes, over MaxLength %d", ErrTooLarge, len(body), maxLength))
		}
		return codec, body, flags, m, nil
	}
	size, n := uvarintString(body)
	if n <= 0 {
		return fail(fmt.Errorf("%w: bad compressed length", ErrCorrupt))
	}
	if size > uint64(maxLength) {
		return fail(fmt.Errorf("%w: compressed session expands to %d bytes, over MaxLength %d", ErrTooLarge, size, maxLength))
	}
	out := make([]byte, size)
	got, err := lz4.UncompressBlock(stringBytes(body[n:]), out)
	if err != nil {
		return fail(fmt.Errorf("%w: lz4: %w", ErrCorrupt, err))
	}
	if uint64(got) != size {
		return fail(fmt.Errorf("%w: lz4 block holds %d bytes, header says %d", ErrCorrupt, got, size))
	}
	return codec, bytesToString(out), flags, m, nil
}

// uvarintString is binary.Uvarint over a string.
func uvarintString(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		b := s[i]
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, -(i + 1)
			}
			return x | uint64(b)<<shift, i + 1
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, 0
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
