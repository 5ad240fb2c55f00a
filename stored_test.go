package redistore

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pierrec/lz4/v4"
	"github.com/redisession/redistore/internal/envelope"
)

// bomb is an LZ4 envelope that claims, and really expands to, n zero bytes.
func bomb(n int) string {
	src := make([]byte, n)
	dst := make([]byte, lz4.CompressBlockBound(n))
	m, err := lz4.CompressBlock(src, dst, nil)
	if err != nil {
		panic(err)
	}
	env := binary.AppendUvarint([]byte{envelope.Version<<4 | envelope.FlagCompressed, envelope.CodecCompact}, uint64(n))
	return string(append(env, dst[:m]...))
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
		{"a future format version", "\x30\x01\x00", ErrUnknownFormat},
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

// storedErrors are values a store may find in Redis (after the expiry),
// each with the sentinel its error matches and the error's exact text: the
// texts applications log and match on stay as they are.
var storedErrors = []struct {
	name  string
	value string
	want  error
	text  string
}{
	{"an empty value", "", ErrCorrupt,
		"redistore: stored session is corrupt: 0-byte value is shorter than the envelope header"},
	{"a future format version", "\x30\x01\x00", ErrUnknownFormat,
		"redistore: stored session has an unknown format: envelope version 3 flags 0x0 (this release reads versions 1 and 2)"},
	{"unknown extension flags", "\x20\x01\x02\x00", ErrUnknownFormat,
		"redistore: stored session has an unknown format: envelope extension flags 0x2 (this release reads 0x1)"},
	{"compressed and incompressible at once", "\x13\x01abc", ErrCorrupt,
		"redistore: stored session is corrupt: envelope says both compressed and incompressible"},
	{"no metadata block", "\x14\x01", ErrCorrupt,
		"redistore: stored session is corrupt: bad metadata block"},
	{"a metadata field cut short", "\x14\x01\x01\x80abc", ErrCorrupt,
		"redistore: stored session is corrupt: bad metadata field"},
	{"a compressor named, not compressed", "\x18\x01abc", ErrCorrupt,
		"redistore: stored session is corrupt: envelope names a compressor but is not compressed"},
	{"a compressor byte missing", "\x19\x01", ErrCorrupt,
		"redistore: stored session is corrupt: no compressor byte"},
	{"an unknown compressor", "\x19\x01\x7f\x05abcde", ErrUnknownFormat,
		"redistore: stored session has an unknown format: compressed by compressor 0x7f, which this store does not have (Config.Compressor)"},
	{"no compressed length", "\x11\x01", ErrCorrupt,
		"redistore: stored session is corrupt: bad compressed length"},
	{"a garbage LZ4 block", "\x11\x01\x64\xff\xff\xff\xff\xff", ErrCorrupt,
		"redistore: stored session is corrupt: lz4: lz4: invalid source or destination buffer too short"},
	{"a garbage zstd frame", "\x19\x01\x02\x05abcde", ErrCorrupt,
		"redistore: stored session is corrupt: zstd: invalid input: magic number mismatch"},
	{"a plain payload over MaxLength", "\x10\x01" + strings.Repeat("a", 600), ErrTooLarge,
		"redistore: session too large: stored session is 600 bytes, over MaxLength 500"},
	{"a decompression bomb", bomb(1 << 20), ErrTooLarge,
		"redistore: session too large: compressed session expands to 1048576 bytes, over MaxLength 500"},
	{"an unknown codec", "\x10\x42\x00", ErrUnknownFormat,
		"redistore: stored session has an unknown format: codec 0x42"},
	{"a truncated compact payload", "\x10\x01\x02\x03\x01", ErrCorrupt,
		"redistore: stored session is corrupt: compact codec: at byte 1: count 2 exceeds the data"},
	{"an unknown compact tag", "\x10\x01\x01\x03\x01k\x99", ErrCorrupt,
		"redistore: stored session is corrupt: compact codec: at byte 5: unknown tag 0x99"},
	{"a bad gob item in a compact payload", "\x10\x01\x01\x03\x01k\x7f\x03\xff\xff\xff", ErrCorrupt,
		"redistore: stored session is corrupt: compact codec: gob: unexpected EOF"},
	{"gob garbage", "\x10\x02\xff\xff\xff", ErrCorrupt,
		"redistore: stored session is corrupt: gob: unexpected EOF"},
}

// unregistered is a type no test registers with gob.
type unregistered struct{ X int }

// TestErrorsFromInternalPackagesKeepTheirSentinels: whatever part of the
// store finds a stored value unreadable (the envelope, a decompressor, the
// compact codec), Get, Lookup and UserSessions report it under this
// package's sentinels, with the same text.
func TestErrorsFromInternalPackagesKeepTheirSentinels(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	for _, mode := range []Mode{HashMode, StringMode} {
		s := newStore(t, tg, Config{Mode: mode, MaxLength: 500, UserKey: "uid"})
		for _, tt := range storedErrors {
			t.Run(mode.String()+"/"+tt.name, func(t *testing.T) {
				check := func(what string, err error) {
					t.Helper()
					if !errors.Is(err, tt.want) {
						t.Fatalf("%s: error %v, want %v", what, err, tt.want)
					}
					if !strings.HasSuffix(err.Error(), tt.text) {
						t.Fatalf("%s: error text\n %q\nwant it to end in\n %q", what, err, tt.text)
					}
				}
				b, sess := signIn(t, s, "u-"+tt.name)
				loc, err := s.locate(sess.ID)
				noErr(t, err)
				stored := "\xff\xff\xff\xff" + tt.value // far-future expiry: only the envelope is wrong
				if mode == HashMode {
					tg.do(t, "HSET", loc.key, loc.field, stored)
				} else {
					tg.do(t, "SET", loc.key, stored)
				}
				_, err = s.New(b.request(), "sid")
				check("Get", err)
				equal(t, "Get's text", err.Error(), tt.text)
				_, err = s.Lookup(t.Context(), sess.ID)
				check("Lookup", err)
				equal(t, "Lookup's text", err.Error(), tt.text)
				_, err = s.UserSessions(t.Context(), "u-"+tt.name)
				check("UserSessions", err)
			})
		}
	}
	t.Run("CompactSerializer.Decode", func(t *testing.T) {
		err := CompactSerializer{}.Decode([]byte("\x01\x03\x01k\x99"), map[any]any{})
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v, want ErrCorrupt", err)
		}
		equal(t, "text", err.Error(), "redistore: stored session is corrupt: compact codec: at byte 5: unknown tag 0x99")
	})
	t.Run("CompactSerializer.Encode", func(t *testing.T) {
		deep := any("x")
		for range 40 {
			deep = []any{deep}
		}
		for _, tt := range []struct {
			name   string
			values map[any]any
			text   string
		}{
			{"too deep", map[any]any{"k": deep},
				"redistore: value of type []interface {}: redistore: values nested deeper than 32 levels"},
			{"an unregistered type", map[any]any{"k": unregistered{1}},
				"redistore: value of type redistore.unregistered: gob: gob: type not registered for interface: redistore.unregistered"},
			{"a key of an unregistered type", map[any]any{unregistered{1}: 1},
				"redistore: key of type redistore.unregistered: gob: gob: type not registered for interface: redistore.unregistered"},
		} {
			_, err := CompactSerializer{}.Encode(nil, tt.values)
			if err == nil {
				t.Fatalf("%s: no error", tt.name)
			}
			equal(t, tt.name, err.Error(), tt.text)
		}
	})
}

