package envelope

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// zstd envelopes as this release writes them: they must open the same way
// in every later one (an encoder upgrade may write other bytes; these must
// still read).
var zstdGolden = []struct {
	name, hex, payload string
	meta               Meta
}{
	{"zstd", "190102f40328b52ffd4000f400a30f0061", strings.Repeat("a", 500), Meta{}},
	{"zstd with metadata", "1d010680e2cfaa060002d80428b52ffd40005801550000106162015402022d530a", strings.Repeat("ab", 300), Meta{Start: 1700000000}},
}

func TestZstdGoldenVectors(t *testing.T) {
	t.Parallel()
	dec := storeDecompress(maxLength)
	for _, tt := range zstdGolden {
		b, err := hex.DecodeString(tt.hex)
		noErr(t, err)
		o, err := Open(string(b), maxLength, dec, nil, nil)
		noErr(t, err)
		equal(t, tt.name+" payload", o.Payload, tt.payload)
		equal(t, tt.name+" meta", o.Meta, tt.meta)
		equal(t, tt.name+" compressor", o.Compressor, CompressorZstd)
		// A reader that knows only LZ4 says it cannot, rather than guess.
		if _, err := Open(string(b), maxLength, nil, nil, nil); !errors.Is(err, ErrUnknownFormat) {
			t.Fatalf("%s without a zstd decoder: %v", tt.name, err)
		}
	}
	// Every earlier golden vector opens with the store's decompressor too.
	for _, tt := range envelopeGolden {
		b, _ := hex.DecodeString(tt.hex)
		o, err := Open(string(b), maxLength, dec, nil, nil)
		noErr(t, err)
		equal(t, tt.name, o.Payload, tt.payload)
	}
}

// compressors are LZ4 and zstd at each of the store's levels.
func compressors(t testing.TB) map[string]Compressor {
	t.Helper()
	out := map[string]Compressor{"lz4": LZ4{}}
	for name, level := range map[string]zstd.EncoderLevel{"zstd-fastest": zstd.SpeedFastest, "zstd-default": zstd.SpeedDefault,
		"zstd-better": zstd.SpeedBetterCompression, "zstd-best": zstd.SpeedBestCompression} {
		z, err := NewZstd(level)
		noErr(t, err)
		out[name] = z
	}
	return out
}

// TestCompressorsRoundTrip: every compressor round-trips compressible and
// random payloads of every size; an incompressible one is stored plain.
func TestCompressorsRoundTrip(t *testing.T) {
	t.Parallel()
	dec := storeDecompress(maxLength)
	for name, c := range compressors(t) {
		for _, payload := range []string{"", "x", strings.Repeat("session ", 20), strings.Repeat("cart item ", 3000), randomText(5000), randomText(40000)} {
			for _, m := range []Meta{{}, {Start: 1700000000}} {
				env := Append(nil, []byte(payload), CodecCompact, c, 100, false, m)
				o, err := Open(string(env), maxLength, dec, nil, nil)
				noErr(t, err)
				if o.Payload != payload || o.Meta != m {
					t.Fatalf("%s: %d-byte payload does not round-trip", name, len(payload))
				}
				if len(env) > len(payload)+16 {
					t.Fatalf("%s: %d-byte payload took %d bytes", name, len(payload), len(env))
				}
			}
		}
	}
}

// TestZstdBombsAllocateNothingBig: zstd frames that expand to 1 MiB, one
// declaring its size and one not, inside envelopes that claim a length
// within MaxLength, fail without allocating anything near 1 MiB; one that
// claims 1 MiB is refused before decoding.
func TestZstdBombsAllocateNothingBig(t *testing.T) {
	zeros := make([]byte, 1<<20)
	enc, _ := zstd.NewWriter(nil)
	sized := enc.EncodeAll(zeros, nil)
	var streamed bytes.Buffer
	w, _ := zstd.NewWriter(&streamed, zstd.WithWindowSize(1<<20))
	w.Write(zeros)
	w.Close()
	envelope := func(claim int, frame []byte) string {
		b := binary.AppendUvarint([]byte{Version<<4 | FlagCompressed | flagNamed, CodecCompact, CompressorZstd}, uint64(claim))
		return string(append(b, frame...))
	}
	dec := storeDecompress(maxLength)
	dec(CompressorZstd, make([]byte, 1), []byte{0}) // the decoder's own, one-time buffers
	for name, env := range map[string]string{
		"sized frame, short claim":     envelope(1000, sized),
		"streamed frame, short claim":  envelope(1000, streamed.Bytes()),
		"sized frame, MaxLength claim": envelope(maxLength, sized),
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Open(env, maxLength, dec, nil, nil)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: %v, want ErrCorrupt", name, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 512<<10 {
			t.Fatalf("%s: allocated %d bytes", name, grew)
		}
	}
	if _, err := Open(envelope(1<<20, sized), maxLength, dec, nil, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a 1 MiB claim: %v, want ErrTooLarge", err)
	}
}

