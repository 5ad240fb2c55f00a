package redistore

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"github.com/redis/rueidis"
	"github.com/redisession/redistore/internal/envelope"
)

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	c := newMiniTarget(t).client
	key := []byte("0123456789abcdef0123456789abcdef")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no client", Config{KeyPairs: [][]byte{key}}, "Config.Client is nil"},
		{"no key pairs", Config{Client: c}, "Config.KeyPairs is empty"},
		{"empty hash key", Config{Client: c, KeyPairs: [][]byte{key, nil, {}}}, "KeyPairs[2] (a hash key) is empty"},
		{"1-byte hash key first", Config{Client: c, KeyPairs: [][]byte{{1}}}, "KeyPairs[0], the hash key every new cookie is signed with, is 1 bytes: use at least 32"},
		{"31-byte hash key first", Config{Client: c, KeyPairs: [][]byte{key[:31]}}, "`openssl rand -hex 32`"},
		{"a short key first, how to migrate", Config{Client: c, KeyPairs: [][]byte{[]byte("secret-key")}}, "put the new key first and the old pair after it"},
		{"block key of a wrong size", Config{Client: c, KeyPairs: [][]byte{key, []byte("short")}}, "KeyPairs[1] (a block key) is 5 bytes"},
		{"unknown mode", Config{Client: c, KeyPairs: [][]byte{key}, Mode: 7}, "Config.Mode 7 is unknown"},
		{"bucket generator in StringMode", Config{Client: c, KeyPairs: [][]byte{key}, Mode: StringMode, HashKeyGenerator: BucketKeyGenerator("x")}, "HashKeyGenerator is set but Mode is StringMode"},
		{"negative MaxLength", Config{Client: c, KeyPairs: [][]byte{key}, MaxLength: -1}, "Config.MaxLength is -1"},
		{"negative Timeout", Config{Client: c, KeyPairs: [][]byte{key}, Timeout: -time.Second}, "Config.Timeout is -1s"},
		{"negative BrowserSessionTTL", Config{Client: c, KeyPairs: [][]byte{key}, BrowserSessionTTL: -time.Hour}, "Config.BrowserSessionTTL is -1h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if err == nil || s != nil {
				t.Fatalf("New = %v, %v; want an error", s, err)
			}
			if !strings.HasPrefix(err.Error(), "redistore: ") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestNewFillsDefaults(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	s, err := New(Config{Client: tg.client, KeyPairs: testKeys, KeyPrefix: tg.prefix}) // not newStore: its test defaults differ
	noErr(t, err)
	o := s.Options
	equal(t, "Path", o.Path, "/")
	equal(t, "MaxAge", o.MaxAge, 86400*30)
	equal(t, "HttpOnly", o.HttpOnly, true)
	equal(t, "SameSite", o.SameSite, http.SameSiteLaxMode)
	equal(t, "Secure", o.Secure, false)
	equal(t, "mode", s.layout.mode(), HashMode)
	equal(t, "prefix", s.prefix, tg.prefix)
	equal(t, "codec", s.codec, envelope.CodecCompact)
	equal(t, "minCompress", s.minCompress, DefaultCompressMinLength)
	equal(t, "maxLength", s.maxLength, DefaultMaxLength)
	equal(t, "timeout", s.timeout, DefaultTimeout)
	equal(t, "browserTTL", s.browserTTL, int64(DefaultBrowserSessionTTL/time.Second))
	s2, err := New(Config{Client: tg.client, KeyPairs: testKeys})
	noErr(t, err)
	equal(t, "default prefix", s2.prefix, DefaultKeyPrefix)
}

func TestGorillaContract(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		cc := &countingClient{Client: tg.client}
		s := newStore(t, tg, Config{Mode: mode, Client: cc})

		t.Run("no cookie gives a new session and no error", func(t *testing.T) {
			cc.reset()
			sess, err := s.Get(httptest.NewRequest("GET", "/", nil), "sid")
			noErr(t, err)
			if sess == nil || !sess.IsNew || sess.ID != "" || len(sess.Values) != 0 {
				t.Fatalf("got %+v, want a new empty session", sess)
			}
			equal(t, "Redis calls", cc.reset(), 0)
		})

		t.Run("Get returns the same session twice in one request", func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			a, _ := s.Get(r, "sid")
			b, _ := s.Get(r, "sid")
			if a != b {
				t.Fatal("second Get returned another session")
			}
		})

		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		sess.Values["user"] = "alice"
		b.save(t, s, r, sess)
		id := sess.ID
		good := b.cookies["sid"].Value

		bad := []struct {
			name, value string
		}{
			{"a tampered cookie", good[:len(good)-4] + "AAAA"},
			{"a truncated cookie", good[:len(good)/2]},
			{"garbage", "!!!not base64!!!"},
			{"an empty cookie", ""},
			{"a cookie signed with another key", encodeWith(t, []byte("another hash key, 32 bytes long."), "sid", id)},
			{"a cookie issued under another name", cookieFor(t, s, "other", id)},
			{"an enormous cookie", strings.Repeat(good, 1<<20/len(good))},
		}
		for _, tt := range bad {
			t.Run(tt.name+" gives a new session, an error, and no Redis call", func(t *testing.T) {
				cc.reset()
				r := httptest.NewRequest("GET", "/", nil)
				r.AddCookie(&http.Cookie{Name: "sid", Value: tt.value})
				sess, err := s.Get(r, "sid")
				if err == nil {
					t.Fatal("no error")
				}
				if !strings.HasPrefix(err.Error(), "redistore: ") {
					t.Fatalf("error %q lacks the package prefix", err)
				}
				if sess == nil || !sess.IsNew || sess.ID != "" || len(sess.Values) != 0 {
					t.Fatalf("got %+v, want a new empty session", sess)
				}
				equal(t, "Redis calls", cc.reset(), 0)
			})
		}

		t.Run("the cookie carries only the signed ID", func(t *testing.T) {
			var raw []byte
			sc := securecookie.New(testKeys[0], testKeys[1]).SetSerializer(securecookie.NopEncoder{})
			noErr(t, sc.Decode("sid", good, &raw))
			equal(t, "ID in cookie", string(raw), id)
			if strings.Contains(decodeB64(good), id) {
				t.Fatal("the encrypted cookie shows the ID in clear")
			}
		})

		t.Run("a cookie replayed after logout gets a new session and a new ID", func(t *testing.T) {
			gone := newBrowser()
			sess, r := gone.get(t, s, "sid")
			b.save(t, s, r, sess)
			gone.save(t, s, r, sess)
			old := sess.ID
			sess.Options.MaxAge = -1
			w := httptest.NewRecorder()
			noErr(t, s.Save(r, w, sess))
			// The browser kept its cookie (say it ignored the deletion).
			sess, r = gone.get(t, s, "sid")
			if !sess.IsNew || sess.ID != "" {
				t.Fatalf("got IsNew=%v ID set=%v, want a new session without ID", sess.IsNew, sess.ID != "")
			}
			gone.save(t, s, r, sess)
			if sess.ID == old || !ValidID(sess.ID) {
				t.Fatal("the store adopted the old ID")
			}
		})
	})
}

