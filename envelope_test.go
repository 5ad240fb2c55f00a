package redistore

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
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
	meta    envMeta
}{
	{"plain compact", "1001" + hex.EncodeToString([]byte("hello")), codecCompact, "hello", envMeta{}},
	{"plain gob", "1002" + "0d7f", codecGob, "\x0d\x7f", envMeta{}},
	{"plain json", "1003" + hex.EncodeToString([]byte(`{"a":1}`)), codecJSON, `{"a":1}`, envMeta{}},
	{"application serializer", "1080" + "00", codecCustom, "\x00", envMeta{}},
	{"empty payload", "1001", codecCompact, "", envMeta{}},
	{"compression tried, not worth it", "1201" + hex.EncodeToString([]byte("xyz")), codecCompact, "xyz", envMeta{}},
	{"lz4", "1101" + "f403" + "1f610100ffd2000200b06161616161616161616161", codecCompact, strings.Repeat("a", 500), envMeta{}},
	{"metadata", "1401" + "0a80e2cfaa06bc85d5aa06" + hex.EncodeToString([]byte("hello")), codecCompact, "hello", envMeta{start: 1700000000, indexUntil: 1700086460}},
	{"metadata with fields of a later release", "1601" + "0880e2cfaa06000701" + "78797a", codecCompact, "xyz", envMeta{start: 1700000000}},
	{"metadata with a user", "1401" + "1b80e2cfaa06bc85d5aa0610" + "000102030405060708090a0b0c0d0e0f" + "78797a", codecCompact, "xyz", envMeta{start: 1700000000, indexUntil: 1700086460, user: "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", hasUser: true}},
	{"metadata with no user, and fields of a later release", "1401" + "0880e2cfaa06000001" + "78797a", codecCompact, "xyz", envMeta{start: 1700000000, hasUser: true}},
	{"metadata and lz4", "1501" + "0680e2cfaa0600" + "f403" + "1f610100ffd2000200b06161616161616161616161", codecCompact, strings.Repeat("a", 500), envMeta{start: 1700000000}},
}

