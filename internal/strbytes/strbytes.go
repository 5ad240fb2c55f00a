// Package strbytes reads strings as bytes, and bytes as strings, without
// copying. The store reads what Redis returns as strings and writes what
// it serializes as bytes; converting either way would copy each session
// once more per request.
package strbytes

import (
	"encoding/binary"
	"unsafe"
)

// String returns a string sharing b's memory. The caller must never modify b
// afterwards.
func String(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// Bytes returns a byte slice sharing s's memory, for code that only reads it
// (decoders, and Redis command arguments that are copied to the socket
// before the call returns).
func Bytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// Uvarint is binary.Uvarint over a string: the value and the number of
// bytes read, or n == 0 when s ends first and n < 0 when the value
// overflows 64 bits.
func Uvarint(s string) (uint64, int) {
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
