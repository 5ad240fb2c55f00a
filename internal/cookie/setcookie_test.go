package cookie

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
)

// maxAgeLimit is redistore.maxAgeLimit: the store clamps Options.MaxAge to
// it before it adds the cookie.
const maxAgeLimit = 1 << 30

// sameSetCookie reports what Add and net/http (through gorilla's
// sessions.NewCookie) add for the same cookie, from the same second.
func sameSetCookie(t testing.TB, name, value string, opts *sessions.Options) (got, want []string) {
	t.Helper()
	for {
		before := time.Now().Unix()
		a, b := httptest.NewRecorder(), httptest.NewRecorder()
		Add(a, name, value, opts)
		http.SetCookie(b, sessions.NewCookie(name, value, opts))
		if time.Now().Unix() == before {
			return a.Header()["Set-Cookie"], b.Header()["Set-Cookie"]
		}
	}
}

func TestSetCookieMatchesNetHTTP(t *testing.T) {
	// net/http logs what it drops; the comparison is of the headers.
	defer log.SetOutput(log.Writer())
	log.SetOutput(io.Discard)

	codec := securecookie.New(securecookie.GenerateRandomKey(32), nil)
	encoded, err := codec.Encode("sid", []byte("0123456789abcdef0123456789abcdef"))
	noErr(t, err)
	names := []string{"sid", "session-id", "a.b_c~d!#$%&'*+^`|", "", "bad name", "bad;name", "bad=name", "naïve", "x\x7f"}
	values := []string{encoded, "", "plain", "with space", "with,comma", `with"quote`, "with;semi", `with\backslash`, "tab\there", "nul\x00", "ünicode", "a=b=="}
	paths := []string{"", "/", "/app/x-y_z.~", "/a b", "/a;b", "/\x7f", "/ü"}
	domains := []string{"", "example.com", ".example.com", "bad domain", "127.0.0.1"}
	maxAges := []int{-5, -1, 0, 1, 86400 * 30, maxAgeLimit}
	sameSites := []http.SameSite{0, http.SameSiteDefaultMode, http.SameSiteLaxMode, http.SameSiteStrictMode, http.SameSiteNoneMode, 9}
	n := 0
	for _, name := range names {
		for _, value := range values {
			for _, path := range paths {
				for _, domain := range domains {
					for i, maxAge := range maxAges {
						// Flags and SameSite vary with the other fields, so
						// that every combination of them is seen.
						opts := &sessions.Options{
							Path: path, Domain: domain, MaxAge: maxAge,
							HttpOnly: n&1 != 0, Secure: n&2 != 0, Partitioned: n&4 != 0,
							SameSite: sameSites[(n/8+i)%len(sameSites)],
						}
						n++
						got, want := sameSetCookie(t, name, value, opts)
						if !slices.Equal(got, want) {
							t.Fatalf("name %q value %q options %+v:\n got %q\nwant %q", name, value, opts, got, want)
						}
					}
				}
			}
		}
	}
	t.Logf("%d cookies compared", n)
}

func TestSetCookieAddsToTheHeaders(t *testing.T) {
	w := httptest.NewRecorder()
	w.Header().Add("Set-Cookie", "other=1")
	Add(w, "sid", "v", &sessions.Options{Path: "/", MaxAge: -1})
	want := []string{"other=1", "sid=v; Path=/; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0"}
	if got := w.Header()["Set-Cookie"]; !slices.Equal(got, want) {
		t.Fatalf("Set-Cookie = %q, want %q", got, want)
	}
}

func FuzzSetCookie(f *testing.F) {
	defer log.SetOutput(log.Writer())
	log.SetOutput(io.Discard)
	f.Add("sid", "MTcwMDAwMDAwMHxhYmN8ZGVm", "/", "", 3600, true, false, uint8(2))
	f.Add("s i d", "a b", "/a;b", "example.com", -1, false, true, uint8(4))
	f.Fuzz(func(t *testing.T, name, value, path, domain string, maxAge int, httpOnly, secure bool, flags uint8) {
		if maxAge > maxAgeLimit || maxAge < -maxAgeLimit {
			t.Skip() // the store clamps MaxAge first
		}
		opts := &sessions.Options{Path: path, Domain: domain, MaxAge: maxAge, HttpOnly: httpOnly, Secure: secure,
			SameSite: http.SameSite(flags % 8), Partitioned: flags&8 != 0}
		got, want := sameSetCookie(t, name, value, opts)
		if !slices.Equal(got, want) {
			t.Fatalf("name %q value %q options %+v:\n got %q\nwant %q", name, value, opts, got, want)
		}
	})
}

func BenchmarkSetCookie(b *testing.B) {
	codec := securecookie.New(securecookie.GenerateRandomKey(32), nil)
	value, err := codec.Encode("sid", []byte("0123456789abcdef0123456789abcdef"))
	noErr(b, err)
	opts := &sessions.Options{Path: "/", MaxAge: 86400 * 30, HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode}
	h := make(http.Header)
	w := headerWriter{h}
	b.Run("net/http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			delete(h, "Set-Cookie")
			http.SetCookie(w, sessions.NewCookie("sid", value, opts))
		}
	})
	b.Run("store", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			delete(h, "Set-Cookie")
			Add(w, "sid", value, opts)
		}
	})
}

// headerWriter is a ResponseWriter that only has headers.
type headerWriter struct{ h http.Header }

func (w headerWriter) Header() http.Header         { return w.h }
func (w headerWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w headerWriter) WriteHeader(int)             {}