// encodeWith encodes an ID the way the store does, with another key or name.
func encodeWith(t testing.TB, hashKey []byte, name, id string) string {
	t.Helper()
	v, err := securecookie.New(hashKey, nil).SetSerializer(securecookie.NopEncoder{}).Encode(name, []byte(id))
	noErr(t, err)
	return v
}

// cookieFor encodes an ID as s would for the named cookie.
func cookieFor(t testing.TB, s *Store, name, id string) string {
	t.Helper()
	v, err := s.codecs[0].Encode(name, []byte(id))
	noErr(t, err)
	return v
}

func decodeB64(s string) string {
	b, _ := base64.URLEncoding.DecodeString(s)
	return string(b)
}

// forgeCookie builds a securecookie value (hash key only) with a chosen
// timestamp, as securecookie.Encode would have written it at that time.
func forgeCookie(hashKey []byte, name, id string, at time.Time) string {
	value := base64.URLEncoding.EncodeToString([]byte(id))
	b := fmt.Sprintf("%s|%d|%s|", name, at.Unix(), value)
	mac := hmac.New(sha256.New, hashKey)
	mac.Write([]byte(b[:len(b)-1]))
	out := append([]byte(b), mac.Sum(nil)...)[len(name)+1:]
	return base64.URLEncoding.EncodeToString(out)
}

func TestServerDecidesExpiryNotTheCookieCodec(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	hashKey := testKeys[0]
	s := newStore(t, tg, Config{KeyPairs: [][]byte{hashKey}})
	s.Options.MaxAge = 90 * 86400 // longer than securecookie's default 30 days
	b := newBrowser()
	sess, r := b.get(t, s, "sid")
	sess.Values["n"] = 1
	b.save(t, s, r, sess)

	// A cookie issued 60 days ago for a session the server still keeps.
	r = httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: "sid", Value: forgeCookie(hashKey, "sid", sess.ID, time.Now().Add(-60*24*time.Hour))})
	got, err := s.Get(r, "sid")
	noErr(t, err)
	if got.IsNew || got.Values["n"] != 1 {
		t.Fatalf("a 60-day-old cookie of a live 90-day session was refused: %+v", got)
	}
}

func TestIDs(t *testing.T) {
	t.Parallel()
	t.Run("new IDs are 128 random bits in lowercase hex", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 1000; i++ {
			id := newID()
			if !ValidID(id) || len(id) != 32 || strings.ToLower(id) != id {
				t.Fatalf("bad ID %q", id)
			}
			if seen[id] {
				t.Fatal("duplicate ID")
			}
			seen[id] = true
		}
	})

	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		var logs bytes.Buffer
		cc := &countingClient{Client: tg.client}
		s := newStore(t, tg, Config{Mode: mode, Client: cc, LogKeyErrors: true,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})

		malformed := []string{
			"0", strings.Repeat("a", 31), strings.Repeat("a", 33),
			strings.Repeat("A", 32), strings.Repeat("g", 32),
			strings.Repeat("a", 31) + "\x00", strings.Repeat("a", 30) + "é",
			"../../../../etc/passwd/aaaaaaaaa", strings.Repeat("a", 2000),
			"*", "session:*", "0123456789abcdef0123456789abcde ",
		}
		for i, id := range malformed {
			t.Run("malformed ID "+strconv.Itoa(i)+" gives a new session and no Redis call", func(t *testing.T) {
				logs.Reset()
				cc.reset()
				r := httptest.NewRequest("GET", "/", nil)
				r.AddCookie(&http.Cookie{Name: "sid", Value: cookieFor(t, s, "sid", id)})
				sess, err := s.Get(r, "sid")
				if !errors.Is(err, ErrInvalidID) {
					t.Fatalf("error %v, want ErrInvalidID", err)
				}
				if !sess.IsNew || sess.ID != "" {
					t.Fatal("not a new session")
				}
				equal(t, "Redis calls", cc.reset(), 0)
				line := logs.String()
				if !strings.Contains(line, "rejected session ID") || !strings.Contains(line, "redacted") {
					t.Fatalf("no redacted warning logged: %q", line)
				}
				if len(id) > 3 && strings.Contains(line, id) {
					t.Fatalf("the log shows the ID: %q", line)
				}
			})
		}

		t.Run("the default layout uses the raw ID bytes", func(t *testing.T) {
			b := newBrowser()
			sess, r := b.get(t, s, "sid")
			sess.Values["k"] = "v"
			b.save(t, s, r, sess)
			raw, err := rawID(sess.ID)
			noErr(t, err)
			if mode == HashMode {
				equal(t, "HEXISTS bucket field", tg.do(t, "HEXISTS", s.prefix+string(raw[:2]), string(raw[:])).AsBoolMust(t), true)
			} else {
				equal(t, "EXISTS key", tg.do(t, "EXISTS", s.prefix+string(raw[:])).IntMust(t), 1)
			}
		})
	})
}

