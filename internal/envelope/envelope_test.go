package envelope

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/pierrec/lz4/v4"
)

// Envelopes are stored in Redis: these bytes must open the same way in every
// later release.
var envelopeGolden = []struct {
	name    string
	hex     string
	codec   byte
	payload string
	meta    Meta
}{
	{"plain compact", "1001" + hex.EncodeToString([]byte("hello")), CodecCompact, "hello", Meta{}},
	{"plain gob", "1002" + "0d7f", CodecGob, "\x0d\x7f", Meta{}},
	{"plain json", "1003" + hex.EncodeToString([]byte(`{"a":1}`)), CodecJSON, `{"a":1}`, Meta{}},
	{"application serializer", "1080" + "00", CodecCustom, "\x00", Meta{}},
	{"empty payload", "1001", CodecCompact, "", Meta{}},
	{"compression tried, not worth it", "1201" + hex.EncodeToString([]byte("xyz")), CodecCompact, "xyz", Meta{}},
	{"lz4", "1101" + "f403" + "1f610100ffd2000200b06161616161616161616161", CodecCompact, strings.Repeat("a", 500), Meta{}},
	{"metadata", "1401" + "0a80e2cfaa06bc85d5aa06" + hex.EncodeToString([]byte("hello")), CodecCompact, "hello", Meta{Start: 1700000000, IndexUntil: 1700086460}},
	{"metadata with fields of a later release", "1601" + "0880e2cfaa06000701" + "78797a", CodecCompact, "xyz", Meta{Start: 1700000000}},
	{"metadata with a user", "1401" + "1b80e2cfaa06bc85d5aa0610" + "000102030405060708090a0b0c0d0e0f" + "78797a", CodecCompact, "xyz", Meta{Start: 1700000000, IndexUntil: 1700086460, User: "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", HasUser: true}},
	{"metadata with no user, and fields of a later release", "1401" + "0880e2cfaa06000001" + "78797a", CodecCompact, "xyz", Meta{Start: 1700000000, HasUser: true}},
	{"metadata with a user and its lifetime", "1401" + "1e80e2cfaa06bc85d5aa0610" + "000102030405060708090a0b0c0d0e0f" + "80a305" + "78797a", CodecCompact, "xyz", Meta{Start: 1700000000, IndexUntil: 1700086460, User: "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", HasUser: true, TTL: 86400}},
	{"metadata with a user, its lifetime and fields of a later release", "1401" + "2080e2cfaa06bc85d5aa0610" + "000102030405060708090a0b0c0d0e0f" + "80a305" + "0102" + "78797a", CodecCompact, "xyz", Meta{Start: 1700000000, IndexUntil: 1700086460, User: "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", HasUser: true, TTL: 86400}},
	{"metadata and lz4", "1501" + "0680e2cfaa0600" + "f403" + "1f610100ffd2000200b06161616161616161616161", CodecCompact, strings.Repeat("a", 500), Meta{Start: 1700000000}},
}

func TestEnvelopeGoldenVectors(t *testing.T) {
	t.Parallel()
	for _, tt := range envelopeGolden {
		t.Run(tt.name, func(t *testing.T) {
			b, err := hex.DecodeString(tt.hex)
			noErr(t, err)
			o, err := Open(string(b), maxLength, nil, nil, nil)
			noErr(t, err)
			equal(t, "codec", o.Codec, tt.codec)
			equal(t, "payload", o.Payload, tt.payload)
			equal(t, "meta", o.Meta, tt.meta)
		})
	}
}

func TestAppendEnvelope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		payload    string
		min        int
		wantHeader string
	}{
		{"below the threshold", strings.Repeat("a", 399), 400, "1001"},
		{"at the threshold", strings.Repeat("a", 400), 400, "1101"},
		{"compression off", strings.Repeat("a", 5000), -1, "1001"},
		{"incompressible", randomText(1000), 400, "1201"},
		{"empty", "", 0, "1001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("keep")
			env := Append(prefix, []byte(tt.payload), CodecCompact, LZ4{}, tt.min, false, Meta{})
			equal(t, "prefix kept", string(env[:4]), "keep")
			env = env[4:]
			equal(t, "header", hex.EncodeToString(env[:2]), tt.wantHeader)
			if env[0]&FlagCompressed != 0 && len(env) >= headerLen+len(tt.payload) {
				t.Fatalf("compressed to %d bytes, not shorter than %d", len(env), headerLen+len(tt.payload))
			}
			o, err := Open(string(env), maxLength, nil, nil, nil)
			noErr(t, err)
			equal(t, "codec", o.Codec, CodecCompact)
			equal(t, "payload", o.Payload, tt.payload)
		})
	}
}

