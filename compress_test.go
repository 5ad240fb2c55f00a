package redistore

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
	meta               envMeta
}{
	{"zstd", "190102f40328b52ffd4000f400a30f0061", strings.Repeat("a", 500), envMeta{}},
	{"zstd with metadata", "1d010680e2cfaa060002d80428b52ffd40005801550000106162015402022d530a", strings.Repeat("ab", 300), envMeta{start: 1700000000}},
}

func testStoreDecompress(t testing.TB, maxLength int) decompressor {
	t.Helper()
	s := &Store{compressor: LZ4(), zstd: &zstdDecoder{max: maxLength}}
	return s.decompress
}

func TestZstdGoldenVectors(t *testing.T) {
	t.Parallel()
	dec := testStoreDecompress(t, DefaultMaxLength)
	for _, tt := range zstdGolden {
		b, err := hex.DecodeString(tt.hex)
		noErr(t, err)
		o, err := openEnvelopeWith(string(b), DefaultMaxLength, dec)
		noErr(t, err)
		equal(t, tt.name+" payload", o.payload, tt.payload)
		equal(t, tt.name+" meta", o.meta, tt.meta)
		equal(t, tt.name+" compressor", o.comp, CompressorZstd)
		// A reader that knows only LZ4 says it cannot, rather than guess.
		if _, err := openEnvelopeWith(string(b), DefaultMaxLength, nil); !errors.Is(err, ErrUnknownFormat) {
			t.Fatalf("%s without a zstd decoder: %v", tt.name, err)
		}
	}
	// Every earlier golden vector opens with the store's decompressor too.
	for _, tt := range envelopeGolden {
		b, _ := hex.DecodeString(tt.hex)
		o, err := openEnvelopeWith(string(b), DefaultMaxLength, dec)
		noErr(t, err)
		equal(t, tt.name, o.payload, tt.payload)
	}
}

func compressors(t testing.TB) map[string]Compressor {
	t.Helper()
	out := map[string]Compressor{"lz4": LZ4()}
	for name, level := range map[string]ZstdLevel{"zstd-fastest": ZstdFastest, "zstd-default": ZstdDefault, "zstd-better": ZstdBetter, "zstd-best": ZstdBest} {
		z, err := Zstd(level)
		noErr(t, err)
		out[name] = z
	}
	return out
}

// TestCompressorsRoundTrip: every compressor round-trips compressible and
// random payloads of every size; an incompressible one is stored plain.
func TestCompressorsRoundTrip(t *testing.T) {
	t.Parallel()
	dec := testStoreDecompress(t, DefaultMaxLength)
	for name, c := range compressors(t) {
		for _, payload := range []string{"", "x", strings.Repeat("session ", 20), strings.Repeat("cart item ", 3000), randomText(5000), randomText(40000)} {
			for _, m := range []envMeta{{}, {start: 1700000000}} {
				env := appendEnvelopeWith(nil, []byte(payload), codecCompact, c, 100, false, m)
				o, err := openEnvelopeWith(string(env), DefaultMaxLength, dec)
				noErr(t, err)
				if o.payload != payload || o.meta != m {
					t.Fatalf("%s: %d-byte payload does not round-trip", name, len(payload))
				}
				if len(env) > len(payload)+16 {
					t.Fatalf("%s: %d-byte payload took %d bytes", name, len(payload), len(env))
				}
			}
		}
	}
}

// TestMixedStoresReadEachOther: sessions written by an LZ4 store open in a
// zstd store and the other way round, in both modes, so that changing
// Config.Compressor logs nobody out.
func TestMixedStoresReadEachOther(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		z, err := Zstd(ZstdBest)
		noErr(t, err)
		lz := newStore(t, tg, Config{Mode: mode})
		zs := newStore(t, tg, Config{Mode: mode, Compressor: z})
		big := strings.Repeat("a large cart: item, item, item; ", 200)
		for _, w := range []*Store{lz, zs} {
			b := newBrowser()
			sess, r := b.get(t, w, "sid")
			sess.Values["cart"] = big
			b.save(t, w, r, sess)
			for _, rd := range []*Store{lz, zs} {
				got, r := b.get(t, rd, "sid")
				equal(t, "cart", got.Values["cart"], any(big))
				got.Values["n"] = 1 // and it writes back in its own compressor
				b.save(t, rd, r, got)
			}
			info, err := zs.Lookup(t.Context(), sess.ID)
			noErr(t, err)
			equal(t, "compressed", info.Compressed, true)
		}
	})
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
		b := binary.AppendUvarint([]byte{envelopeVersion<<4 | flagLZ4 | flagNamed, codecCompact, CompressorZstd}, uint64(claim))
		return string(append(b, frame...))
	}
	dec := testStoreDecompress(t, DefaultMaxLength)
	dec(CompressorZstd, make([]byte, 1), []byte{0}) // the decoder's own, one-time buffers
	for name, env := range map[string]string{
		"sized frame, short claim":     envelope(1000, sized),
		"streamed frame, short claim":  envelope(1000, streamed.Bytes()),
		"sized frame, MaxLength claim": envelope(DefaultMaxLength, sized),
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := openEnvelopeWith(env, DefaultMaxLength, dec)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: %v, want ErrCorrupt", name, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 512<<10 {
			t.Fatalf("%s: allocated %d bytes", name, grew)
		}
	}
	if _, err := openEnvelopeWith(envelope(1<<20, sized), DefaultMaxLength, dec); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a 1 MiB claim: %v, want ErrTooLarge", err)
	}
}

// xorCompressor is an application's compressor, for the tests: it "compresses"
// runs of one byte.
type xorCompressor struct{ id byte }