// resultT adds test assertions to a reply.
type resultT struct{ rueidis.RedisResult }

func (r resultT) AsBoolMust(t testing.TB) bool {
	t.Helper()
	v, err := r.AsBool()
	noErr(t, err)
	return v
}

func (r resultT) IntMust(t testing.TB) int64 {
	t.Helper()
	v, err := r.AsInt64()
	noErr(t, err)
	return v
}

func TestCustomKeyGenerators(t *testing.T) {
	hexKey := func(prefix string) func(string) (string, error) {
		return func(id string) (string, error) { return prefix + id, nil }
	}
	// broken returns generators that must be refused; field says whether
	// the key would still be acceptable as a HashMode field (which needs no
	// prefix).
	broken := func(prefix string) []struct {
		what  string
		gen   func(string) (string, error)
		field bool
	} {
		return []struct {
			what  string
			gen   func(string) (string, error)
			field bool
		}{
			{"an error", func(string) (string, error) { return "", errors.New("no") }, false},
			{"an empty key", func(string) (string, error) { return "", nil }, false},
			{"a key outside the prefix", func(id string) (string, error) { return "other:" + id, nil }, true},
			{"the bare prefix", func(string) (string, error) { return prefix, nil }, true},
			{"a 2000-byte key", func(string) (string, error) { return prefix + strings.Repeat("k", 2000), nil }, false},
		}
	}
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		t.Run("a working generator is used", func(t *testing.T) {
			cfg := Config{Mode: mode, KeyGenerator: hexKey(tg.prefix + "s:")}
			if mode == HashMode {
				cfg.KeyGenerator = hexKey("")
				cfg.HashKeyGenerator = func(id string) (string, error) { return tg.prefix + "b:" + id[:3], nil }
			}
			s := newStore(t, tg, cfg)
			b := newBrowser()
			sess, r := b.get(t, s, "sid")
			sess.Values["k"] = "v"
			b.save(t, s, r, sess)
			if mode == HashMode {
				equal(t, "HEXISTS", tg.do(t, "HEXISTS", tg.prefix+"b:"+sess.ID[:3], sess.ID).AsBoolMust(t), true)
			} else {
				equal(t, "EXISTS", tg.do(t, "EXISTS", tg.prefix+"s:"+sess.ID).IntMust(t), 1)
			}
			got, _ := b.get(t, s, "sid")
			equal(t, "value", got.Values["k"], any("v"))
		})

		for _, bad := range broken(tg.prefix) {
			for _, which := range []string{"KeyGenerator", "HashKeyGenerator"} {
				if which == "HashKeyGenerator" && mode == StringMode {
					continue
				}
				if which == "KeyGenerator" && mode == HashMode && bad.field {
					continue
				}
				what, gen := bad.what, bad.gen
				t.Run(which+" returning "+what+" is refused and writes nothing", func(t *testing.T) {
					cfg := Config{Mode: mode}
					if which == "KeyGenerator" {
						cfg.KeyGenerator = gen
					} else {
						cfg.HashKeyGenerator = gen
					}
					s := newStore(t, tg, cfg)
					before := dbsize(t, tg)
					sess, _ := s.New(httptest.NewRequest("GET", "/", nil), "sid")
					sess.Values["k"] = "v"
					w := httptest.NewRecorder()
					err := s.Save(httptest.NewRequest("GET", "/", nil), w, sess)
					if !errors.Is(err, ErrInvalidID) {
						t.Fatalf("Save error %v, want ErrInvalidID", err)
					}
					equal(t, "keys in Redis", dbsize(t, tg), before)
					equal(t, "Set-Cookie", w.Header().Get("Set-Cookie"), "")

					// A valid cookie whose ID the generator refuses.
					r := httptest.NewRequest("GET", "/", nil)
					r.AddCookie(&http.Cookie{Name: "sid", Value: cookieFor(t, s, "sid", newID())})
					if _, err := s.Get(r, "sid"); !errors.Is(err, ErrInvalidID) {
						t.Fatalf("Get error %v, want ErrInvalidID", err)
					}
				})
			}
		}
	})
}

// dbsize counts the keys on the target, on every primary of a cluster.
func dbsize(t testing.TB, tg *target) int64 {
	t.Helper()
	var n int64
	for _, c := range tg.primaries(t) {
		v, err := c.Do(context.Background(), c.B().Dbsize().Build()).AsInt64()
		noErr(t, err)
		n += v
	}
	return n
}

