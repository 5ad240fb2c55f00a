package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/internal/redistest"
)

func TestStatsCountsSessions(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		seedMany(t, f.store(t, redistore.HashMode), 20, 3600)
		f.do(t, "RPUSH", f.prefix+"not-a-bucket", "x")

		t.Run("json", func(t *testing.T) {
			r := f.run(t, "stats", "--json")
			r.wantCode(t, 0)
			var fields map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &fields); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, r.stdout)
			}
			for _, name := range []string{"mode", "prefix", "keys", "sessions", "other_keys", "per_bucket", "sampled",
				"encodings", "compressors", "bytes_per_session", "value_bytes", "max_value_bytes", "expired_share", "duration_ms"} {
				if _, ok := fields[name]; !ok {
					t.Errorf("no %q in\n%s", name, r.stdout)
				}
			}
			var doc statsJSON
			if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
				t.Fatal(err)
			}
			equal(t, "mode", doc.Mode, "hash")
			equal(t, "prefix", doc.Prefix, f.prefix)
			equal(t, "sessions", doc.Sessions, 20)
			equal(t, "other keys", doc.OtherKeys, 1)
			equal(t, "sampled", doc.Sampled, doc.Keys)
			total := 0
			for _, bar := range doc.PerBucket {
				total += bar.Buckets
			}
			equal(t, "buckets in the histogram", total, doc.Keys)
			compressed := 0
			for _, n := range doc.Compressors {
				compressed += n
			}
			equal(t, "sampled sessions by compressor", compressed, doc.Sessions) // every key sampled
			equal(t, "sessions stored plain", doc.Compressors["none"], doc.Sessions)
			if doc.MaxValueBytes <= 0 || doc.ValueBytes <= 0 || doc.BytesPerSession <= 0 || len(doc.Encodings) == 0 {
				t.Fatalf("sample figures missing:\n%s", r.stdout)
			}
		})

		t.Run("text", func(t *testing.T) {
			r := f.run(t, "stats", "--sample", "5")
			r.wantCode(t, 0)
			contains(t, "stdout", r.stdout, "20 sessions")
			contains(t, "stdout", r.stdout, "sample of 5 keys")
			contains(t, "stdout", r.stdout, "compressors in the sample: none ")
		})
	})
}

func TestStatsStringMode(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		seedMany(t, f.store(t, redistore.StringMode), 3, 3600)
		r := f.run(t, "stats", "--json", "--mode", "string")
		r.wantCode(t, 0)
		var doc statsJSON
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatal(err)
		}
		equal(t, "mode", doc.Mode, "string")
		equal(t, "sessions", doc.Sessions, 3)
		equal(t, "keys", doc.Keys, 3)
		if doc.PerBucket == nil || len(doc.PerBucket) != 0 {
			t.Fatalf("per_bucket in StringMode: %v", doc.PerBucket)
		}
	})
}

func TestStatsCountsLegacySessions(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		legacy := "legacy_" + f.prefix
		for i := 0; i < 3; i++ {
			f.do(t, "SET", legacy+strings.Repeat("A", 51)+strconv.Itoa(2+i), "x")
		}
		r := f.run(t, "stats", "--json", "--legacy-prefix", legacy)
		r.wantCode(t, 0)
		var doc statsJSON
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatal(err)
		}
		equal(t, "legacy keys", doc.LegacyKeys, 3)
		r = f.run(t, "stats", "--legacy-prefix", legacy)
		contains(t, "stdout", r.stdout, "3 sessions from boj/redistore not moved yet")
	})
}

// While sessions move over from boj/redistore, doctor counts theirs as the
// application's, not another application's sharing the database.
func TestDoctorCountsLegacySessionsAsTheApplications(t *testing.T) {
	t.Parallel()
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		f := newFixture(t, in)
		seedMany(t, f.store(t, redistore.HashMode), 2, 3600)
		legacy := "legacy_" + f.prefix
		for i := 0; i < 3; i++ {
			f.do(t, "SET", legacy+strings.Repeat("A", 51)+strconv.Itoa(2+i), "x")
		}
		r := f.run(t, "doctor", "--legacy-prefix", legacy)
		line := doctorLine(t, r.stdout, "database", "OK")
		contains(t, "database line", line, "3 not moved yet")
		r = f.run(t, "doctor")
		doctorLine(t, r.stdout, "database", "WARN")
	})
}
