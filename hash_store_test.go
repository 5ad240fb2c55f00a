package redistore

import (
	"context"
	"encoding/binary"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redisession/redistore/internal/redistest"
)

func TestBucketOutlivesItsSessions(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg *target) {
		bucket := tg.prefix + "one"
		s := newStore(t, tg, Config{HashKeyGenerator: func(string) (string, error) { return bucket, nil }})
		latest := time.Duration(0)
		for _, maxAge := range []int{100, 1000, 100, 50} {
			b := newBrowser()
			sess, r := b.get(t, s, "sid")
			sess.Options.MaxAge = maxAge
			sess.Values["n"] = maxAge
			b.save(t, s, r, sess)
			latest = max(latest, time.Duration(maxAge)*time.Second)
			ttl := time.Duration(tg.do(t, "PTTL", bucket).IntMust(t)) * time.Millisecond
			if ttl < latest {
				t.Fatalf("bucket TTL %v is shorter than the latest expiry in it (%v)", ttl, latest)
			}
		}
	})
}

func TestHashModeUsesTheServersClock(t *testing.T) {
	tg := newMiniTarget(t)
	// The server's clock is four years ahead of this machine's.
	serverNow := time.Now().Add(4 * 365 * 24 * time.Hour).Truncate(time.Second)
	tg.mini.SetTime(serverNow)
	s := newStore(t, tg, Config{})
	s.Options.MaxAge = 3600
	b := newBrowser()
	sess, r := b.get(t, s, "sid")
	sess.Values["n"] = 1
	b.save(t, s, r, sess)

	loc, _ := s.locate(sess.ID)
	v, err := tg.do(t, "HGET", loc.key, loc.field).ToString()
	noErr(t, err)
	exp := time.Unix(int64(binary.BigEndian.Uint32([]byte(v[:4]))), 0)
	equal(t, "stored expiry", exp, serverNow.Add(time.Hour))

	if got, _ := b.get(t, s, "sid"); got.IsNew {
		t.Fatal("the session expired by this machine's clock")
	}
	tg.advance(t, time.Hour)
	if got, _ := b.get(t, s, "sid"); !got.IsNew {
		t.Fatal("the session outlived its expiry on the server's clock")
	}
}

func TestExpiredFieldIsAMissEvenInALiveBucket(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg *target) {
		bucket := tg.prefix + "one"
		s := newStore(t, tg, Config{HashKeyGenerator: func(string) (string, error) { return bucket, nil }})
		short := newBrowser()
		sess, r := short.get(t, s, "sid")
		sess.Options.MaxAge = 1
		sess.Values["n"] = 1
		short.save(t, s, r, sess)
		long := newBrowser()
		sess2, r2 := long.get(t, s, "sid")
		sess2.Values["n"] = 2
		long.save(t, s, r2, sess2)

		tg.advance(t, 1100*time.Millisecond)
		r = short.request()
		got, err := s.Get(r, "sid")
		noErr(t, err)
		if !got.IsNew {
			t.Fatal("an expired session was served")
		}
		// A Save of the expired session's request writes a new session, not
		// the old ID.
		got.Values["n"] = 3
		noErr(t, s.Save(r, httptest.NewRecorder(), got))
		if got.ID == sess.ID {
			t.Fatal("the expired ID was reused")
		}
		if g, _ := long.get(t, s, "sid"); g.Values["n"] != 2 {
			t.Fatal("the live session in the bucket was lost")
		}
	})
}

func TestWritesCleanTheirBucket(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg *target) {
		// FieldTTLOff makes miniredis, which has HEXPIRE, clean as Redis 7.0
		// must.
		s := newStore(t, tg, Config{FieldTTL: FieldTTLOff, HashKeyGenerator: func(id string) (string, error) {
			return tg.prefix + id[:1], nil // 16 buckets
		}})
		fill(t, s, 100, expireSoon)
		long := fill(t, s, 50, 600)
		waitExpiry(t, tg)

		// Write new sessions until every bucket has had one.
		written := map[byte]bool{}
		fresh := 0
		for len(written) < 16 {
			b := fill(t, s, 1, 600)[0]
			sess, _ := b.get(t, s, "sid")
			written[sess.ID[0]] = true
			fresh++
		}
		total := 0
		for k := range scanPrefix(t, tg, tg.prefix) {
			total += sessionFields(t, tg, k)
		}
		equal(t, "sessions stored", total, len(long)+fresh)
		st, err := s.Sweep(context.Background())
		noErr(t, err)
		equal(t, "left for Sweep", st.Removed, 0)
		for _, b := range long {
			if sess, _ := b.get(t, s, "sid"); sess.IsNew {
				t.Fatal("a live session was cleaned away")
			}
		}
	})
}