// compactGoldenHex are the compact codec's golden vectors (compactGolden
// in internal/codec), as payloads: every item type of its format.
var compactGoldenHex = []string{
	"00",
	"02" + "03016e" + "0506" + "030475736572" + "0305616c696365",
	"03" + "03026e6f01" + "03026f6b02" + "03036e696c00",
	"05" + "0601" + "07d804" + "08dfc508" + "098080808080400" + "a07" + "0bff01" + "0cffff03" + "0d8080808008" + "0e80808080808080808001" + "03037536" + "34",
	"03" + "03016204" + "03000102" + "030366333210" + "0000c03f" + "03036636341100" + "00000000000a40",
	"02" + "03016414" + "8090d8c69e05" + "03017413" + "0f010000000ee298c4c000000000ffff",
	"05" + "030161" + "2003030178050200" + "030166" + "2401000000000000e03f" + "030169" + "2203010002" + "030173" + "21020161026263" + "0303693634" + "23018080808080" + "40",
	"06" + "030142" + "0400" + "03014d" + "2800" + "030153" + "2100" + "030162" + "0f04" + "03016d" + "0f28" + "030173" + "0f21",
	"06" + "030161" + "0f20" + "030166" + "0f24" + "030169" + "0f22" + "03016a" + "0f23" + "03026161" + "0f2a" + "03027373" + "0f29",
	"03" + "03016d" + "28020161030131016205" + "04" + "03026161" + "2a01050203036f6e65" + "03027373" + "2901016b0176",
}

// TestCompressorsRoundTripEveryGoldenVector: every golden payload, of the
// envelope and of the compact codec, comes back through every compressor.
func TestCompressorsRoundTripEveryGoldenVector(t *testing.T) {
	t.Parallel()
	var payloads []string
	for _, g := range envelopeGolden {
		payloads = append(payloads, g.payload)
	}
	for _, g := range zstdGolden {
		payloads = append(payloads, g.payload)
	}
	for _, h := range compactGoldenHex {
		b, err := hex.DecodeString(h)
		noErr(t, err)
		payloads = append(payloads, string(b), strings.Repeat(string(b), 50))
	}
	dec := storeDecompress(maxLength)
	for name, c := range compressors(t) {
		for _, p := range payloads {
			env := Append(nil, []byte(p), CodecCompact, c, 0, false, Meta{})
			o, err := Open(string(env), maxLength, dec, nil, nil)
			noErr(t, err)
			if o.Payload != p {
				t.Fatalf("%s: a golden payload of %d bytes does not round-trip", name, len(p))
			}
		}
	}
}

// TestZstdWithASmallMaxLength: a store whose MaxLength is under zstd's
// minimum window reads back what it wrote.
func TestZstdWithASmallMaxLength(t *testing.T) {
	t.Parallel()
	z, err := NewZstd(zstd.SpeedFastest)
	noErr(t, err)
	for _, maxLength := range []int{200, 450, 1000, 2000} {
		dec := storeDecompress(maxLength)
		payload := []byte(strings.Repeat("abc def ", maxLength/8))
		env := Append(nil, payload, CodecCompact, z, 100, false, Meta{})
		o, err := Open(string(env), maxLength, dec, nil, nil)
		noErr(t, err)
		equal(t, "payload", o.Payload, string(payload))
	}
}

// TestZstdRecordedSizeBoundsTheOutput: a frame that holds more than the
// envelope records fails without allocating what the frame holds, even in
// a store whose MaxLength would allow it.
func TestZstdRecordedSizeBoundsTheOutput(t *testing.T) {
	enc, _ := zstd.NewWriter(nil)
	frame := enc.EncodeAll(make([]byte, 512<<10), nil)
	env := string(append(binary.AppendUvarint([]byte{Version<<4 | FlagCompressed | flagNamed, CodecCompact, CompressorZstd}, 16), frame...))
	dec := storeDecompress(1 << 20)
	dec(CompressorZstd, make([]byte, 1), []byte{0})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, err := Open(env, 1<<20, dec, nil, nil); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%v, want ErrCorrupt", err)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<10 {
		t.Fatalf("10 reads of a 16-byte claim allocated %d bytes", grew)
	}
}
