package redistore

import (
	"encoding/hex"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestValidID(t *testing.T) {
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