// TestSteadyTrafficStaysBounded runs a HashMode store with no Sweep under
// steady traffic of short sessions on the real server: what Redis holds stays
// within the live sessions plus those that expired since their bucket's last
// write, far below everything ever written.
func TestSteadyTrafficStaysBounded(t *testing.T) {
	tg := newRealTarget(t)
	s := newStore(t, tg, Config{HashKeyGenerator: func(id string) (string, error) {
		return tg.prefix + id[:2], nil // 256 buckets, each written many times a second
	}})
	const run = 5 * time.Second
	var times []time.Time
	start := time.Now()
	for time.Since(start) < run {
		fill(t, s, 1, expireSoon)
		times = append(times, time.Now())
	}
	total := 0
	for k := range scanPrefix(t, tg, tg.prefix) {
		total += sessionFields(t, tg, k)
	}
	// A session lives up to MaxAge; it is removed by the first write into
	// its bucket after that. Allow MaxAge + 1 s of writes.
	recent := 0
	for _, at := range times {
		if time.Since(at) < expireSoon*time.Second+time.Second {
			recent++
		}
	}
	t.Logf("%d sessions written in %v; %d stored at the end; %d written in the last %ds", len(times), run, total, recent, expireSoon+1)
	if total > recent {
		t.Fatalf("%d sessions stored, more than the %d written in the last %ds", total, recent, expireSoon+1)
	}
	if total >= len(times)/2 {
		t.Fatalf("%d of %d sessions still stored: expired ones are not being removed", total, len(times))
	}
}

func TestFieldTTL(t *testing.T) {
	t.Run("where the server has HEXPIRE each session's field gets a TTL", func(t *testing.T) {
		tg := newMiniTarget(t)
		s := newStore(t, tg, Config{})
		s.Options.MaxAge = 600
		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		sess.Values["n"] = 1
		b.save(t, s, r, sess)
		loc, _ := s.locate(sess.ID)
		ttl, err := tg.do(t, "HTTL", loc.key, "FIELDS", "1", loc.field).AsIntSlice()
		noErr(t, err)
		if len(ttl) != 1 || ttl[0] < 600 || ttl[0] > 601 {
			t.Fatalf("HTTL %v, want 601", ttl)
		}
		equal(t, "no cleaning marker", tg.do(t, "HEXISTS", loc.key, "").AsBoolMust(t), false)

		// The embedded expiry still decides, whatever the field TTL.
		tg.mini.SetTime(tg.now().Add(600 * time.Second))
		if got, _ := b.get(t, s, "sid"); !got.IsNew {
			t.Fatal("served after its embedded expiry")
		}
		tg.mini.FastForward(602 * time.Second)
		equal(t, "field removed by Redis", tg.do(t, "HEXISTS", loc.key, loc.field).AsBoolMust(t), false)
	})

	t.Run("FieldTTLOff sets none", func(t *testing.T) {
		tg := newMiniTarget(t)
		s := newStore(t, tg, Config{FieldTTL: FieldTTLOff})
		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		b.save(t, s, r, sess)
		loc, _ := s.locate(sess.ID)
		ttl, err := tg.do(t, "HTTL", loc.key, "FIELDS", "1", loc.field).AsIntSlice()
		noErr(t, err)
		equal(t, "HTTL", ttl[0], -1)
	})

	for _, mode := range []FieldTTL{FieldTTLAuto, FieldTTLOn} {
		t.Run("without HEXPIRE (Redis 7.0) writes fall back to cleaning", func(t *testing.T) {
			tg := newRealTarget(t)
			s := newStore(t, tg, Config{FieldTTL: mode})
			for i := 0; i < 3; i++ {
				b := newBrowser()
				sess, r := b.get(t, s, "sid")
				sess.Values["n"] = i
				b.save(t, s, r, sess)
				loc, _ := s.locate(sess.ID)
				equal(t, "cleaning marker", tg.do(t, "HEXISTS", loc.key, "").AsBoolMust(t), true)
			}
			hb := s.backend.(*hashBackend)
			equal(t, "learned", hb.native.Load(), int32(-1))
		})
	}
}

// writeCommands saves a changed session and returns the commands it sent.
func writeCommands(t *testing.T, cc *countingClient, s *Store, b *browser, change int) string {
	t.Helper()
	sess, r := b.get(t, s, "sid")
	sess.Values["n"] = change
	cc.names.Clear()
	b.save(t, s, r, sess)
	var names []string
	cc.names.Range(func(k, _ any) bool { names = append(names, k.(string)); return true })
	sort.Strings(names)
	return strings.Join(names, ",")
}