// scanPrefix lists the keys under the test's prefix with their types, on
// every primary of a cluster.
func scanPrefix(t testing.TB, tg *target, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range tg.primaries(t) {
		var cursor uint64
		for {
			e, err := c.Do(context.Background(), c.B().Scan().Cursor(cursor).Match(escapeGlob(prefix)+"*").Count(1000).Build()).AsScanEntry()
			noErr(t, err)
			for _, k := range e.Elements {
				typ, err := tg.do(t, "TYPE", k).ToString()
				noErr(t, err)
				out[k] = typ
			}
			if e.Cursor == 0 {
				break
			}
			cursor = e.Cursor
		}
	}
	return out
}

func TestOnlySessionsUnderThePrefix(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode})
		ids := map[string]bool{}
		for i := 0; i < 20; i++ {
			b := newBrowser()
			sess, r := b.get(t, s, "sid")
			sess.Values["i"] = i
			b.save(t, s, r, sess)
			ids[sess.ID] = true
			if i%5 == 0 { // and some logouts
				delete(ids, sess.ID)
				sess.Options.MaxAge = -1
				b.save(t, s, r, sess)
			}
		}
		keys := scanPrefix(t, tg, tg.prefix)
		want := map[string]bool{}
		for id := range ids {
			loc, err := s.locate(id)
			noErr(t, err)
			want[loc.key] = true
		}
		for k, typ := range keys {
			if !want[k] {
				t.Errorf("unexpected key %q (%s) under the prefix", k, typ)
			}
			wantType := map[Mode]string{HashMode: "hash", StringMode: "string"}[mode]
			equal(t, "type of "+strconv.Quote(k), typ, wantType)
		}
		equal(t, "keys", len(keys), len(want))
	})
}

// storedTTL returns how long the server keeps the session: the key's TTL in
// StringMode, the expiry in the value in HashMode.
func storedTTL(t testing.TB, tg *target, s *Store, id string) time.Duration {
	t.Helper()
	loc, err := s.locate(id)
	noErr(t, err)
	if s.layout.mode() == StringMode {
		return time.Duration(tg.do(t, "PTTL", loc.key).IntMust(t)) * time.Millisecond
	}
	v, err := tg.do(t, "HGET", loc.key, loc.field).ToString()
	noErr(t, err)
	exp := time.Unix(int64(binary.BigEndian.Uint32([]byte(v[:4]))), 0)
	return exp.Sub(tg.now())
}

// nearTTL checks what is left of a session saved for full, from the start
// of its Save: HashMode's expiry is in whole seconds, rounded down, so up to
// a second less, and whatever time has passed since saved less again.
func nearTTL(t testing.TB, got, full time.Duration, saved time.Time) {
	t.Helper()
	if low := full - time.Second - time.Since(saved); got > full+200*time.Millisecond || got < low {
		t.Fatalf("server TTL %v, want %v or up to a second less, less the %v since the Save began", got, full, time.Since(saved))
	}
}

func near(t testing.TB, what string, got, want, slack time.Duration) {
	t.Helper()
	if got < want-slack || got > want+slack {
		t.Fatalf("%s: got %v, want %v ± %v", what, got, want, slack)
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode, BrowserSessionTTL: 3 * time.Hour})

		t.Run("MaxAge > 0 keeps the session that long on the server", func(t *testing.T) {
			maxAge := 3600
			if tg.mini == nil {
				maxAge = 4 // the real server's clock must be waited for; it lives 3 to 4 s
			}
			s.Options.MaxAge = maxAge
			defer func() { s.Options.MaxAge = DefaultMaxAge }()
			b := newBrowser()
			sess, r := b.get(t, s, "sid")
			sess.Values["n"] = 1
			saved := time.Now()
			w := b.save(t, s, r, sess)
			equal(t, "cookie MaxAge", w.Result().Cookies()[0].MaxAge, maxAge)
			nearTTL(t, storedTTL(t, tg, s, sess.ID), time.Duration(maxAge)*time.Second, saved)

			// HashMode's expiry is in whole seconds, rounded down: a
			// session lives between MaxAge-1 and MaxAge seconds.
			tg.advance(t, time.Duration(maxAge)*time.Second/4)
			if got, _ := b.get(t, s, "sid"); got.IsNew {
				t.Fatal("session gone before MaxAge")
			}
			tg.advance(t, time.Duration(maxAge)*time.Second*3/4+300*time.Millisecond)
			if got, _ := b.get(t, s, "sid"); !got.IsNew {
				t.Fatal("session still there after MaxAge")
			}
		})

		t.Run("MaxAge < 0 deletes the session and expires the cookie", func(t *testing.T) {
			b := newBrowser()
			sess, r := b.get(t, s, "sid")
			sess.Values["n"] = 1
			b.save(t, s, r, sess)
			loc, _ := s.locate(sess.ID)
			sess.Options.MaxAge = -1
			w := httptest.NewRecorder()
			noErr(t, s.Save(r, w, sess))
			c := w.Result().Cookies()
			if len(c) != 1 || c[0].MaxAge >= 0 || c[0].Value != "" {
				t.Fatalf("cookie %+v, want an expired empty one", c)
			}
			if mode == HashMode {
				equal(t, "HEXISTS", tg.do(t, "HEXISTS", loc.key, loc.field).AsBoolMust(t), false)
			} else {
				equal(t, "EXISTS", tg.do(t, "EXISTS", loc.key).IntMust(t), 0)
			}
		})

		t.Run("a MaxAge past MaxAgeLimit counts as MaxAgeLimit, for the cookie and the server alike", func(t *testing.T) {
			for _, maxAge := range []int{MaxAgeLimit + 1, math.MaxInt32, math.MaxInt} {
				b := newBrowser()
				sess, r := b.get(t, s, "sid")
				sess.Options.MaxAge = maxAge
				sess.Values["n"] = 1
				saved := time.Now()
				w := b.save(t, s, r, sess)
				c := w.Result().Cookies()[0]
				equal(t, "cookie MaxAge", c.MaxAge, MaxAgeLimit)
				if want := time.Now().Add(MaxAgeLimit*time.Second - time.Minute); c.Expires.Before(want) {
					t.Fatalf("MaxAge %d: cookie Expires %v, want about %v", maxAge, c.Expires, want)
				}
				nearTTL(t, storedTTL(t, tg, s, sess.ID), MaxAgeLimit*time.Second, saved)
				if got, _ := b.get(t, s, "sid"); got.IsNew || got.Values["n"] != 1 {
					t.Fatalf("MaxAge %d: the session did not load again", maxAge)
				}
			}
		})

		t.Run("MaxAge == 0 makes a browser-session cookie and keeps the data for BrowserSessionTTL", func(t *testing.T) {
			s.Options.MaxAge = 0
			defer func() { s.Options.MaxAge = DefaultMaxAge }()
			b := newBrowser()
			sess, r := b.get(t, s, "sid")
			sess.Values["n"] = 1
			saved := time.Now()
			w := b.save(t, s, r, sess)
			c := w.Result().Cookies()[0]
			if c.MaxAge != 0 || !c.Expires.IsZero() {
				t.Fatalf("cookie MaxAge %d Expires %v, want neither", c.MaxAge, c.Expires)
			}
			nearTTL(t, storedTTL(t, tg, s, sess.ID), 3*time.Hour, saved)
			if got, _ := b.get(t, s, "sid"); got.IsNew || got.Values["n"] != 1 {
				t.Fatal("browser-session cookie lost its session")
			}
		})
	})
}

