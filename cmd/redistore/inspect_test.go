package main

import (
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

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
			for what, secret := range f.secrets(s, csrf) {
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

// secrets are what inspect must never print of a seeded session whose
// values hold csrf under csrf_token and "k-123456" under a nested api_key.
func (f *fixture) secrets(s seeded, csrf string) map[string]string {
	raw, _ := hex.DecodeString(s.id)
	quotedRaw := strconv.Quote(string(raw))
	out := map[string]string{
		"the session ID":        s.id,
		"the cookie value":      s.cookie,
		"the csrf_token value":  csrf,
		"a nested key's value":  "k-123456",
		"the first cookie key":  hex.EncodeToString(f.pairs[0]),
		"the second cookie key": hex.EncodeToString(f.pairs[1]),
		"the raw ID":            string(raw),
	}
	if len(quotedRaw) >= 18 { // escapes long enough not to turn up by chance
		out["the raw ID, quoted"] = quotedRaw[1 : len(quotedRaw)-1]
	}
	return out
}

// TestInspectJSON: inspect --json shows the session as the text does, its
// values redacted by the same rules, and gives away no more: neither in the
// bytes printed nor in any string they decode to.
func TestInspectJSON(t *testing.T) {
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

		inspect := func(t *testing.T, s seeded, wantCode int, args ...string) (inspectJSON, map[string]any) {
			t.Helper()
			r := f.run(t, append([]string{"inspect", "--json"}, args...)...)
			r.wantCode(t, wantCode)
			var doc inspectJSON
			fields := jsonDoc(t, r, &doc)
			wantNames(t, "inspect --json", fields, "session", "from", "cookie", "key", "field", "found", "expired",
				"expires", "started", "codec", "compressor", "stored_bytes", "serialized_bytes", "values")
			wantNames(t, "key", fields["key"], "shown", "bytes", "hidden_bytes")
			if fields["field"] != nil {
				wantNames(t, "field", fields["field"], "shown", "bytes", "hidden_bytes")
			}
			for _, v := range wantArray(t, "values", fields["values"]) {
				wantNames(t, "a value", v, "name", "type", "value", "redacted")
			}
			decoded := strings.Join(jsonStrings(fields), "\n")
			for what, secret := range f.secrets(s, csrf) {
				lacks(t, what+" (stdout)", r.stdout, secret)
				lacks(t, what+" (stderr)", r.stderr, secret)
				lacks(t, what+" (decoded)", decoded, secret)
			}
			equal(t, "session", doc.Session, s.id[:4]+"…")
			return doc, fields
		}
		// shows checks a session found, against the text's rows.
		shows := func(t *testing.T, doc inspectJSON, s seeded, text result) {
			t.Helper()
			equal(t, "found", doc.Found, true)
			equal(t, "expired", doc.Expired, false)
			equal(t, "codec", doc.Codec, "compact")
			equal(t, "compressor", doc.Compressor, "none")
			if doc.StoredBytes <= 0 || doc.SerializedBytes <= 0 {
				t.Fatalf("sizes: %d stored, %d serialized", doc.StoredBytes, doc.SerializedBytes)
			}
			now := f.serverNow(t)
			inRange(t, "expires", doc.Expires, now.Add(time.Hour-10*time.Second), now.Add(time.Hour))
			if doc.Started != nil { // the store sets neither UserKey nor MaxLifetime
				t.Fatalf("started %s: the store records no start", *doc.Started)
			}
			got := map[string]valueJSON{}
			for _, v := range doc.Values {
				got[v.Name] = v
			}
			for name, want := range map[string]valueJSON{
				"user":       {"user", "string", `"alice"`, false},
				"visits":     {"visits", "int", "3", false},
				"csrf_token": {"csrf_token", "string", "[redacted, 32 bytes]", true},
				"prefs":      {"prefs", "map[string]interface {}", `{"api_key": [redacted, 8 bytes], "theme": "dark"}`, false},
			} {
				equal(t, name, got[name], want)
				// Exactly what the text shows in the value's row.
				quoted := strconv.Quote(name)
				equal(t, name+" as the text shows it", row(t, text.stdout, quoted), strings.Join(strings.Fields(quoted+" "+want.Type+" "+want.Value), " "))
			}
			equal(t, "values", len(doc.Values), len(values))
		}

		t.Run("by ID", func(t *testing.T) {
			doc, _ := inspect(t, hashed, 0, hashed.id)
			shows(t, doc, hashed, f.run(t, "inspect", hashed.id))
			equal(t, "from", doc.From, "id")
			equal(t, "cookie", doc.Cookie, "")
			raw := mustHex(t, hashed.id)
			equal(t, "key", doc.Key, nameJSON{Shown: strconv.Quote(f.prefix + string(raw[:2])), Bytes: len(f.prefix) + 2})
			if doc.Field == nil {
				t.Fatal("no field in HashMode")
			}
			equal(t, "field", *doc.Field, nameJSON{Shown: strconv.Quote(string(raw[:2])) + "…", Bytes: 16, HiddenBytes: 14})
		})
		t.Run("by cookie value", func(t *testing.T) {
			doc, _ := inspect(t, hashed, 0, hashed.cookie)
			shows(t, doc, hashed, f.run(t, "inspect", hashed.cookie))
			equal(t, "from", doc.From, "cookie")
			equal(t, "cookie", doc.Cookie, defaultCookie)
		})
		t.Run("in StringMode", func(t *testing.T) {
			doc, fields := inspect(t, stringed, 0, "--mode", "string", stringed.cookie)
			shows(t, doc, stringed, f.run(t, "inspect", "--mode", "string", stringed.cookie))
			if v, ok := fields["field"]; !ok || v != nil {
				t.Fatalf("field in StringMode is %#v, want null", v)
			}
			raw := mustHex(t, stringed.id)
			equal(t, "key", doc.Key, nameJSON{Shown: strconv.Quote(f.prefix+string(raw[:2])) + "…", Bytes: len(f.prefix) + 16, HiddenBytes: 14})
		})
		t.Run("a session that does not exist", func(t *testing.T) {
			missing := seeded{id: hex.EncodeToString(randomBytes(16))}
			doc, fields := inspect(t, missing, 0, missing.id)
			equal(t, "found", doc.Found, false)
			equal(t, "values", len(wantArray(t, "values", fields["values"])), 0)
			if doc.Expires != nil || doc.Codec != "" || doc.Compressor != "" {
				t.Fatalf("a missing session with an expiry or a codec: %+v", doc)
			}
		})
		t.Run("a value that is not a session", func(t *testing.T) {
			bad := seeded{id: hex.EncodeToString(randomBytes(16))}
			raw := mustHex(t, bad.id)
			f.do(t, "HSET", f.prefix+string(raw[:2]), string(raw), "\x00\x01")
			r := f.run(t, "inspect", "--json", bad.id)
			r.wantCode(t, 1)
			r.wantOneErrorLine(t)
			contains(t, "stderr", r.stderr, "corrupt")
			var doc inspectJSON
			jsonDoc(t, r, &doc) // what could be learned, whole, then the error
			equal(t, "found", doc.Found, true)
			equal(t, "stored bytes", doc.StoredBytes, 2)
			equal(t, "values", len(doc.Values), 0)
			lacks(t, "stdout", r.stdout, bad.id)
		})
	})
}

// jsonStrings returns every string in a decoded JSON value, object keys
// included.
func jsonStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, jsonStrings(e)...)
		}
		return out
	case map[string]any:
		var out []string
		for k, e := range x {
			out = append(append(out, k), jsonStrings(e)...)
		}
		return out
	}
	return nil
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
