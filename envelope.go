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
//	         and did not make it shorter; bits 2-3 must be 0)
//	byte 1   codec that produced the serialized session (codec* constants)
//	rest     the serialized session, or, when compressed, its length as an
//	         unsigned varint followed by one LZ4 block
//
// A reader refuses versions, flags and codecs it does not know rather than
// guess, so a value written by a later release fails loudly, not silently.
const (
	envelopeVersion    = 1
	flagLZ4            = 1 << 0
	flagIncompressible = 1 << 1
	knownFlags         = flagLZ4 | flagIncompressible
	headerLen          = 2
)

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
	worth := minCompress >= 0 && len(payload) >= minCompress && len(payload) > 0
	if worth && !incompressible {
		start := len(dst)
		dst = append(dst, envelopeVersion<<4|flagLZ4, codec)
		dst = binary.AppendUvarint(dst, uint64(len(payload)))
		// Room for anything strictly shorter than the plain envelope; LZ4
		// returns 0 when the block does not fit, i.e. is not worth it.
		room := headerLen + len(payload) - (len(dst) - start) - 1
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
	dst = append(dst, envelopeVersion<<4|flags, codec)
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
	if len(v) < headerLen {
		return 0, "", 0, fmt.Errorf("%w: %d-byte value is shorter than the envelope header", ErrCorrupt, len(v))
	}
	version, flags := v[0]>>4, v[0]&0x0f
	if version != envelopeVersion || flags&^knownFlags != 0 {
		return 0, "", 0, fmt.Errorf("%w: envelope version %d flags %#x (this release reads version %d)", ErrUnknownFormat, version, flags, envelopeVersion)
	}
	if flags == knownFlags {
		return 0, "", 0, fmt.Errorf("%w: envelope says both compressed and incompressible", ErrCorrupt)
	}
	codec = v[1]
	body := v[headerLen:]
	if flags&flagLZ4 == 0 {
		if len(body) > maxLength {
			return 0, "", 0, fmt.Errorf("%w: stored session is %d bytes, over MaxLength %d", ErrTooLarge, len(body), maxLength)
		}
		return codec, body, flags, nil
	}
	size, n := uvarintString(body)
	if n <= 0 {
		return 0, "", 0, fmt.Errorf("%w: bad compressed length", ErrCorrupt)
	}
	if size > uint64(maxLength) {
		return 0, "", 0, fmt.Errorf("%w: compressed session expands to %d bytes, over MaxLength %d", ErrTooLarge, size, maxLength)
	}
	out := make([]byte, size)
	m, err := lz4.UncompressBlock(stringBytes(body[n:]), out)
	if err != nil {
		return 0, "", 0, fmt.Errorf("%w: lz4: %w", ErrCorrupt, err)
	}
	if uint64(m) != size {
		return 0, "", 0, fmt.Errorf("%w: lz4 block holds %d bytes, header says %d", ErrCorrupt, m, size)
	}
	return codec, bytesToString(out), flags, nil
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