func TestSaveSkipsUnchangedSessions(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		cc := &countingClient{Client: tg.client}
		s := newStore(t, tg, Config{Mode: mode, Client: cc, TouchInterval: 10 * time.Minute})
		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		sess.Values["n"] = 1
		sess.Values["when"] = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		sess.Values["tags"] = map[string]any{"a": 1, "b": "two", "c": []string{"x"}}
		b.save(t, s, r, sess) // also loads the scripts

		round := func() (get, save int64) {
			t.Helper()
			cc.reset()
			sess, r := b.get(t, s, "sid")
			get = cc.reset()
			b.save(t, s, r, sess)
			return get, cc.reset()
		}

		t.Run("one round trip per Get, none for an unchanged Save", func(t *testing.T) {
			for i := 0; i < 5; i++ {
				get, save := round()
				equal(t, "Get round trips", get, 1)
				equal(t, "Save round trips", save, 0)
			}
		})

		t.Run("a changed session is written in one round trip", func(t *testing.T) {
			cc.reset()
			sess, r := b.get(t, s, "sid")
			sess.Values["n"] = 2
			cc.reset()
			b.save(t, s, r, sess)
			equal(t, "Save round trips", cc.reset(), 1)
			got, _ := b.get(t, s, "sid")
			equal(t, "n", got.Values["n"], any(2))
		})

		t.Run("an unchanged session due for renewal gets only its expiry renewed", func(t *testing.T) {
			before := storedTTL(t, tg, s, sess.ID)
			// The window is min(TouchInterval, MaxAge/10): 10 minutes here.
			skip := 11 * time.Minute
			if tg.mini == nil {
				// On the real server, shorten MaxAge so the window is short.
				s.Options.MaxAge = 20
				defer func() { s.Options.MaxAge = DefaultMaxAge }()
				skip = 2100 * time.Millisecond
				sess, r := b.get(t, s, "sid")
				b.save(t, s, r, sess) // a new MaxAge is a change of expiry: renewed
				before = storedTTL(t, tg, s, sess.ID)
			}
			tg.advance(t, skip)
			_, save := round()
			equal(t, "Save round trips", save, 1)
			after := storedTTL(t, tg, s, sess.ID)
			if after <= before-skip/2 {
				t.Fatalf("expiry not renewed: %v left before, %v after", before, after)
			}
			got, _ := b.get(t, s, "sid")
			equal(t, "n", got.Values["n"], any(2))
		})
	})
}

func TestTooLargeSessionWritesNothing(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode, MaxLength: 500})
		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		sess.Values["small"] = "ok"
		b.save(t, s, r, sess)
		loc, _ := s.locate(sess.ID)
		raw := func() string {
			if mode == HashMode {
				v, _ := tg.do(t, "HGET", loc.key, loc.field).ToString()
				return v
			}
			v, _ := tg.do(t, "GET", loc.key).ToString()
			return v
		}
		before := raw()

		sess, r = b.get(t, s, "sid")
		sess.Values["big"] = strings.Repeat("x", 600)
		w := httptest.NewRecorder()
		err := s.Save(r, w, sess)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Save error %v, want ErrTooLarge", err)
		}
		equal(t, "stored value", raw(), before)
		equal(t, "Set-Cookie", w.Header().Get("Set-Cookie"), "")
		got, _ := b.get(t, s, "sid")
		equal(t, "small", got.Values["small"], any("ok"))
		if _, ok := got.Values["big"]; ok {
			t.Fatal("the oversized value was stored")
		}
	})
}

