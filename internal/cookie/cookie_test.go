package cookie

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"

	"github.com/gorilla/securecookie"
)

// referenceCodec is the securecookie codec the store's cookieCodecs builds
// for key.
func referenceCodec(key []byte) *securecookie.SecureCookie {
	return securecookie.New(key, nil).MaxAge(0).SetSerializer(securecookie.NopEncoder{})
}

// forgeMACCookie builds a value in securecookie's layout from its parts, with a
// valid MAC over whatever date and encoded ID it is given.
func forgeMACCookie(key []byte, name, date, encodedID string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(name + "|" + date + "|" + encodedID))
	return base64.URLEncoding.EncodeToString(append([]byte(date+"|"+encodedID+"|"), h.Sum(nil)...))
}

// TestCookieFastPathMatchesSecurecookie: the store's own reader of cookie
// values accepts what securecookie.Decode accepts, with the same ID, and
// refuses what it refuses.
func TestCookieFastPathMatchesSecurecookie(t *testing.T) {
	t.Parallel()
	key := securecookie.GenerateRandomKey(32)
	other := securecookie.GenerateRandomKey(64)
	ref := referenceCodec(key)
	fast := NewDecoder(key)
	agree := func(what, name, value string) {
		t.Helper()
		var want []byte
		refErr := ref.Decode(name, value, &want)
		got, ok := fast.Decode(name, value)
		switch {
		case refErr == nil && !ok:
			t.Fatalf("%s: securecookie reads %q, the fast path refuses it", what, want)
		case refErr != nil && ok:
			t.Fatalf("%s: securecookie refuses it (%v), the fast path reads %q", what, refErr, got)
		case ok && got != string(want):
			t.Fatalf("%s: fast path read %q, securecookie %q", what, got, want)
		}
	}
	for _, id := range []string{newID(), newID(), "", "a|b|c", strings.Repeat("x", 2000), "\x00\xff|"} {
		v, err := ref.Encode("sid", []byte(id))
		noErr(t, err)
		agree("a value securecookie made", "sid", v)
		if got, ok := fast.Decode("sid", v); !ok || got != id {
			t.Fatalf("fast path read %q, %v from a value holding %q", got, ok, id)
		}
		agree("another cookie name", "other", v)
		otherV, err := referenceCodec(other).Encode("sid", []byte(id))
		noErr(t, err)
		agree("another key", "sid", otherV)
		for i := 0; i < len(v); i += 7 {
			for _, c := range []byte{'A', '_', '-', '=', '|'} {
				b := []byte(v)
				b[i] = c
				agree("a changed byte", "sid", string(b))
			}
		}
		agree("cut short", "sid", v[:len(v)/2])
		agree("more after it", "sid", v+"AAAA")
		agree("with a line break", "sid", v[:8]+"\r\n"+v[8:])
	}
	enc := base64.URLEncoding.EncodeToString([]byte(newID()))
	for _, date := range []string{"1700000000", "", "-5", "12x", "99999999999999999999", " 1"} {
		agree("date "+date, "sid", forgeMACCookie(key, "sid", date, enc))
	}
	for _, e := range []string{"", "!!!!", enc[:len(enc)-1], enc + "\n"} {
		agree("encoded ID "+e, "sid", forgeMACCookie(key, "sid", "1700000000", e))
	}
	agree("too long", "sid", forgeMACCookie(key, "sid", "1700000000", base64.URLEncoding.EncodeToString(make([]byte, 3500))))
	// securecookie's limit is 4096 characters: an ID of 2271 bytes makes
	// a value of exactly that, one of 2274 bytes one of 4104.
	limit := forgeMACCookie(key, "sid", "1700000000", base64.URLEncoding.EncodeToString(make([]byte, 2271)))
	equal(t, "length of the longest value", len(limit), 4096)
	agree("4096 characters", "sid", limit)
	if _, ok := fast.Decode("sid", limit); !ok {
		t.Fatal("a value of 4096 characters was refused")
	}
	over := forgeMACCookie(key, "sid", "1700000000", base64.URLEncoding.EncodeToString(make([]byte, 2274)))
	equal(t, "length of a value past the limit", len(over), 4104)
	agree("4104 characters", "sid", over)
	// A MAC holding '|' (the split takes the first two only).
	for d := 1700000000; ; d++ {
		date := strconv.Itoa(d)
		h := hmac.New(sha256.New, key)
		h.Write([]byte("sid|" + date + "|" + enc))
		if !bytes.Contains(h.Sum(nil), []byte("|")) {
			continue
		}
		v := forgeMACCookie(key, "sid", date, enc)
		agree("a MAC holding '|'", "sid", v)
		if _, ok := fast.Decode("sid", v); !ok {
			t.Fatal("a value whose MAC holds '|' was refused")
		}
		break
	}
	agree("empty", "sid", "")
	agree("one pipe", "sid", base64.URLEncoding.EncodeToString([]byte("1700000000|abc")))
}

