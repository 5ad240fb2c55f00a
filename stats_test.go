package redistore

import (
	"context"
	"strings"
	"testing"
)

func TestStats(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		cfg := Config{Mode: mode}
		if mode == HashMode {
			cfg.HashKeyGenerator = func(id string) (string, error) { return tg.prefix + id[:1], nil } // 16 buckets
			cfg.FieldTTL = FieldTTLOff
		}
		s := newStore(t, tg, cfg)
		fill(t, s, 40, expireSoon)
		waitExpiry(t, tg)
		live := fill(t, s, 160, 3600)
		tg.do(t, "RPUSH", tg.prefix+"zz-list", "x")

		st, err := s.Stats(context.Background(), 1000)
		noErr(t, err)
		// Expired sessions may already be gone from buckets written since.
		if st.Sessions < 160 || st.Sessions > 200 {
			t.Fatalf("sessions %d, want 160 to 200", st.Sessions)
		}
		equal(t, "other keys", st.OtherKeys, 1)
		equal(t, "sampled", st.Sampled, st.Keys)
		if mode == HashMode {
			// Every bucket of a live session is there; one that held only
			// expired sessions may be gone already, and one may have got
			// none of the 160.
			buckets := map[string]bool{}
			for _, b := range live {
				sess, _ := b.get(t, s, "sid")
				buckets[sess.ID[:1]] = true
			}
			if st.Keys < len(buckets) || st.Keys > 16 {
				t.Fatalf("%d buckets, want %d to 16", st.Keys, len(buckets))
			}
			total := 0
			for _, b := range st.PerBucket {
				total += b.Buckets
			}
			equal(t, "histogram buckets", total, st.Keys)
			if st.Expired*float64(st.Sessions) > float64(st.Sessions-160)+0.5 {
				t.Fatalf("expired share %.2f of %d sessions", st.Expired, st.Sessions)
			}
		} else {
			equal(t, "keys", st.Keys, 160) // Redis expired the short ones
		}
		if st.ValueBytes <= 0 || st.MaxValueBytes < int(st.ValueBytes) {
			t.Fatalf("value sizes %v / %d", st.ValueBytes, st.MaxValueBytes)
		}
		if tg.mini == nil {
			if st.BytesPerSession <= 0 || len(st.Encodings) == 0 {
				t.Fatalf("no memory or encodings from redis-server: %+v", st)
			}
		}
		out := st.String()
		if !strings.Contains(out, "sessions") || (mode == HashMode && !strings.Contains(out, "sessions per bucket")) {
			t.Fatalf("String():\n%s", out)
		}
		t.Log("\n" + out)
	})
}

func TestStatsWarnsOfCrowdedBuckets(t *testing.T) {
	t.Parallel()
	forEachReal(t, func(t *testing.T, tg *target) {
		roomy := newStore(t, tg, Config{})
		fill(t, roomy, 20, 3600)
		st, err := roomy.Stats(context.Background(), 10)
		noErr(t, err)
		equal(t, "warnings with roomy buckets", len(st.Warnings), 0)
		equal(t, "hash-max-listpack-entries", st.ListpackEntries, 512)

		tg.prefix = randomPrefix()
		crowded := newStore(t, tg, Config{Buckets: 1})
		fill(t, crowded, 400, 3600)
		st, err = crowded.Stats(context.Background(), 10)
		noErr(t, err)
		if len(st.Warnings) != 2 || !strings.Contains(st.Warnings[0], "hash-max-listpack-entries (512)") || !strings.Contains(st.Warnings[1], "chunk") {
			t.Fatalf("warnings %q, want the listpack one and the cleaning one", st.Warnings)
		}
		if !strings.Contains(st.String(), "warning: buckets hold 400 sessions on average") {
			t.Fatalf("String() leaves the warnings out:\n%s", st)
		}
	})
}

func TestStatsTextSpellsItsPlurals(t *testing.T) {
	for _, c := range []struct {
		n          int
		noun, want string
	}{
		{1, "entry", "1 entry"}, {200000, "entry", "200000 entries"}, {2, "key", "2 keys"},
		{0, "session", "0 sessions"}, {3, "user", "3 users"},
	} {
		if got := plural(c.n, c.noun); got != c.want {
			t.Errorf("plural(%d, %q) = %q, want %q", c.n, c.noun, got, c.want)
		}
	}
}