func TestHashModeWritesPlainlyWhenNoCleaningIsDue(t *testing.T) {
	tg := newRealTarget(t)
	cc := &countingClient{Client: tg.client}
	s := newStore(t, tg, Config{Client: cc})
	b := newBrowser()
	sess, r := b.get(t, s, "sid")
	sess.Values["n"] = 0
	b.save(t, s, r, sess) // a new session: the script, which sets the marker

	equal(t, "an existing session's write", writeCommands(t, cc, s, b, 1), "EXEC,EXPIRE,HSET,MULTI")
	// Written a moment ago, the bucket lasts long enough: EXPIRE NX only.
	sess, r = b.get(t, s, "sid")
	sess.Values["n"] = 10
	cc.reset()
	b.save(t, s, r, sess)
	equal(t, "commands of a write soon after the last", cc.commands.Load(), 4)
	loc, _ := s.locate(sess.ID)
	ttl := time.Duration(tg.do(t, "PTTL", loc.key).IntMust(t)) * time.Millisecond
	if left := storedTTL(t, tg, s, sess.ID); ttl < left {
		t.Fatalf("bucket TTL %v is shorter than the session's %v", ttl, left)
	}

	// A marker in the past: the write must clean, so it is the script.
	tg.do(t, "HSET", loc.key, "", "\x00\x00\x00\x01")
	got := writeCommands(t, cc, s, b, 2)
	if !strings.Contains(got, "EVALSHA") {
		t.Fatalf("a write into a bucket due for cleaning sent %s", got)
	}
}

func TestHashModeWritesOnAServerWithoutExpireOptions(t *testing.T) {
	// EXPIRE renamed away stands for a server that refuses EXPIRE NX/GT
	// (before Redis 7.0): writes fall back to the script, once and for all.
	srv := redistest.StartT(t, "--rename-command", "EXPIRE", "")
	c, err := NewClient("redis://" + srv.Addr)
	noErr(t, err)
	defer c.Close()
	tg := &target{client: c, addr: srv.Addr, prefix: randomPrefix()}
	cc := &countingClient{Client: c}
	s := newStore(t, tg, Config{Client: cc})
	b := newBrowser()
	sess, r := b.get(t, s, "sid")
	sess.Values["n"] = 0
	b.save(t, s, r, sess)
	for i := 1; i <= 3; i++ {
		writeCommands(t, cc, s, b, i)
		got, _ := b.get(t, s, "sid")
		equal(t, "n", got.Values["n"], any(i))
	}
	equal(t, "plain writes given up", s.backend.(*hashBackend).plain.Load(), int32(-1))
}

func TestPlainWriteExtendsTheBucketWhenItsSlackIsSpent(t *testing.T) {
	tg := newRealTarget(t)
	cc := &countingClient{Client: tg.client}
	s := newStore(t, tg, Config{Client: cc})
	b := newBrowser()
	sess, r := b.get(t, s, "sid")
	sess.Values["n"] = 0
	b.save(t, s, r, sess) // the script: the bucket gets its TTL and marker
	loc, _ := s.locate(sess.ID)
	hb := s.backend.(*hashBackend)
	const ttl = 3600 // slack: 225 s
	value := func() []byte { return append(make([]byte, expiryLen), "\x10\x01\x00"...) }
	for _, tt := range []struct {
		name     string
		written  time.Duration // how long ago the session was last written
		commands int64
	}{
		{"written 10 s ago: EXPIRE NX only", 10 * time.Second, 4},
		{"written 200 s ago: EXPIRE NX and GT", 200 * time.Second, 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Shorten the bucket's TTL to what the last write would have left.
			tg.do(t, "EXPIRE", loc.key, strconv.Itoa(ttl+1+225-int(tt.written/time.Second)))
			prev := stored{found: true, due: tg.now().Unix() + 1000, left: ttl*time.Second - tt.written, at: time.Now()}
			cc.reset()
			noErr(t, hb.save(context.Background(), loc, value(), ttl, prev))
			equal(t, "commands", cc.commands.Load(), tt.commands)
			left := time.Duration(tg.do(t, "PTTL", loc.key).IntMust(t)) * time.Millisecond
			if left < (ttl+1)*time.Second {
				t.Fatalf("bucket TTL %v, shorter than the session's %ds", left, ttl)
			}
			if tt.commands == 5 && left < (ttl+225)*time.Second {
				t.Fatalf("bucket TTL %v: not extended by the slack", left)
			}
		})
	}
}
