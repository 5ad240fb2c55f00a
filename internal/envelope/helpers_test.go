package envelope

import (
	"crypto/rand"
	"encoding/base64"
	"testing"
)

// maxLength is the store's DefaultMaxLength.
const maxLength = 64 << 10

// storeDecompress decompresses as a store with the default compressor and
// MaxLength maxLength does: zstd with its bounded decoder, and no other
// compressor but LZ4 (which Open decompresses itself).
func storeDecompress(maxLength int) Decompressor {
	zd := NewZstdDecoder(maxLength)
	return func(id byte, dst, src []byte) error {
		if id == CompressorZstd {
			return zd.Decompress(dst, src)
		}
		return fail(ErrUnknownFormat, "compressed by compressor %#x, which this store does not have (Config.Compressor)", id)
	}
}

// randomText returns n random characters: a payload LZ4 cannot shorten.
func randomText(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)[:n]
}

func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func equal[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}