func TestCompression(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		minCompress int
		value       string
		compressed  bool
	}{
		{"a compressible session over the threshold is compressed", 0, strings.Repeat("abcd", 200), true},
		{"a session under the threshold is not", 0, strings.Repeat("abcd", 50), false},
		{"an incompressible session is not", 0, randomText(900), false},
		{"a negative threshold turns compression off", -1, strings.Repeat("abcd", 200), false},
		{"a low threshold compresses small sessions", 16, strings.Repeat("ab", 40), true},
	}
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := newStore(t, tg, Config{Mode: mode, CompressMinLength: tt.minCompress})
				b := newBrowser()
				sess, r := b.get(t, s, "sid")
				sess.Values["v"] = tt.value
				b.save(t, s, r, sess)
				loc, _ := s.locate(sess.ID)
				var env string
				if mode == HashMode {
					v, err := tg.do(t, "HGET", loc.key, loc.field).ToString()
					noErr(t, err)
					env = v[expiryLen:]
				} else {
					v, err := tg.do(t, "GET", loc.key).ToString()
					noErr(t, err)
					env = v[expiryLen:]
				}
				equal(t, "compressed", env[0]&envelope.FlagCompressed != 0, tt.compressed)
				if tt.compressed && len(env) >= len(tt.value) {
					t.Fatalf("compressed envelope of %d bytes for a %d-byte value", len(env), len(tt.value))
				}
				got, _ := b.get(t, s, "sid")
				equal(t, "value", got.Values["v"], any(tt.value))
			})
		}
	})
}

func randomText(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)[:n]
}

func TestSerializers(t *testing.T) {
	t.Parallel()
	values := map[any]any{"user": "alice", "n": 3}
	jsonValues := map[any]any{"user": "alice", "n": float64(3)}
	serializers := []struct {
		name string
		s    Serializer
		want map[any]any
	}{
		{"compact", CompactSerializer{}, values},
		{"gob", GobSerializer{}, values},
		{"json", JSONSerializer{}, jsonValues},
	}
	forEachTarget(t, func(t *testing.T, tg *target) {
		for _, from := range serializers {
			for _, to := range serializers {
				t.Run("written with "+from.name+" and read by a store using "+to.name, func(t *testing.T) {
					tg.prefix = randomPrefix()
					w := newStore(t, tg, Config{Serializer: from.s})
					r := newStore(t, tg, Config{Serializer: to.s})
					b := newBrowser()
					sess, req := b.get(t, w, "sid")
					for k, v := range values {
						sess.Values[k] = v
					}
					b.save(t, w, req, sess)
					got, _ := b.get(t, r, "sid")
					equal(t, "values", fmt.Sprint(got.Values), fmt.Sprint(from.want))
				})
			}
		}

		t.Run("an application serializer is recorded as such", func(t *testing.T) {
			tg.prefix = randomPrefix()
			custom := newStore(t, tg, Config{Serializer: upperSerializer{}})
			b := newBrowser()
			sess, req := b.get(t, custom, "sid")
			sess.Values["k"] = "v"
			b.save(t, custom, req, sess)
			got, _ := b.get(t, custom, "sid")
			equal(t, "round trip", got.Values["k"], any("v"))

			builtinStore := newStore(t, tg, Config{})
			r := b.request()
			got, err := builtinStore.Get(r, "sid")
			if !errors.Is(err, ErrUnknownFormat) || !got.IsNew {
				t.Fatalf("a store without the application serializer got %v, IsNew=%v", err, got.IsNew)
			}
		})
	})
}

// upperSerializer stores "k=v" lines; it stands for an application's own.
type upperSerializer struct{}

func (upperSerializer) Encode(dst []byte, values map[any]any) ([]byte, error) {
	for k, v := range values {
		dst = fmt.Appendf(dst, "%s=%s\n", k, v)
	}
	return dst, nil
}

func (upperSerializer) Decode(data []byte, values map[any]any) error {
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return errors.New("bad line")
		}
		values[k] = v
	}
	return nil
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	oldKeys := [][]byte{[]byte("old hash key, 32 bytes long.....")}
	newKeys := [][]byte{[]byte("new hash key, 32 bytes long....."), []byte("new block key 16")}
	before := newStore(t, tg, Config{KeyPairs: oldKeys})
	during := newStore(t, tg, Config{KeyPairs: append(append([][]byte{}, newKeys...), oldKeys...)})
	after := newStore(t, tg, Config{KeyPairs: newKeys})

	b := newBrowser()
	sess, r := b.get(t, before, "sid")
	sess.Values["n"] = 1
	b.save(t, before, r, sess)

	sess, r = b.get(t, during, "sid")
	equal(t, "read with the old pair", sess.Values["n"], any(1))
	b.save(t, during, r, sess) // unchanged, but the cookie is re-encoded

	sess, _ = b.get(t, after, "sid")
	equal(t, "read with only the new pair", sess.Values["n"], any(1))
}

// referenceCodec is the securecookie codec cookieCodecs builds for key.
func referenceCodec(key []byte) *securecookie.SecureCookie {
	return securecookie.New(key, nil).MaxAge(0).SetSerializer(securecookie.NopEncoder{})
}