// bomb is an LZ4 envelope that claims, and really expands to, n zero bytes.
func bomb(n int) string {
	src := make([]byte, n)
	dst := make([]byte, lz4.CompressBlockBound(n))
	m, err := lz4.CompressBlock(src, dst, nil)
	if err != nil {
		panic(err)
	}
	env := binary.AppendUvarint([]byte{Version<<4 | FlagCompressed, CodecCompact}, uint64(n))
	return string(append(env, dst[:m]...))
}

func TestEnvelopeMetadataRoundTrips(t *testing.T) {
	t.Parallel()
	user := strings.Repeat("u", UserDigestLen)
	for _, m := range []Meta{{Start: 1}, {Start: 1700000000, IndexUntil: 1800000000}, {IndexUntil: 5},
		{Start: 1, User: user, HasUser: true, TTL: 1<<31 - 1}, {HasUser: true}, {User: user, HasUser: true}} {
		for _, payload := range []string{"", "short", strings.Repeat("abc", 400), randomText(1000)} {
			env := Append([]byte("pre"), []byte(payload), CodecCompact, LZ4{}, 400, false, m)
			o, err := Open(string(env[3:]), maxLength, nil, nil, nil)
			noErr(t, err)
			equal(t, "codec", o.Codec, CodecCompact)
			equal(t, "payload", o.Payload, payload)
			equal(t, "meta", o.Meta, m)
			if o.Flags&flagMeta != 0 {
				t.Fatalf("flags %#x still have flagMeta", o.Flags)
			}
		}
	}
	// Without metadata the envelope is byte for byte what releases without
	// it write.
	equal(t, "envelope", string(Append(nil, []byte("hello"), CodecCompact, LZ4{}, 400, false, Meta{})), "\x10\x01hello")
}

func TestOpenEnvelopeRefusesBadInput(t *testing.T) {
	t.Parallel()
	lz := func(size uint64, block string) string {
		return string(binary.AppendUvarint([]byte{0x11, 0x01}, size)) + block
	}
	valid := bomb(1000)
	tests := []struct {
		name string
		env  string
		want error
	}{
		{"empty", "", ErrCorrupt},
		{"one byte", "\x10", ErrCorrupt},
		{"a future version", "\x30\x01abc", ErrUnknownFormat},
		{"a sealed value with unknown extension flags", "\x20\x01\x03abc", ErrUnknownFormat},
		{"a sealed value with no extension byte", "\x20\x01", ErrCorrupt},
		{"version zero", "\x00\x01abc", ErrUnknownFormat},
		{"a compressor named, not compressed", "\x18\x01abc", ErrCorrupt},
		{"an unknown compressor", "\x19\x01\x7f\x05abcde", ErrUnknownFormat},
		{"an application's compressor this store lacks", "\x19\x01\x80\x05abcde", ErrUnknownFormat},
		{"a compressor byte missing", "\x19\x01", ErrCorrupt},
		{"no metadata block", "\x14\x01", ErrCorrupt},
		{"a metadata block past the end", "\x14\x01\x09\x01\x02", ErrCorrupt},
		{"a metadata block over its limit", "\x14\x01\x41" + strings.Repeat("\x01", 65), ErrCorrupt},
		{"a metadata field cut short", "\x14\x01\x01\x80abc", ErrCorrupt},
		{"compressed and incompressible at once", "\x13\x01abc", ErrCorrupt},
		{"boj/redistore's raw gob", "\x0d\x7f\x04\x01\x02\xff\x80", ErrUnknownFormat},
		{"JSON", `{"a":1}`, ErrUnknownFormat},
		{"a plain payload over MaxLength", "\x10\x01" + strings.Repeat("a", 2000), ErrTooLarge},
		{"a compressed length over MaxLength", lz(1<<20, "\x00"), ErrTooLarge},
		{"a 1 MiB bomb", bomb(1 << 20), ErrTooLarge},
		{"no compressed length", "\x11\x01", ErrCorrupt},
		{"a truncated block", valid[:len(valid)-3], ErrCorrupt},
		{"a block shorter than its length", lz(1200, valid[4:]), ErrCorrupt},
		{"garbage block", lz(100, "\xff\xff\xff\xff\xff"), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(tt.env, 1500, nil, nil, nil)
			var e *Error
			if !errors.As(err, &e) || e.Kind != tt.want || !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want an *Error of %v", err, tt.want)
			}
			equal(t, "text", err.Error(), e.Kind.Error()+": "+e.Err.Error())
		})
	}
}

