package redistore

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/redisession/redistore/internal/envelope"
)

// TestCompressorIDs: the IDs this package exports are the ones the
// envelope writes and its compressors report.
func TestCompressorIDs(t *testing.T) {
	t.Parallel()
	equal(t, "CompressorLZ4", CompressorLZ4, envelope.CompressorLZ4)
	equal(t, "CompressorZstd", CompressorZstd, envelope.CompressorZstd)
	equal(t, "LZ4().ID()", LZ4().ID(), CompressorLZ4)
	for _, level := range []ZstdLevel{ZstdFastest, ZstdDefault, ZstdBetter, ZstdBest} {
		z, err := Zstd(level)
		noErr(t, err)
		equal(t, "Zstd().ID()", z.ID(), CompressorZstd)
	}
	if _, err := Zstd(ZstdLevel(99)); err == nil {
		t.Fatal("Zstd(99): no error")
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