// TestCookieKeyRotation: a cookie made with an older key pair still opens,
// and is reported as not current, with and without a block key in the mix.
func TestCookieKeyRotation(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	oldKey, newKey, block := securecookie.GenerateRandomKey(32), securecookie.GenerateRandomKey(32), securecookie.GenerateRandomKey(32)
	id := newID()
	oldV, err := referenceCodec(oldKey).Encode("sid", []byte(id))
	noErr(t, err)
	encV, err := securecookie.New(oldKey, block).MaxAge(0).SetSerializer(securecookie.NopEncoder{}).Encode("sid", []byte(id))
	noErr(t, err)
	for _, tt := range []struct {
		name  string
		pairs [][]byte
		value string
	}{
		{"old plain key second", [][]byte{newKey, nil, oldKey, nil}, oldV},
		{"old encrypting key second", [][]byte{newKey, nil, oldKey, block}, encV},
		{"encrypting key first, old plain second", [][]byte{newKey, block, oldKey, nil}, oldV},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Config{Client: tg.client, KeyPairs: tt.pairs, KeyPrefix: tg.prefix})
			noErr(t, err)
			got, current, err := s.decodeCookie("sid", tt.value)
			noErr(t, err)
			equal(t, "ID", got, id)
			equal(t, "current", current, false)
			if _, _, err := s.decodeCookie("sid", tt.value[:len(tt.value)-2]); err == nil {
				t.Fatal("a cut cookie decoded")
			}
		})
	}
}

// TestCookieOfTheCurrentPair: a cookie of the first pair is current, also
// when a later pair has the same hash key (encryption turned on, the plain
// pair kept so that old cookies still open): the first pair that takes a
// cookie wins, so an encrypted cookie is decrypted, not read as it is.
func TestCookieOfTheCurrentPair(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	key, block := securecookie.GenerateRandomKey(32), securecookie.GenerateRandomKey(32)
	id := newID()
	for _, tt := range []struct {
		name  string
		pairs [][]byte
	}{
		{"plain", [][]byte{key, nil}},
		{"plain, an older pair after it", [][]byte{key, nil, securecookie.GenerateRandomKey(32), nil}},
		{"encrypting", [][]byte{key, block}},
		{"encrypting, the same hash key plain after it", [][]byte{key, block, key, nil}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Config{Client: tg.client, KeyPairs: tt.pairs, KeyPrefix: tg.prefix})
			noErr(t, err)
			v, err := s.codecs[0].Encode("sid", []byte(id))
			noErr(t, err)
			got, current, err := s.decodeCookie("sid", v)
			noErr(t, err)
			equal(t, "ID", got, id)
			equal(t, "current", current, true)
		})
	}
}

func TestInvalidSessionNames(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	s := newStore(t, tg, Config{})
	for _, name := range []string{"", "a b", "a;b", "a=b", "sé", "a\nb"} {
		t.Run(strconv.Quote(name), func(t *testing.T) {
			sess, err := s.Get(httptest.NewRequest("GET", "/", nil), name)
			if err == nil || sess == nil {
				t.Fatalf("Get = %v, %v; want a session and an error", sess, err)
			}
			if err := s.Save(httptest.NewRequest("GET", "/", nil), httptest.NewRecorder(), sess); err == nil {
				t.Fatal("Save accepted the name")
			}
		})
	}
}

func TestSessionsFromElsewhereAreSaved(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	s := newStore(t, tg, Config{})
	sess := sessions.NewSession(s, "sid")
	sess.Values["k"] = "v"
	w := httptest.NewRecorder()
	noErr(t, s.Save(httptest.NewRequest("GET", "/", nil), w, sess))
	b := newBrowser()
	b.keep(t, w)
	got, _ := b.get(t, s, "sid")
	equal(t, "value", got.Values["k"], any("v"))
}

func TestSessionSaveMethod(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	s := newStore(t, tg, Config{})
	b := newBrowser()
	sess, r := b.get(t, s, "sid")
	sess.Values["k"] = "v"
	w := httptest.NewRecorder()
	noErr(t, sess.Save(r, w)) // through the session's own store
	noErr(t, sessions.Save(r, w))
	b.keep(t, w)
	got, _ := b.get(t, s, "sid")
	equal(t, "value", got.Values["k"], any("v"))
}

var _ = context.Background

func TestRegenerateID(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		cc := &countingClient{Client: tg.client}
		s := newStore(t, tg, Config{Mode: mode, Client: cc})
		warm := newBrowser()
		sess, r := warm.get(t, s, "sid")
		warm.save(t, s, r, sess)
		sess, r = warm.get(t, s, "sid")
		noErr(t, s.RegenerateID(r, httptest.NewRecorder(), sess)) // loads the script

		t.Run("a login keeps the values under a new ID and removes the old one", func(t *testing.T) {
			victim := newBrowser()
			sess, r := victim.get(t, s, "sid")
			sess.Values["cart"] = "3 items"
			victim.save(t, s, r, sess)
			planted := victim.cookies["sid"].Value // what an attacker fixed or saw
			oldID := sess.ID
			oldLoc, _ := s.locate(oldID)

			sess, r = victim.get(t, s, "sid")
			sess.Values["user"] = "alice"
			cc.reset()
			w := httptest.NewRecorder()
			noErr(t, s.RegenerateID(r, w, sess))
			equal(t, "round trips", cc.reset(), tg.roundTripsToMove(s))
			victim.keep(t, w)
			if sess.ID == oldID || !ValidID(sess.ID) {
				t.Fatal("the ID did not change")
			}

			got, _ := victim.get(t, s, "sid")
			equal(t, "user", got.Values["user"], any("alice"))
			equal(t, "cart", got.Values["cart"], any("3 items"))

			attacker := newBrowser()
			attacker.cookies["sid"] = &http.Cookie{Name: "sid", Value: planted}
			stolen, _ := attacker.get(t, s, "sid")
			if !stolen.IsNew || len(stolen.Values) != 0 {
				t.Fatalf("the old cookie still opens the session: %v", stolen.Values)
			}
			if mode == HashMode {
				equal(t, "old field", tg.do(t, "HEXISTS", oldLoc.key, oldLoc.field).AsBoolMust(t), false)
			} else {
				equal(t, "old key", tg.do(t, "EXISTS", oldLoc.key).IntMust(t), 0)
			}
		})

		t.Run("a session never saved just gets its first ID", func(t *testing.T) {
			b := newBrowser()
			sess, r := b.get(t, s, "sid")
			sess.Values["user"] = "bob"
			w := httptest.NewRecorder()
			noErr(t, s.RegenerateID(r, w, sess))
			b.keep(t, w)
			got, _ := b.get(t, s, "sid")
			equal(t, "user", got.Values["user"], any("bob"))
		})
	})
}