// FuzzCookieFastPath: the fast path and securecookie agree on any value
// (both refuse it, or both read the same ID from it) and neither panics.
// A random change to a value breaks its MAC, which both check before
// anything else, so each input is also a payload, a date and an encoded
// ID that the target signs as securecookie lays them out (date "|" ID,
// the MAC over name "|" date "|" ID): the checks behind the MAC (the
// date, the base64 of the ID, the length limit) see fuzzed input too.
func FuzzCookieFastPath(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	ref := referenceCodec(key)
	fast := NewDecoder(key)
	b64 := base64.URLEncoding.EncodeToString
	hexID := "0123456789abcdef0123456789abcdef" // an ID as the store makes them
	id := b64([]byte(hexID))
	good, _ := ref.Encode("sid", []byte(hexID))
	// Raw values, each with a well-formed payload beside it.
	for _, v := range []string{good, good[:10], good + "AAAA", strings.Repeat("A", 5000), ""} {
		f.Add(v, "1700000000", id)
	}
	// Payloads, each also given signed as the raw value.
	for _, p := range []struct{ date, encodedID string }{
		{"1700000000", id},
		{"0", id},                    // long expired (the store's codecs have no MaxAge)
		{"-5", id},                   // before 1970
		{"99999999999", id},          // in the future
		{"99999999999999999999", id}, // past int64
		{"+5", id},
		{" 1", id},
		{"", id},
		{"x", "abc"},
		{"1700000000", ""},                      // an empty ID
		{"1700000000", "!!!!"},                  // not base64
		{"1700000000", id[:len(id)-1]},          // base64 cut short
		{"1700000000", id + "\n"},               // base64 with a line break
		{"1700000000", "a|b"},                   // a third '|': the MAC no longer matches
		{"1", b64([]byte("a|b"))},               // an ID holding '|'
		{"1700000000", b64([]byte(hexID[:31]))}, // IDs of the wrong length
		{"1700000000", b64([]byte(hexID + "0"))},
		{"1700000000", b64([]byte("\x00\xff|\x80"))}, // an ID not in hexadecimal
		{"1700000000", b64(make([]byte, 2271))},      // a value of 4096 characters, the limit
		{"1700000000", b64(make([]byte, 2274))},      // 4104 characters, past it
	} {
		f.Add(forgeMACCookie(key, "sid", p.date, p.encodedID), p.date, p.encodedID)
	}
	f.Fuzz(func(t *testing.T, value, date, encodedID string) {
		for _, v := range []string{value, forgeMACCookie(key, "sid", date, encodedID)} {
			var want []byte
			refErr := ref.Decode("sid", v, &want)
			got, ok := fast.Decode("sid", v)
			if (refErr == nil) != ok || (ok && got != string(want)) {
				t.Fatalf("value %q: securecookie: %q, %v; fast path: %q, %v", v, want, refErr, got, ok)
			}
		}
	})
}

// BenchmarkCookieDecode: reading a session cookie's ID, with securecookie
// and with the store's fast path.
func BenchmarkCookieDecode(b *testing.B) {
	key := securecookie.GenerateRandomKey(32)
	ref := referenceCodec(key)
	fast := NewDecoder(key)
	v, _ := ref.Encode("sid", []byte(newID()))
	b.Run("securecookie", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out []byte
			if err := ref.Decode("sid", v, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("store", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := fast.Decode("sid", v); !ok {
				b.Fatal("refused")
			}
		}
	})
}
