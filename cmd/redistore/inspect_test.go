package main

import (
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/internal/redistest"
)

func TestInspect(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		csrf := hex.EncodeToString(randomBytes(16))
		values := map[string]any{
			"user":       "alice",
			"visits":     3,
			"csrf_token": csrf,
			"prefs":      map[string]any{"theme": "dark", "api_key": "k-123456"},
		}
		hashed := seed(t, f.store(t, redistore.HashMode), 3600, values)
		stringed := seed(t, f.store(t, redistore.StringMode), 3600, values)

		// secretsAbsent checks that the output gives nothing away.
		secretsAbsent := func(t *testing.T, r result, s seeded) {
			t.Helper()
			raw, _ := hex.DecodeString(s.id)
			quotedRaw := strconv.Quote(string(raw))
			for what, secret := range map[string]string{
				"the session ID":        s.id,
				"the raw ID, quoted":    quotedRaw[1 : len(quotedRaw)-1],
				"the cookie value":      s.cookie,
				"the csrf_token value":  csrf,
				"a nested key's value":  "k-123456",
				"the first cookie key":  hex.EncodeToString(f.pairs[0]),
				"the second cookie key": hex.EncodeToString(f.pairs[1]),
			} {
				if what == "the raw ID, quoted" && len(secret) < 16 {
					continue
				}
				for _, out := range []string{r.stdout, r.stderr} {
					lacks(t, what, out, secret)
				}
			}
		}
		shows := func(t *testing.T, r result, s seeded) {
			t.Helper()
			r.wantCode(t, 0)
			secretsAbsent(t, r, s)
			for _, want := range []string{
				s.id[:4] + "…",
			} {
				contains(t, "stdout", r.stdout, want)
			}
			equal(t, "found", row(t, r.stdout, "found"), "found yes")
			equal(t, "codec", row(t, r.stdout, "codec"), "codec compact")
			// Stored expiries are whole seconds: a slow run sees a few seconds less.
			if left := row(t, r.stdout, "expires"); !strings.Contains(left, ", in 59 minutes ") && !strings.HasSuffix(left, ", in 1 hour") {
				t.Fatalf("not an hour left: %s", left)
			}
			for name, want := range map[string]string{
				`"user"`:       `string "alice"`,
				`"visits"`:     `int 3`,
				`"csrf_token"`: `string [redacted, 32 bytes]`,
				`"prefs"`:      `{"api_key": [redacted, 8 bytes], "theme": "dark"}`,
			} {
				contains(t, name, row(t, r.stdout, name), want)
			}
		}

		t.Run("by ID", func(t *testing.T) {
			r := runCmd(t, map[string]string{envURL: f.url}, "inspect", hashed.id, "--prefix", f.prefix)
			shows(t, r, hashed)
			equal(t, "key", row(t, r.stdout, "key"), "key "+strconv.Quote(f.prefix+string(mustHex(t, hashed.id[:4]))))
			contains(t, "stdout", r.stdout, "the 14 raw ID bytes are not shown")
		})
		t.Run("by cookie value", func(t *testing.T) {
			r := f.run(t, "inspect", hashed.cookie)
			shows(t, r, hashed)
			contains(t, "stdout", r.stdout, `from cookie "session"`)
		})
		t.Run("by cookie as copied with its name", func(t *testing.T) {
			shows(t, f.run(t, "inspect", "session="+hashed.cookie), hashed)
		})
		t.Run("in StringMode", func(t *testing.T) {
			r := f.run(t, "inspect", "--mode", "string", stringed.cookie)
			shows(t, r, stringed)
			lacks(t, "stdout", r.stdout, "field")
		})
		t.Run("a session that does not exist", func(t *testing.T) {
			r := f.run(t, "inspect", "0123456789abcdef0123456789abcdef")
			r.wantCode(t, 0)
			contains(t, "found", row(t, r.stdout, "found"), "found no:")
		})
		t.Run("a cookie the keys do not decode", func(t *testing.T) {
			env := f.env()
			env[envKeys] = hex.EncodeToString(randomBytes(32)) + ","
			r := runCmd(t, env, "inspect", hashed.cookie, "--prefix", f.prefix)
			r.wantCode(t, 1)
			r.wantOneErrorLine(t)
			contains(t, "stderr", r.stderr, "invalid session cookie")
			secretsAbsent(t, r, hashed)
		})
		t.Run("a value that is not a session", func(t *testing.T) {
			id := hex.EncodeToString(randomBytes(16))
			raw := mustHex(t, id)
			f.do(t, "HSET", f.prefix+string(raw[:2]), string(raw), "\x00\x01")
			r := f.run(t, "inspect", id)
			r.wantCode(t, 1)
			r.wantOneErrorLine(t)
			contains(t, "stderr", r.stderr, "corrupt")
			equal(t, "found", row(t, r.stdout, "found"), "found yes")
			equal(t, "size", row(t, r.stdout, "size"), "size 2 B stored")
			lacks(t, "stdout", r.stdout, id)
		})
		t.Run("garbage", func(t *testing.T) {
			long := "bm90LWEtY29va2llLWF0LWFsbC1idXQtbG9uZy1lbm91Z2gtdG8tbG9vay1saWtlLW9uZQ"
			r := f.run(t, "inspect", long)
			r.wantCode(t, 1) // shaped like a cookie value: the keys do not decode it
			r.wantOneErrorLine(t)
			lacks(t, "stderr", r.stderr, long)
			r = f.run(t, "inspect", "not-a-cookie-at-all")
			r.wantCode(t, 2) // too short to be one: a usage error
			lacks(t, "stderr", r.stderr, "not-a-cookie-at-all")
		})
	})
}

func TestInspectSignedOnlyCookie(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		f.pairs = [][]byte{f.pairs[0], nil} // a nil block key: signed, not encrypted
		s := seed(t, f.store(t, redistore.HashMode), 3600, map[string]any{"user": "bob"})
		env := map[string]string{envURL: f.url, envKeys: hex.EncodeToString(f.pairs[0]) + ","}
		r := runCmd(t, env, "inspect", s.cookie, "--prefix", f.prefix)
		r.wantCode(t, 0)
		contains(t, "stdout", r.stdout, `"bob"`)
	})
}

// row returns the line that starts with first, its columns one space apart.
func row(t *testing.T, out, first string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == first {
			return strings.Join(f, " ")
		}
	}
	t.Fatalf("no line for %s in:\n%s", first, out)
	return ""
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