func TestRegenerateOnSave(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	s := newStore(t, tg, Config{})
	b := newBrowser()
	sess, r := b.get(t, s, "sid")
	sess.Values["cart"] = 1
	b.save(t, s, r, sess)
	before := sess.ID

	sess, r = b.get(t, s, "sid")
	RegenerateOnSave(sess)
	sess.Values["user"] = "alice"
	w := httptest.NewRecorder()
	noErr(t, sess.Save(r, w)) // a plain gorilla Save, as middleware does
	b.keep(t, w)
	if sess.ID == before {
		t.Fatal("the ID did not change")
	}
	if _, ok := sess.Values[regenerateKey{}]; ok {
		t.Fatal("the marker stayed in Values")
	}
	got, _ := b.get(t, s, "sid")
	equal(t, "user", got.Values["user"], any("alice"))
	equal(t, "cart", got.Values["cart"], any(1))
	loc, _ := s.locate(before)
	equal(t, "old session", tg.do(t, "HEXISTS", loc.key, loc.field).AsBoolMust(t), false)
}

// TestFastForwardPastMaxAgeEndsTheSession is how applications test expiry
// on miniredis: FastForward moves its TTLs but not its clock. With the
// default configuration the key's TTL (StringMode) or the field's
// (HashMode, HEXPIRE) ends the session exactly, whatever path the writes
// took.
func TestFastForwardPastMaxAgeEndsTheSession(t *testing.T) {
	t.Parallel()
	for _, mode := range []Mode{HashMode, StringMode} {
		t.Run(mode.String(), func(t *testing.T) {
			m := miniredis.RunT(t)
			c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{m.Addr()}, DisableCache: true, ForceSingleClient: true})
			noErr(t, err)
			t.Cleanup(c.Close)
			// Timeout aside (a loaded machine can stall miniredis past the
			// default second), the default configuration.
			s, err := New(Config{Client: c, KeyPairs: testKeys, Mode: mode, Timeout: testTimeout})
			noErr(t, err)
			s.Options.MaxAge = 60
			b := newBrowser()
			for visit := 1; visit <= 3; visit++ {
				sess, r := b.get(t, s, "sid")
				n, _ := sess.Values["n"].(int)
				equal(t, "visit", n+1, visit)
				sess.Values["n"] = n + 1
				b.save(t, s, r, sess)
				m.FastForward(30 * time.Second)
			}
			m.FastForward(31 * time.Second) // 61 s after the last write
			if sess, _ := b.get(t, s, "sid"); !sess.IsNew {
				t.Fatalf("61 s after its last write a %d s session is still served", 60)
			}
		})
	}
}

// TestSessionNamesAreCookieNames: a session name that net/http could not
// send as a cookie name gives a usable new session and an error from Get
// and New, and Save refuses it without writing anything, as New's
// documentation and docs/migration.md say.
func TestSessionNamesAreCookieNames(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	cc := &countingClient{Client: tg.client}
	s := newStore(t, tg, Config{Client: cc})
	for _, name := range []string{"my session", "", "a;b", "sid\x00", "séance", "a=b"} {
		r := httptest.NewRequest("GET", "/", nil)
		for what, get := range map[string]func(*http.Request, string) (*sessions.Session, error){"Get": s.Get, "New": s.New} {
			sess, err := get(r, name)
			if err == nil || sess == nil || !sess.IsNew {
				t.Fatalf("%s(%q): session %v, error %v; want a new session and an error", what, name, sess, err)
			}
			sess.Values["user"] = "alice"
			cc.reset()
			w := httptest.NewRecorder()
			if err := s.Save(r, w, sess); err == nil || !strings.Contains(err.Error(), "not a valid cookie name") {
				t.Fatalf("Save of %q: %v, want an error naming the cause", name, err)
			}
			equal(t, "Set-Cookie headers", len(w.Header().Values("Set-Cookie")), 0)
			equal(t, "calls to Redis", cc.reset(), 0)
		}
	}
	for _, name := range []string{"sid", "my-session", "a.b_c", "!#$%&'*+-.^_`|~"} {
		r := httptest.NewRequest("GET", "/", nil)
		sess, err := s.Get(r, name)
		noErr(t, err)
		sess.Values["user"] = "alice"
		w := httptest.NewRecorder()
		noErr(t, s.Save(r, w, sess))
		if c := w.Result().Cookies(); len(c) != 1 || c[0].Name != name {
			t.Fatalf("Save of %q set %v", name, c)
		}
	}
}