func TestIncompressibleSessionsAreNotCompressedAgain(t *testing.T) {
	t.Parallel()
	payload := []byte(randomText(1000))
	env := Append(nil, payload, CodecCompact, LZ4{}, 400, true, Meta{})
	equal(t, "header", hex.EncodeToString(env[:2]), "1201")
	equal(t, "payload kept", string(env[2:]), string(payload))
	// A compressible payload under the same hint is left plain too: the
	// hint is only given for sessions of about the size that did not compress.
	env = Append(nil, []byte(strings.Repeat("a", 1000)), CodecCompact, LZ4{}, 400, true, Meta{})
	equal(t, "hinted", env[0]&FlagCompressed, byte(0))
}

// TestDecompressionBombAllocatesNothingBig reads the process's allocation
// counter, so it does not run in parallel with other tests.
func TestDecompressionBombAllocatesNothingBig(t *testing.T) {
	env := bomb(1 << 20)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 10; i++ {
		if _, err := Open(env, maxLength, nil, nil, nil); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("error %v, want ErrTooLarge", err)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
		t.Fatalf("refusing ten 1 MiB bombs allocated %d bytes", got)
	}
}

func FuzzOpenEnvelope(f *testing.F) {
	ring := testRing(f, 1)
	ad := []byte("k\x00f")
	for _, tt := range envelopeGolden {
		b, _ := hex.DecodeString(tt.hex)
		f.Add(b)
		if sealed, err := Seal(nil, b, ring, ad); err == nil {
			f.Add(sealed)
		}
	}
	for _, tt := range zstdGolden {
		b, _ := hex.DecodeString(tt.hex)
		f.Add(b)
	}
	f.Add([]byte(bomb(3000)))
	dec := storeDecompress(4096)
	f.Fuzz(func(t *testing.T, env []byte) {
		// Opened with the ring whatever it is: a value in clear opens as
		// without one, a sealed one only as it was sealed.
		o, err := Open(string(env), 4096, dec, ring, ad)
		if plain, errPlain := Open(string(env), 4096, dec, nil, nil); (errPlain == nil) != (err == nil && o.SealedBy < 0) || errPlain == nil && plain.Payload != o.Payload {
			t.Fatalf("with a ring: sealed by %d, %v; without: %v", o.SealedBy, err, errPlain)
		}
		if err != nil {
			// The store reports each kind under its own sentinel.
			var e *Error
			if !errors.As(err, &e) || e.Kind != ErrCorrupt && e.Kind != ErrUnknownFormat && e.Kind != ErrTooLarge {
				t.Fatalf("error %v is not an *Error of a sentinel", err)
			}
			return
		}
		if len(o.Payload) > 4096 {
			t.Fatalf("payload of %d bytes over MaxLength", len(o.Payload))
		}
		// An envelope that opens can be written again and opens the same,
		// in clear and sealed.
		again := Append(nil, []byte(o.Payload), o.Codec, LZ4{}, 0, false, o.Meta)
		o2, err := Open(string(again), 4096, nil, nil, nil)
		if err != nil || o2.Codec != o.Codec || o2.Payload != o.Payload || o2.Meta != o.Meta {
			t.Fatalf("rewritten envelope differs: %v", err)
		}
		sealed, err := Seal(nil, again, ring, ad)
		if err != nil {
			t.Fatal(err)
		}
		o3, err := Open(string(sealed), 4096, nil, ring, ad)
		if err != nil || o3.Codec != o.Codec || o3.Payload != o.Payload || o3.Meta != o.Meta || o3.SealedBy != 0 {
			t.Fatalf("sealed envelope differs: %v", err)
		}
	})
}

// TestMetaLifetimeFollowsOnlyAUser: the lifetime is written after a user
// and nowhere else, so that a block without a user reads as releases
// before it read it.
func TestMetaLifetimeFollowsOnlyAUser(t *testing.T) {
	t.Parallel()
	for _, m := range []Meta{{Start: 1, TTL: 60}, {Start: 1, HasUser: true, TTL: 60}} {
		o, err := Open(string(Append(nil, []byte("x"), CodecCompact, LZ4{}, -1, false, m)), maxLength, nil, nil, nil)
		noErr(t, err)
		m.TTL = 0
		equal(t, "meta", o.Meta, m)
	}
	// A lifetime past any the store gives is not one.
	block := "\x01\x00\x10" + strings.Repeat("u", UserDigestLen) + "\x80\x80\x80\x80\x10"
	o, err := Open("\x14\x01"+string(rune(len(block)))+block+"x", maxLength, nil, nil, nil)
	noErr(t, err)
	equal(t, "meta", o.Meta, Meta{Start: 1, User: strings.Repeat("u", UserDigestLen), HasUser: true})
}