func (c xorCompressor) ID() byte     { return c.id }
func (c xorCompressor) Name() string { return "rle" }
func (c xorCompressor) Compress(dst, src []byte) ([]byte, error) {
	for i := 0; i < len(src); {
		j := i
		for j < len(src) && j-i < 255 && src[j] == src[i] {
			j++
		}
		dst = append(dst, byte(j-i), src[i])
		i = j
	}
	return dst, nil
}
func (c xorCompressor) Decompress(dst, src []byte) error {
	n := 0
	for i := 0; i+1 < len(src); i += 2 {
		if n+int(src[i]) > len(dst) {
			return errors.New("rle: longer than the header says")
		}
		n += copy(dst[n:], bytes.Repeat(src[i+1:i+2], int(src[i])))
	}
	if n != len(dst) {
		return errors.New("rle: shorter than the header says")
	}
	return nil
}

func TestApplicationCompressor(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	if _, err := New(Config{Client: tg.client, KeyPairs: testKeys, Compressor: xorCompressor{id: 0x02}}); err == nil {
		t.Fatal("an application's compressor with a package ID was accepted")
	}
	s := newStore(t, tg, Config{Compressor: xorCompressor{id: 0x81}})
	b := newBrowser()
	sess, r := b.get(t, s, "sid")
	sess.Values["pad"] = strings.Repeat("z", 2000)
	b.save(t, s, r, sess)
	got, _ := b.get(t, s, "sid")
	equal(t, "pad", got.Values["pad"], any(strings.Repeat("z", 2000)))
	info, err := s.Lookup(t.Context(), sess.ID)
	noErr(t, err)
	if !info.Compressed || info.StoredBytes > 200 {
		t.Fatalf("stored %d bytes, compressed %v", info.StoredBytes, info.Compressed)
	}
	// A store without it says it cannot read such a value.
	other := newStore(t, tg, Config{})
	if _, err := other.New(b.request(), "sid"); !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("a store without the application's compressor: %v, want ErrUnknownFormat", err)
	}
}

// TestStatsCountCompressors: Stats (and so `redistore stats`) says which
// compressors wrote the sampled sessions.
func TestStatsCountCompressors(t *testing.T) {
	t.Parallel()
	miniAndReal(t, func(t *testing.T, tg *target) {
		for _, mode := range []Mode{HashMode, StringMode} {
			t.Run(mode.String(), func(t *testing.T) {
				tg.prefix = randomPrefix()
				z, err := Zstd(ZstdFastest)
				noErr(t, err)
				lz, zs := newStore(t, tg, Config{Mode: mode}), newStore(t, tg, Config{Mode: mode, Compressor: z})
				save := func(s *Store, v string) {
					b := newBrowser()
					sess, r := b.get(t, s, "sid")
					sess.Values["v"] = v
					b.save(t, s, r, sess)
				}
				big := strings.Repeat("compressible ", 100)
				save(lz, big)
				save(lz, big)
				save(lz, big)
				save(zs, big)
				save(zs, big)
				save(zs, "small")
				st, err := lz.Stats(t.Context(), 100)
				noErr(t, err)
				equal(t, "lz4", st.Compressors["lz4"], 3)
				equal(t, "zstd", st.Compressors["zstd"], 2)
				equal(t, "none", st.Compressors["none"], 1)
			})
		}
	})
}

// compactGoldenHex are the compact codec's golden vectors (compactGolden
// in internal/codec), as payloads: every item type of the format.
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
	dec := testStoreDecompress(t, DefaultMaxLength)
	for name, c := range compressors(t) {
		for _, p := range payloads {
			env := appendEnvelopeWith(nil, []byte(p), codecCompact, c, 0, false, envMeta{})
			o, err := openEnvelopeWith(string(env), DefaultMaxLength, dec)
			noErr(t, err)
			if o.payload != p {
				t.Fatalf("%s: a golden payload of %d bytes does not round-trip", name, len(p))
			}
		}
	}
}

// TestZstdWithASmallMaxLength: a store whose MaxLength is under zstd's
// minimum window reads back what it wrote.
func TestZstdWithASmallMaxLength(t *testing.T) {
	t.Parallel()
	z, err := Zstd(ZstdFastest)
	noErr(t, err)
	for _, maxLength := range []int{200, 450, 1000, 2000} {
		dec := testStoreDecompress(t, maxLength)
		payload := []byte(strings.Repeat("abc def ", maxLength/8))
		env := appendEnvelopeWith(nil, payload, codecCompact, z, 100, false, envMeta{})
		o, err := openEnvelopeWith(string(env), maxLength, dec)
		noErr(t, err)
		equal(t, "payload", o.payload, string(payload))
	}
}

// TestZstdRecordedSizeBoundsTheOutput: a frame that holds more than the
// envelope records fails without allocating what the frame holds, even in
// a store whose MaxLength would allow it.
func TestZstdRecordedSizeBoundsTheOutput(t *testing.T) {
	enc, _ := zstd.NewWriter(nil)
	frame := enc.EncodeAll(make([]byte, 512<<10), nil)
	env := string(append(binary.AppendUvarint([]byte{envelopeVersion<<4 | flagLZ4 | flagNamed, codecCompact, CompressorZstd}, 16), frame...))
	dec := testStoreDecompress(t, 1<<20)
	dec(CompressorZstd, make([]byte, 1), []byte{0})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, err := openEnvelopeWith(env, 1<<20, dec); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%v, want ErrCorrupt", err)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<10 {
		t.Fatalf("10 reads of a 16-byte claim allocated %d bytes", grew)
	}
}
