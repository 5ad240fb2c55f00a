package redistore

import (
	"encoding/hex"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func TestValidID(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		"0123456789abcdef0123456789abcdef":   true,
		"0123456789ABCDEF0123456789ABCDEF":   false,
		"0123456789abcdef0123456789abcde":    false,
		"0123456789abcdef0123456789abcdef0":  false,
		"0123456789abcdef0123456789abcdeg":   false,
		"":                                   false,
		"0123456789abcdef\x000123456789abcd": false,
	}
	for id, want := range tests {
		equal(t, "ValidID("+id+")", ValidID(id), want)
	}
}

func TestDefaultGenerators(t *testing.T) {
	t.Parallel()
	id := "00ff0123456789abcdef0123456789ab"
	raw, _ := hex.DecodeString(id)
	k, err := RawKeyGenerator("p:")(id)
	noErr(t, err)
	equal(t, "RawKeyGenerator", k, "p:"+string(raw))
	k, err = BucketKeyGenerator("p:")(id)
	noErr(t, err)
	equal(t, "BucketKeyGenerator", k, "p:\x00\xff")
	if _, err := RawKeyGenerator("p:")("nope"); err == nil {
		t.Fatal("RawKeyGenerator accepted a malformed ID")
	}
	if _, err := BucketKeyGenerator("p:")("nope"); err == nil {
		t.Fatal("BucketKeyGenerator accepted a malformed ID")
	}

	// The store's inlined default layout is the generators' layout.
	tg := newMiniTarget(t)
	for _, mode := range []Mode{HashMode, StringMode} {
		inlined := newStore(t, tg, Config{Mode: mode})
		explicit := newStore(t, tg, Config{Mode: mode, KeyGenerator: RawKeyGenerator(tg.prefix)})
		if mode == HashMode {
			explicit = newStore(t, tg, Config{Mode: mode, KeyGenerator: RawKeyGenerator(""), HashKeyGenerator: BucketKeyGenerator(tg.prefix)})
		}
		a, err := inlined.locate(id)
		noErr(t, err)
		b, err := explicit.locate(id)
		noErr(t, err)
		equal(t, mode.String()+" layout", a, b)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	id := newID()
	if r := redact(id); strings.Contains(r, id) || strings.Contains(r, id[:8]) {
		t.Fatalf("redact(%q) = %q", id, r)
	}
}

// FuzzCookie feeds arbitrary cookie values to a store: it must answer with a
// session every time, never panic, and never reach Redis with what it got.
func FuzzCookie(f *testing.F) {
	tg := newMiniTarget(f)
	cc := &countingClient{Client: tg.client}
	s, err := New(Config{Client: cc, KeyPairs: testKeys, KeyPrefix: tg.prefix})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := s.codecs[0].Encode("sid", []byte(newID()))
	f.Add(good)
	f.Add("")
	f.Add(good[:10])
	f.Add(strings.Repeat("A", 5000))
	f.Fuzz(func(t *testing.T, value string) {
		cc.reset()
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", "sid="+value)
		sess, err := s.New(r, "sid")
		if sess == nil {
			t.Fatal("nil session")
		}
		if err == nil && !sess.IsNew {
			t.Fatal("an arbitrary cookie loaded a session")
		}
		n := cc.reset()
		c, cerr := r.Cookie("sid")
		if cerr != nil {
			if n != 0 || err != nil {
				t.Fatalf("no cookie, yet %d Redis calls and error %v", n, err)
			}
			return
		}
		id, _, derr := s.decodeCookie("sid", c.Value)
		if (derr != nil || !ValidID(id)) && n != 0 {
			t.Fatalf("%d Redis calls for a cookie without a valid ID", n)
		}
	})
}

func TestBucketCounts(t *testing.T) {
	t.Parallel()
	id := "abcd0123456789abcdef0123456789ab" // raw: ab cd 01 ...
	tg := newMiniTarget(t)
	for _, tt := range []struct {
		buckets int
		bucket  string // after the prefix
	}{
		{1, "\x00"},
		{16, "\xa0"},
		{256, "\xab"},
		{4096, "\xab\xc0"},
		{DefaultBuckets, "\xab\xcd"},
		{1 << 20, "\xab\xcd\x00"},
		{MaxBuckets, "\xab\xcd\x01"},
	} {
		t.Run(strconv.Itoa(tt.buckets), func(t *testing.T) {
			s := newStore(t, tg, Config{Buckets: tt.buckets})
			loc, err := s.locate(id)
			noErr(t, err)
			equal(t, "bucket", loc.key, tg.prefix+tt.bucket)
			raw, _ := hex.DecodeString(id)
			equal(t, "field", loc.field, string(raw))
			equal(t, "owns its bucket", s.OwnsKey(loc.key), true)
			equal(t, "owns a longer key", s.OwnsKey(loc.key+"x"), false)

			// Every bucket a sample can name is one IDs map to, and they
			// are distinct.
			seen := map[string]bool{}
			for i := 0; i < min(tt.buckets, 4096); i++ {
				k := string(hashLayoutOf(s).buckets.key(i))
				if seen[k] {
					t.Fatalf("bucket %d repeats key %x", i, k)
				}
				seen[k] = true
				if k[len(k)-1]&^hashLayoutOf(s).buckets.mask != 0 {
					t.Fatalf("bucket %d has key %x with bits below the mask", i, k)
				}
			}
		})
	}
	t.Run("IDs spread over every bucket", func(t *testing.T) {
		s := newStore(t, tg, Config{Buckets: 16})
		seen := map[string]bool{}
		for i := 0; i < 2000; i++ {
			loc, err := s.locate(newID())
			noErr(t, err)
			seen[loc.key] = true
		}
		equal(t, "buckets used", len(seen), 16)
	})
	for _, bad := range []int{-1, 3, 1000, MaxBuckets * 2} {
		if _, err := New(Config{Client: tg.client, KeyPairs: testKeys, Buckets: bad}); err == nil || !strings.Contains(err.Error(), "power of two") {
			t.Errorf("Buckets %d: error %v, want one asking for a power of two", bad, err)
		}
	}
	if _, err := New(Config{Client: tg.client, KeyPairs: testKeys, Buckets: 256, Mode: StringMode}); err == nil {
		t.Error("Buckets accepted in StringMode")
	}
	if _, err := New(Config{Client: tg.client, KeyPairs: testKeys, Buckets: 256, HashKeyGenerator: BucketKeyGenerator("x")}); err == nil {
		t.Error("Buckets accepted beside a HashKeyGenerator")
	}
}