// failingCompressor is an application's compressor whose values never
// decompress: with an error of its own, or with one that says it does not
// know the format.
type failingCompressor struct {
	xorCompressor
	err error
}

func (c failingCompressor) Decompress(dst, src []byte) error { return c.err }

// TestApplicationDecompressorErrors: an application compressor's error is
// reported as corrupt, with its text, unless it says ErrUnknownFormat
// itself: then it is reported as it is.
func TestApplicationDecompressorErrors(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	for _, tt := range []struct {
		name string
		err  error
		want error
		text string
	}{
		{"its own error", errors.New("rle: bad run"), ErrCorrupt,
			"redistore: stored session is corrupt: rle: bad run"},
		{"ErrUnknownFormat", fmt.Errorf("%w: rle version 9", ErrUnknownFormat), ErrUnknownFormat,
			"redistore: stored session has an unknown format: rle version 9"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tg.prefix = randomPrefix()
			s := newStore(t, tg, Config{Compressor: failingCompressor{xorCompressor{id: 0x81}, tt.err}})
			b := newBrowser()
			sess, r := b.get(t, s, "sid")
			sess.Values["pad"] = strings.Repeat("z", 2000)
			b.save(t, s, r, sess)
			r = httptest.NewRequest("GET", "/", nil)
			r.AddCookie(&http.Cookie{Name: "sid", Value: cookieFor(t, s, "sid", sess.ID)})
			_, err := s.New(r, "sid")
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			equal(t, "text", err.Error(), tt.text)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v does not match the compressor's", err)
			}
			_, err = s.Lookup(context.Background(), sess.ID)
			equal(t, "Lookup's text", err.Error(), tt.text)
		})
	}
}