func TestEnvelopeGoldenVectors(t *testing.T) {
	t.Parallel()
	for _, tt := range envelopeGolden {
		t.Run(tt.name, func(t *testing.T) {
			b, err := hex.DecodeString(tt.hex)
			noErr(t, err)
			codec, payload, _, meta, err := openEnvelopeMeta(string(b), DefaultMaxLength)
			noErr(t, err)
			equal(t, "codec", codec, tt.codec)
			equal(t, "payload", payload, tt.payload)
			equal(t, "meta", meta, tt.meta)
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
			env := appendEnvelope(prefix, []byte(tt.payload), codecCompact, tt.min, false)
			equal(t, "prefix kept", string(env[:4]), "keep")
			env = env[4:]
			equal(t, "header", hex.EncodeToString(env[:2]), tt.wantHeader)
			if env[0]&flagLZ4 != 0 && len(env) >= headerLen+len(tt.payload) {
				t.Fatalf("compressed to %d bytes, not shorter than %d", len(env), headerLen+len(tt.payload))
			}
			codec, payload, _, err := openEnvelope(string(env), DefaultMaxLength)
			noErr(t, err)
			equal(t, "codec", codec, codecCompact)
			equal(t, "payload", payload, tt.payload)
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
	env := binary.AppendUvarint([]byte{envelopeVersion<<4 | flagLZ4, codecCompact}, uint64(n))
	return string(append(env, dst[:m]...))
}

func TestEnvelopeMetadataRoundTrips(t *testing.T) {
	t.Parallel()
	for _, m := range []envMeta{{start: 1}, {start: 1700000000, indexUntil: 1800000000}, {indexUntil: 5}} {
		for _, payload := range []string{"", "short", strings.Repeat("abc", 400), randomText(1000)} {
			env := appendEnvelopeMeta([]byte("pre"), []byte(payload), codecCompact, 400, false, m)
			codec, got, flags, meta, err := openEnvelopeMeta(string(env[3:]), DefaultMaxLength)
			noErr(t, err)
			equal(t, "codec", codec, codecCompact)
			equal(t, "payload", got, payload)
			equal(t, "meta", meta, m)
			if flags&flagMeta != 0 {
				t.Fatalf("flags %#x still have flagMeta", flags)
			}
		}
	}
	// Without metadata the envelope is byte for byte what releases without
	// it write.
	plain := appendEnvelope(nil, []byte("hello"), codecCompact, 400, false)
	equal(t, "envelope", string(appendEnvelopeMeta(nil, []byte("hello"), codecCompact, 400, false, envMeta{})), string(plain))
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
		{"a future version", "\x20\x01abc", ErrUnknownFormat},
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
			_, _, _, err := openEnvelope(tt.env, 1500)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestIncompressibleSessionsAreNotCompressedAgain(t *testing.T) {
	t.Parallel()
	payload := []byte(randomText(1000))
	env := appendEnvelope(nil, payload, codecCompact, 400, true)
	equal(t, "header", hex.EncodeToString(env[:2]), "1201")
	equal(t, "payload kept", string(env[2:]), string(payload))
	// A compressible payload under the same hint is left plain too: the
	// hint is only given for sessions of about the size that did not compress.
	env = appendEnvelope(nil, []byte(strings.Repeat("a", 1000)), codecCompact, 400, true)
	equal(t, "hinted", env[0]&flagLZ4, byte(0))
}

// TestDecompressionBombAllocatesNothingBig reads the process's allocation
// counter, so it does not run in parallel with other tests.
func TestDecompressionBombAllocatesNothingBig(t *testing.T) {
	env := bomb(1 << 20)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 10; i++ {
		if _, _, _, err := openEnvelope(env, DefaultMaxLength); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("error %v, want ErrTooLarge", err)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
		t.Fatalf("refusing ten 1 MiB bombs allocated %d bytes", got)
	}
}

func FuzzOpenEnvelope(f *testing.F) {
	for _, tt := range envelopeGolden {
		b, _ := hex.DecodeString(tt.hex)
		f.Add(b)
	}
	for _, tt := range zstdGolden {
		b, _ := hex.DecodeString(tt.hex)
		f.Add(b)
	}
	f.Add([]byte(bomb(3000)))
	dec := testStoreDecompress(f, 4096)
	f.Fuzz(func(t *testing.T, env []byte) {
		o, err := openEnvelopeWith(string(env), 4096, dec)
		codec, payload, meta := o.codec, o.payload, o.meta
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnknownFormat) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v matches no sentinel", err)
			}
			return
		}
		if len(payload) > 4096 {
			t.Fatalf("payload of %d bytes over MaxLength", len(payload))
		}
		// An envelope that opens can be written again and opens the same.
		again := appendEnvelopeMeta(nil, []byte(payload), codec, 0, false, meta)
		codec2, payload2, _, meta2, err := openEnvelopeMeta(string(again), 4096)
		if err != nil || codec2 != codec || payload2 != payload || meta2 != meta {
			t.Fatalf("re-sealed envelope differs: %v", err)
		}
	})
}

func TestGarbageInRedis(t *testing.T) {
	t.Parallel()
	values := []struct {
		name  string
		value string
		want  error
	}{
		{"random bytes", "\x8f\x11\xfe\x00garbage", ErrUnknownFormat},
		{"an empty value", "", ErrCorrupt},
		{"a truncated envelope", "\x10", ErrCorrupt},
		{"a future format version", "\x20\x01\x00", ErrUnknownFormat},
		{"an unknown codec", "\x10\x42\x00", ErrUnknownFormat},
		{"a truncated compact payload", "\x10\x01\x02\x03\x01", ErrCorrupt},
		{"a decompression bomb", bomb(1 << 20), ErrTooLarge},
		{"gob garbage", "\x10\x02\xff\xff\xff", ErrCorrupt},
		{"json garbage", "\x10\x03{{{", ErrCorrupt},
	}
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode})
		for _, tt := range values {
			t.Run(tt.name+" gives a new session and is left alone", func(t *testing.T) {
				id := newID()
				loc, err := s.locate(id)
				noErr(t, err)
				// A far-future expiry, so that only the envelope is wrong.
				stored := "\xff\xff\xff\xff" + tt.value
				if mode == HashMode {
					tg.do(t, "HSET", loc.key, loc.field, stored)
				} else {
					tg.do(t, "SET", loc.key, stored)
				}
				r := httptest.NewRequest("GET", "/", nil)
				r.AddCookie(&http.Cookie{Name: "sid", Value: cookieFor(t, s, "sid", id)})
				sess, err := s.Get(r, "sid")
				if !errors.Is(err, tt.want) {
					t.Fatalf("error %v, want %v", err, tt.want)
				}
				if !sess.IsNew || sess.ID != "" || len(sess.Values) != 0 {
					t.Fatalf("got %+v, want a new empty session", sess)
				}
				sess.Values["k"] = "v"
				noErr(t, s.Save(r, httptest.NewRecorder(), sess))
				if sess.ID == id {
					t.Fatal("the new session took the ID of the unreadable one")
				}
				var now string
				if mode == HashMode {
					now, err = tg.do(t, "HGET", loc.key, loc.field).ToString()
				} else {
					now, err = tg.do(t, "GET", loc.key).ToString()
				}
				noErr(t, err)
				equal(t, "stored value", now, stored)
			})
		}
		t.Run("a value shorter than its expiry is corrupt", func(t *testing.T) {
			id := newID()
			loc, _ := s.locate(id)
			if mode == HashMode {
				tg.do(t, "HSET", loc.key, loc.field, "ab")
			} else {
				tg.do(t, "SET", loc.key, "ab")
			}
			r := httptest.NewRequest("GET", "/", nil)
			r.AddCookie(&http.Cookie{Name: "sid", Value: cookieFor(t, s, "sid", id)})
			if _, err := s.Get(r, "sid"); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v, want ErrCorrupt", err)
			}
		})
	})
}

func TestStoreRetriesCompressionWhenTheSessionChangesSize(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	s := newStore(t, tg, Config{Mode: StringMode})
	b := newBrowser()
	sess, r := b.get(t, s, "sid")
	sess.Values["token"] = randomText(600)
	b.save(t, s, r, sess)
	loc, _ := s.locate(sess.ID)
	header := func() string {
		v, err := tg.do(t, "GET", loc.key).ToString()
		noErr(t, err)
		return hex.EncodeToString([]byte(v[expiryLen : expiryLen+2]))
	}
	equal(t, "first save", header(), "1201")

	sess, r = b.get(t, s, "sid")
	sess.Values["token"] = randomText(600) // still incompressible, same size
	b.save(t, s, r, sess)
	equal(t, "same size", header(), "1201")

	sess, r = b.get(t, s, "sid")
	sess.Values["notes"] = strings.Repeat("compressible ", 300) // much larger now
	b.save(t, s, r, sess)
	equal(t, "larger", header(), "1101")
}
