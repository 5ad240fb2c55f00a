package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/internal/redistest"
)

// doctorLine returns the line of the named check, failing when it is
// missing or its status is not want.
func doctorLine(t *testing.T, out, check, want string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[1] == check {
			if f[0] != want {
				t.Fatalf("%s is %s, want %s:\n%s", check, f[0], want, out)
			}
			return line
		}
	}
	t.Fatalf("no %s check in:\n%s", check, out)
	return ""
}

// TestDoctorJSON: doctor --json has the text's findings, in its order,
// and exits as the text does: 0 with warnings, 1 with a failure (its one
// error line after the whole document).
func TestDoctorJSON(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in, "--hash-max-listpack-value", "16")
		seedMany(t, f.store(t, redistore.HashMode), 5, 3600)
		for _, tc := range []struct {
			name   string
			setup  func()
			code   int
			status string // of the key prefix check
		}{
			{"warnings only", func() {}, 0, "OK"},
			{"a failed check", func() { f.do(t, "SET", f.prefix+"ab", "a string where a bucket would be") }, 1, "FAIL"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tc.setup()
				text := f.run(t, "doctor")
				text.wantCode(t, tc.code)
				r := f.run(t, "doctor", "--json")
				r.wantCode(t, tc.code)
				equal(t, "stderr", r.stderr, text.stderr)
				var doc doctorJSON
				fields := jsonDoc(t, r, &doc)
				wantNames(t, "doctor --json", fields, "findings")
				for _, fd := range wantArray(t, "findings", fields["findings"]) {
					wantNames(t, "a finding", fd, "check", "status", "message")
				}
				lines := strings.Split(strings.TrimSuffix(text.stdout, "\n"), "\n")
				equal(t, "findings", len(doc.Findings), len(lines))
				for i, fd := range doc.Findings {
					equal(t, "finding as text", fmt.Sprintf("%-4s  %-25s  %s", fd.Status, fd.Check, fd.Message), lines[i])
				}
				statuses := map[string]string{}
				for _, fd := range doc.Findings {
					statuses[fd.Check] = fd.Status
				}
				equal(t, "hash-max-listpack-value", statuses["hash-max-listpack-value"], "WARN")
				equal(t, "key prefix", statuses["key prefix"], tc.status)
			})
		}
	})
}

func TestDoctorFlagsAMisconfiguredServer(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in, "--hash-max-listpack-value", "16", "--maxmemory-policy", "allkeys-lru")
		seedMany(t, f.store(t, redistore.HashMode), 10, 3600)

		r := f.run(t, "doctor")
		r.wantCode(t, 0) // warnings only
		line := doctorLine(t, r.stdout, "hash-max-listpack-value", "WARN")
		contains(t, "listpack line", line, "CONFIG SET hash-max-listpack-value 1024")
		contains(t, "listpack line", line, "hashtable")
		line = doctorLine(t, r.stdout, "maxmemory-policy", "WARN")
		contains(t, "policy line", line, "allkeys-lru")
		contains(t, "policy line", line, "noeviction")
		line = doctorLine(t, r.stdout, "persistence", "WARN") // redistest starts servers without it
		contains(t, "persistence line", line, "restart")
		doctorLine(t, r.stdout, "server", "OK")
		doctorLine(t, r.stdout, "database", "OK")
		doctorLine(t, r.stdout, "key", "OK")
	})
}

func TestDoctorPassesAWellConfiguredServer(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in, "--hash-max-listpack-value", "1024", "--appendonly", "yes")
		seedMany(t, f.store(t, redistore.HashMode), 10, 3600)

		r := f.run(t, "doctor")
		r.wantCode(t, 0)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) < 8 {
			t.Fatalf("%d checks, want 8:\n%s", len(lines), r.stdout)
		}
		for _, line := range lines {
			if !strings.HasPrefix(line, "OK ") {
				t.Fatalf("not OK: %s\nin:\n%s", line, r.stdout)
			}
		}
		contains(t, "stdout", r.stdout, "Redis ")
	})
}

func TestDoctorFailsOnForeignKeysUnderThePrefix(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in, "--hash-max-listpack-value", "1024")
		seedMany(t, f.store(t, redistore.HashMode), 5, 3600)
		f.do(t, "SET", "cache:page:1", "x")
		f.do(t, "SET", f.prefix+"ab", "a string where a bucket would be")
		f.do(t, "HSET", f.prefix+"user:42", "name", "alice")

		r := f.run(t, "doctor")
		r.wantCode(t, 1)
		r.wantOneErrorLine(t)
		contains(t, "stderr", r.stderr, "1 of")
		line := doctorLine(t, r.stdout, "key", "FAIL")
		contains(t, "prefix line", line, "1 is not of type hash")
		contains(t, "prefix line", line, `1 hash not named like its buckets (e.g. "`+f.prefix+`user:42")`)
		contains(t, "prefix line", line, "WRONGTYPE")
		line = doctorLine(t, r.stdout, "database", "WARN")
		contains(t, "database line", line, "other applications share the database")
	})
}

// A hash of the application's own under the prefix, named unlike a bucket:
// stats counts it as another key, not as sessions; sweep leaves every field
// of it alone, even 16-byte fields whose values read as long expired; and
// doctor says exactly that.
func TestAnApplicationsHashUnderThePrefixIsNotABucket(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		seedMany(t, f.store(t, redistore.HashMode), 5, 3600)
		cart := f.prefix + "cart:42"
		f.do(t, "HSET", cart, "item", "a book", "0123456789abcdef", "\x00\x00\x00\x01 long expired, if it were a session")

		r := f.run(t, "stats", "--json")
		r.wantCode(t, 0)
		var doc statsJSON
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, r.stdout)
		}
		equal(t, "sessions", doc.Sessions, 5)
		equal(t, "other keys", doc.OtherKeys, 1)
		r = f.run(t, "stats")
		r.wantCode(t, 0)
		contains(t, "stats text", r.stdout, "1 key under the prefix that is not the store's")

		r = f.run(t, "sweep")
		r.wantCode(t, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n, err := f.client.Do(ctx, f.client.B().Hlen().Key(cart).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "fields of the application's hash after a sweep", n, int64(2))

		r = f.run(t, "doctor")
		r.wantCode(t, 0)
		line := doctorLine(t, r.stdout, "key", "WARN")
		contains(t, "prefix line", line, `1 hash not named like its buckets (e.g. "`+cart+`")`)
		contains(t, "prefix line", line, "stats and sweep skip those keys today")
		lacks(t, "prefix line", line, "not of type")
	})
}

func TestDoctorWithoutConfigSaysCouldNotRead(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in, "--rename-command", "CONFIG", "")
		seedMany(t, f.store(t, redistore.HashMode), 5, 3600)

		r := f.run(t, "doctor")
		r.wantCode(t, 0)
		line := doctorLine(t, r.stdout, "hash-max-listpack-value", "WARN")
		contains(t, "listpack line", line, "could not read")
		contains(t, "listpack line", line, "CONFIG is disabled")
		doctorLine(t, r.stdout, "maxmemory-policy", "OK") // INFO memory tells it
		line = doctorLine(t, r.stdout, "persistence", "WARN")
		contains(t, "persistence line", line, "could not be read")
	})
}

func TestDoctorStringMode(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in, "--appendonly", "yes")
		seedMany(t, f.store(t, redistore.StringMode), 5, 3600)

		r := f.run(t, "doctor", "--mode", "string")
		r.wantCode(t, 0)
		doctorLine(t, r.stdout, "hash-max-listpack-value", "OK")
		line := doctorLine(t, r.stdout, "key", "OK")
		contains(t, "prefix line", line, "5 keys")

		// The same keys seen as a HashMode store: wrong mode, say so.
		r = f.run(t, "doctor")
		r.wantCode(t, 1)
		line = doctorLine(t, r.stdout, "key", "FAIL")
		contains(t, "prefix line", line, "--mode string")
	})
}

func TestDoctorWarnsOfCrowdedBuckets(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in, "--hash-max-listpack-entries", "128")
		s, err := redistore.New(redistore.Config{Client: f.client, KeyPairs: f.pairs, KeyPrefix: f.prefix, Buckets: 2, FieldTTL: redistore.FieldTTLOff})
		if err != nil {
			t.Fatal(err)
		}
		seedMany(t, s, 200, 3600)

		r := f.run(t, "doctor", "--buckets", "2")
		r.wantCode(t, 0)
		line := doctorLine(t, r.stdout, "hash-max-listpack-entries", "WARN")
		contains(t, "entries line", line, "Config.Buckets")
		doctorLine(t, r.stdout, "key", "OK") // --buckets gives the keys' shape
		r = f.run(t, "stats", "--buckets", "2")
		r.wantCode(t, 0)
		contains(t, "stats", r.stdout, "warning: buckets hold 100 sessions on average, near hash-max-listpack-entries (128)")
	})
}

func TestDoctorKnowsFieldTTLs(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in, "--hash-max-listpack-value", "1024")
		s, err := redistore.New(redistore.Config{Client: f.client, KeyPairs: f.pairs, KeyPrefix: f.prefix})
		if err != nil {
			t.Fatal(err)
		}
		seedMany(t, s, 10, 3600)
		r := f.run(t, "doctor")
		r.wantCode(t, 0)
		line := doctorLine(t, r.stdout, "field", "OK")
		switch f.fieldTTLs(t) {
		case "":
			contains(t, "field expiry line", line, "no HEXPIRE")
			return
		case "hashtable": // Valkey
			contains(t, "field expiry line", line, "hashtable")
			contains(t, "field expiry line", line, "sets no field TTLs")
			line = doctorLine(t, r.stdout, "hash-max-listpack-value", "OK")
			contains(t, "listpack line", line, "without field TTLs")
			return
		}
		contains(t, "field expiry line", line, "listpackex")
		lacks(t, "field expiry line", line, "HSETEX") // the store's writes run HSET and HEXPIRE
		line = doctorLine(t, r.stdout, "hash-max-listpack-value", "OK")
		contains(t, "listpack line", line, "listpackex")
	})
}

// TestDoctorOnHashtablesLeftBehind: after hash-max-listpack-value is raised,
// the buckets that became hashtables are a warning, and what the doctor
// says turns them back (a reload) does.
func TestDoctorOnHashtablesLeftBehind(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in, "--hash-max-listpack-value", "16", "--enable-debug-command", "yes")
		seedMany(t, f.store(t, redistore.HashMode), 20, 3600)
		f.do(t, "CONFIG", "SET", "hash-max-listpack-value", "1024")
		// Twenty sessions may share a bucket: count the buckets they made.
		buckets := f.hashes(t)
		if buckets < 10 || buckets > 20 {
			t.Fatalf("20 sessions made %d buckets", buckets)
		}

		r := f.run(t, "doctor")
		line := doctorLine(t, r.stdout, "hash-max-listpack-value", "WARN")
		contains(t, "listpack line", line, fmt.Sprintf("%d of %d sampled buckets are hashtables already", buckets, buckets))
		contains(t, "listpack line", line, "DEBUG RELOAD")
		lacks(t, "listpack line", line, "never")

		f.do(t, "DEBUG", "RELOAD")
		r = f.run(t, "doctor")
		line = doctorLine(t, r.stdout, "hash-max-listpack-value", "OK")
		lacks(t, "listpack line after the reload", line, "hashtable")
	})
}

// fieldTTLs asks the fixture's server what a small hash whose fields have
// TTLs is encoded as: "" where it has no HEXPIRE, "listpackex" on Redis
// 7.4+, "hashtable" on Valkey.
func (f *fixture) fieldTTLs(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	key := f.prefix + "probe"
	f.do(t, "HSET", key, "f", "v")
	defer f.do(t, "DEL", key)
	if err := f.client.Do(ctx, f.client.B().Arbitrary("HEXPIRE").Keys(key).Args("60", "FIELDS", "1", "f").Build()).Error(); err != nil {
		return ""
	}
	enc, err := f.client.Do(ctx, f.client.B().ObjectEncoding().Key(key).Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// TestDoctorKnowsScripting: a server that refuses scripts (here: an ACL
// user denied @scripting) fails the scripting check in HashMode, and in
// StringMode where the server has no compare-and-set; where it has
// (Valkey), StringMode is a warning: it works without UserKey.
func TestDoctorKnowsScripting(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		r := f.run(t, "doctor")
		contains(t, "scripting line", doctorLine(t, r.stdout, "scripting", "OK"), "runs Lua scripts")

		f.do(t, "ACL", "SETUSER", "noscripts", "on", ">pw", "~*", "&*", "+@all", "-@scripting")
		refused := *f
		refused.url = strings.Replace(f.url, "redis://", "redis://noscripts:pw@", 1)
		r = refused.run(t, "doctor")
		r.wantCode(t, 1)
		contains(t, "scripting line", doctorLine(t, r.stdout, "scripting", "FAIL"), "ErrNoScripting")
		cas := f.client.Do(context.Background(), f.client.B().CommandInfo().CommandName("DELIFEQ").Build())
		arr, err := cas.ToArray()
		hasCAS := err == nil && len(arr) == 1 && !arr[0].IsNil()
		r = refused.run(t, "doctor", "--mode=string")
		if hasCAS {
			contains(t, "scripting line, StringMode", doctorLine(t, r.stdout, "scripting", "WARN"), "compare-and-set")
		} else {
			r.wantCode(t, 1)
			contains(t, "scripting line, StringMode", doctorLine(t, r.stdout, "scripting", "FAIL"), "no compare-and-set")
		}
	})
}

// TestDoctorNeverPrintsASessionID: keys under the prefix whose names could
// hold a session ID (a StringMode session key of another type: the prefix
// and 16 raw bytes; 32 hex digits) are shown by their first two bytes
// after the prefix, in text and JSON.
func TestDoctorNeverPrintsASessionID(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		for _, id := range []string{"\t\x8aw$\x9c\x0fu\xf6\xb2\xfb\xbfa\xa8\xe2\x03W", "098a77249c0f75f6b2fbbf61a8e20357"} {
			f := newFixture(t, in)
			f.do(t, "RPUSH", f.prefix+id, "x")
			for _, args := range [][]string{{"doctor"}, {"doctor", "--json"}} {
				r := f.run(t, args...)
				out := r.stdout + r.stderr
				for _, leak := range []string{id, id[2:], strconv.Quote(id)[1:10], strings.Trim(strconv.Quote(id[2:]), `"`)} {
					lacks(t, strings.Join(args, " "), out, leak)
				}
				contains(t, strings.Join(args, " "), out, fmt.Sprintf("(%d bytes)", len(f.prefix+id)))
			}
		}
	})
}
