package redistore

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/redisession/redistore/internal/envelope"
	"github.com/redisession/redistore/internal/redistest"
)

func TestBucketOutlivesItsSessions(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
		allLoad(t, s, long, "a live session was cleaned away")
	})
}

// TestSteadyTrafficStaysBounded runs a HashMode store with no Sweep under
// steady traffic of short sessions on the real server: what Redis holds stays
// within the live sessions plus those that expired a moment ago, far below
// everything ever written. With FieldTTLOff the writes remove them (the
// first write into a bucket after a session's expiry); with field TTLs,
// where the server has them, Redis does, within a second or two.
func TestSteadyTrafficStaysBounded(t *testing.T) {
	t.Parallel()
	forEachReal(t, func(t *testing.T, tg *target) {
		paths := []FieldTTL{FieldTTLOff}
		if tg.fieldTTLs() {
			paths = append(paths, FieldTTLOn)
		}
		for _, ft := range paths {
			t.Run(ft.String(), func(t *testing.T) {
				tg.prefix = randomPrefix()
				steadyTraffic(t, tg, ft)
			})
		}
	})
}

func steadyTraffic(t *testing.T, tg *target, ft FieldTTL) {
	s := newStore(t, tg, Config{Buckets: 256, FieldTTL: ft}) // each bucket written many times a second
	const run = 4 * time.Second
	lastWrite := map[string]time.Time{} // bucket -> when its last write began
	written := 0
	start := time.Now()
	for time.Since(start) < run {
		began := time.Now()
		b := fill(t, s, 1, expireSoon)[0]
		id, _, _ := s.decodeCookie("sid", b.cookies["sid"].Value)
		loc, _ := s.locate(id)
		lastWrite[loc.key] = began
		written++
	}
	if ft == FieldTTLOn {
		// Let the first sessions get well past the bound below.
		time.Sleep(3 * time.Second)
	}
	now := tg.now()
	total, stale := 0, 0
	for k := range scanPrefix(t, tg, tg.prefix) {
		st := readBucket(t, tg, k)
		total += st.sessions
		all, err := tg.do(t, "HGETALL", k).AsStrMap()
		noErr(t, err)
		for f, v := range all {
			exp := time.Unix(int64(binary.BigEndian.Uint32([]byte(v[:expiryLen]))), 0)
			if f == "" || exp.After(now) {
				continue
			}
			switch ft {
			case FieldTTLOff:
				// The first write into a bucket a second after a session's
				// expiry removes it (the second: expiries are whole
				// seconds; the other, the clock estimate's margin).
				if w := lastWrite[k]; w.After(exp.Add(2 * time.Second)) {
					t.Errorf("a session that expired at %v is still in a bucket written at %v", exp, w)
				}
			default:
				// Redis's active expiry of fields runs in the background.
				if now.Sub(exp) > 5*time.Second {
					stale++
				}
			}
		}
	}
	t.Logf("%d sessions written in %v; %d stored at the end", written, run, total)
	equal(t, "sessions Redis kept more than 5 s past their expiry", stale, 0)
	if ft == FieldTTLOff && total >= written*3/4 {
		t.Fatalf("%d of %d sessions still stored: expired ones are not being removed", total, written)
	}
}

func TestFieldTTL(t *testing.T) {
	t.Parallel()
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

	t.Run("on a server without HEXPIRE (Redis before 7.4, or HEXPIRE renamed away) writes fall back to cleaning", func(t *testing.T) {
		forEachInstall(t, func(t *testing.T, in redistest.Install) {
			var args []string
			if installHas(in, "HEXPIRE") {
				args = []string{"--rename-command", "HEXPIRE", ""}
			}
			srv := in.StartT(t, args...)
			c, err := NewClient("redis://" + srv.Addr)
			noErr(t, err)
			t.Cleanup(c.Close)
			tg := &target{client: c, install: in, addr: srv.Addr}
			for _, mode := range []FieldTTL{FieldTTLAuto, FieldTTLOn} {
				t.Run(mode.String(), func(t *testing.T) {
					tg.prefix = randomPrefix()
					s := newStore(t, tg, Config{FieldTTL: mode})
					for i := 0; i < 3; i++ {
						b := newBrowser()
						sess, r := b.get(t, s, "sid")
						sess.Values["n"] = i
						b.save(t, s, r, sess)
						loc, _ := s.locate(sess.ID)
						equal(t, "cleaning marker", tg.do(t, "HEXISTS", loc.key, "").AsBoolMust(t), true)
						checkBucket(t, tg, loc.key)
					}
					if hb := hashLayoutOf(s); mode == FieldTTLOn || hb.server.Load() != serverValkey {
						equal(t, "learned", hb.native.Load(), int32(-1))
					}
				})
			}
		})
	})

	t.Run("FieldTTLAuto sets none where the server makes a hash with field TTLs a hashtable (Valkey)", func(t *testing.T) {
		forEachInstall(t, func(t *testing.T, in redistest.Install) {
			if !installHas(in, "HEXPIRE") {
				return // nothing to choose
			}
			srv := in.StartT(t, "--hash-max-listpack-value", "1024")
			c, err := NewClient("redis://" + srv.Addr)
			noErr(t, err)
			t.Cleanup(c.Close)
			tg := &target{client: c, install: in, addr: srv.Addr, prefix: randomPrefix()}
			compact := fieldTTLsStayCompact(t, tg)
			s := newStore(t, tg, Config{})
			b := fill(t, s, 1, 3600)[0]
			sess, _ := b.get(t, s, "sid")
			loc, _ := s.locate(sess.ID)
			ttl, err := tg.do(t, "HTTL", loc.key, "FIELDS", "1", loc.field).AsIntSlice()
			noErr(t, err)
			if has := len(ttl) == 1 && ttl[0] > 0; has != compact {
				t.Fatalf("field TTL set: %v; the server keeps hashes with field TTLs compact: %v", has, compact)
			}
			enc, err := tg.do(t, "OBJECT", "ENCODING", loc.key).ToString()
			noErr(t, err)
			if !strings.HasPrefix(enc, "listpack") {
				t.Fatalf("the bucket is a %s: FieldTTLAuto lost the compact encoding", enc)
			}
		})
	})

	t.Run("on a real server with HEXPIRE each field gets a TTL and Redis removes expired sessions itself", func(t *testing.T) {
		forEachInstall(t, func(t *testing.T, in redistest.Install) {
			if !installHas(in, "HEXPIRE") {
				t.Skipf("%s has no hash-field TTLs (HEXPIRE)", in.Name())
			}
			// A server of its own: the test reads the server-wide count of
			// expired fields.
			srv := in.StartT(t)
			c, err := NewClient("redis://" + srv.Addr)
			noErr(t, err)
			t.Cleanup(c.Close)
			tg := &target{client: c, install: in, addr: srv.Addr, prefix: randomPrefix()}
			bucket := tg.prefix + "one"
			s := newStore(t, tg, Config{FieldTTL: FieldTTLOn, HashKeyGenerator: func(string) (string, error) { return bucket, nil }})
			fill(t, s, 1, 3600) // keeps the bucket alive past the short ones
			// Sessions of 2 s: a field TTL of 3 s, so that a loaded machine
			// taking a second between the write and HTTL still sees it.
			for i := 0; i < 20; i++ {
				b := fill(t, s, 1, 2)[0]
				sess, _ := b.get(t, s, "sid")
				loc, _ := s.locate(sess.ID)
				ttl, err := tg.do(t, "HTTL", loc.key, "FIELDS", "1", loc.field).AsIntSlice()
				noErr(t, err)
				if len(ttl) != 1 || ttl[0] < 1 || ttl[0] > 3 {
					t.Fatalf("HTTL %v, want two or three seconds", ttl)
				}
			}
			equal(t, "no cleaning marker", tg.do(t, "HEXISTS", bucket, "").AsBoolMust(t), false)
			equal(t, "learned", hashLayoutOf(s).native.Load(), int32(1))
			// No write, no read, no Sweep: Redis's active expiry removes them.
			waitFor(t, 10*time.Second, "Redis to expire the 20 fields", func() bool {
				return expiredFields(t, tg) >= 20
			})
			equal(t, "sessions left", tg.do(t, "HLEN", bucket).IntMust(t), 1)
		})
	})
}

// fieldTTLsStayCompact asks a real server whether a small hash whose
// fields have TTLs keeps the compact encoding (Redis 7.4+: listpackex) or
// becomes a hashtable (Valkey).
func fieldTTLsStayCompact(t testing.TB, tg *target) bool {
	t.Helper()
	key := tg.prefix + "probe"
	tg.do(t, "HSET", key, "f", "v")
	tg.do(t, "HEXPIRE", key, "60", "FIELDS", "1", "f")
	enc, err := tg.do(t, "OBJECT", "ENCODING", key).ToString()
	noErr(t, err)
	tg.do(t, "DEL", key)
	return enc != "hashtable"
}

// infoInt reads one integer field of INFO.
func infoInt(t testing.TB, tg *target, section, field string) int64 {
	t.Helper()
	info, err := tg.do(t, "INFO", section).ToString()
	noErr(t, err)
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			noErr(t, err)
			return n
		}
	}
	t.Fatalf("INFO %s has no %s", section, field)
	return 0
}

// waitFor polls cond every 50 ms until it holds, failing the test after
// limit.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
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

// TestAWriteIsOneCommand: a loaded session's write, conditional on the
// session being as loaded, is one script, with field TTLs or without, and a
// read is one HGET.
func TestAWriteIsOneCommand(t *testing.T) {
	t.Parallel()
	forEachReal(t, func(t *testing.T, tg *target) {
		for _, ft := range []FieldTTL{FieldTTLOff, FieldTTLAuto} {
			t.Run(ft.String(), func(t *testing.T) {
				tg := &target{client: tg.client, install: tg.install, prefix: randomPrefix()}
				cc := &countingClient{Client: tg.client}
				s := newStore(t, tg, Config{Client: cc, FieldTTL: ft})
				b := newBrowser()
				sess, r := b.get(t, s, "sid")
				sess.Values["n"] = 0
				b.save(t, s, r, sess)
				for i := 1; i <= 3; i++ {
					equal(t, "a loaded session's write", writeCommands(t, cc, s, b, i), "EVALSHA")
				}
				loc, _ := s.locate(sess.ID)
				checkBucket(t, tg, loc.key)
			})
		}
	})
}

// TestFrequentWritesLeaveTheBucketTTLAlone: a write gives its bucket a new
// TTL only when the one it has would end less than a second after the
// session's expiry, so that a bucket written often is not given one on every
// write; a longer MaxAge still pushes it out.
func TestFrequentWritesLeaveTheBucketTTLAlone(t *testing.T) {
	t.Parallel()
	forEachReal(t, func(t *testing.T, tg *target) {
		for _, ft := range []FieldTTL{FieldTTLOff, FieldTTLAuto} {
			t.Run(ft.String(), func(t *testing.T) {
				tg := &target{client: tg.client, install: tg.install, prefix: randomPrefix()}
				s := newStore(t, tg, Config{FieldTTL: ft})
				b := newBrowser()
				sess, r := b.get(t, s, "sid")
				sess.Options.MaxAge = 3600
				sess.Values["n"] = 0
				b.save(t, s, r, sess)
				loc, _ := s.locate(sess.ID)
				deadline := func() int64 { return tg.do(t, "PEXPIRETIME", loc.key).IntMust(t) }
				first := deadline()
				for i := 1; i <= 3; i++ {
					time.Sleep(5 * time.Millisecond)
					sess, r := b.get(t, s, "sid")
					sess.Options.MaxAge = 3600
					sess.Values["n"] = i
					b.save(t, s, r, sess)
					equal(t, fmt.Sprint("bucket deadline after write ", i), deadline(), first)
					checkBucket(t, tg, loc.key)
				}
				sess, r = b.get(t, s, "sid")
				sess.Options.MaxAge = 7200
				sess.Values["n"] = "longer"
				b.save(t, s, r, sess)
				if d := deadline(); d < first+3600*1000 {
					t.Fatalf("MaxAge 7200 left the bucket's deadline at %d, %d ms after MaxAge 3600's", d, d-first)
				}
				checkBucket(t, tg, loc.key)
			})
		}
	})
}

// bucketState is what checkBucket read of a bucket, by the server's clock.
type bucketState struct {
	now      time.Time
	deadline time.Time // when Redis drops the bucket
	marker   int64     // the 4-byte marker's time, -1 without one; 0 while a pass runs
	earliest int64     // earliest and latest session expiry in it (Unix seconds)
	latest   int64
	sessions int
}

// readBucket reads a bucket's fields, its deadline and the server's clock.
func readBucket(t testing.TB, tg *target, key string) bucketState {
	t.Helper()
	st := bucketState{now: tg.now(), marker: -1, earliest: -1, latest: -1}
	// One MULTI, so that the bucket cannot expire between the two reads.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := tg.client
	res := c.DoMulti(ctx, c.B().Multi().Build(), c.B().Hgetall().Key(key).Build(), c.B().Pexpiretime().Key(key).Build(), c.B().Exec().Build())
	replies, err := res[3].ToArray()
	noErr(t, err)
	all, err := replies[0].AsStrMap()
	noErr(t, err)
	ms, err := replies[1].AsInt64()
	noErr(t, err)
	for f, v := range all {
		if len(v) < expiryLen {
			t.Fatalf("field of %d bytes in the bucket", len(v))
		}
		e := int64(binary.BigEndian.Uint32([]byte(v[:expiryLen])))
		if f == "" {
			st.marker = e
			continue
		}
		st.sessions++
		if st.earliest < 0 || e < st.earliest {
			st.earliest = e
		}
		st.latest = max(st.latest, e)
	}
	switch {
	case ms == -2 && st.sessions == 0:
	case ms == -1 && allFieldTTLs(t, tg, key, all):
		st.deadline = never // Redis removes the bucket with its last field
	case ms < 0:
		t.Fatalf("bucket with %d sessions has PEXPIRETIME %d: no TTL", st.sessions, ms)
	default:
		st.deadline = time.UnixMilli(ms)
	}
	return st
}

// never is the deadline of a bucket without a TTL whose every session has
// a field TTL.
var never = time.Unix(1<<40, 0)

// allFieldTTLs reports whether every field of a bucket has a TTL of its own.
func allFieldTTLs(t testing.TB, tg *target, key string, fields map[string]string) bool {
	t.Helper()
	if !tg.fieldTTLs() {
		return false
	}
	for f := range fields {
		ttl, err := tg.do(t, "HTTL", key, "FIELDS", "1", f).AsIntSlice()
		noErr(t, err)
		if len(ttl) != 1 || ttl[0] < 0 {
			return false
		}
	}
	return true
}

// checkBucket asserts the two promises of the layout: the bucket lasts at
// least a second past the latest expiry in it, and its marker is at or
// below the earliest.
func checkBucket(t testing.TB, tg *target, key string) bucketState {
	t.Helper()
	st := readBucket(t, tg, key)
	if st.sessions == 0 {
		return st
	}
	if need := time.Unix(st.latest+1, 0); st.deadline.Before(need) {
		t.Fatalf("the bucket ends at %v, %v before a second past its latest session's expiry %v",
			st.deadline.UTC(), need.Sub(st.deadline), time.Unix(st.latest, 0).UTC())
	}
	if st.marker > st.earliest {
		t.Fatalf("the bucket's marker %v is above its earliest session's expiry %v",
			time.Unix(st.marker, 0).UTC(), time.Unix(st.earliest, 0).UTC())
	}
	return st
}

// TestBucketOutlivesAFrequentlyChangedSession changes one session, alone in
// its bucket, more often than anything else happens there: each write must
// push the bucket's TTL out with the session's, or Redis drops the bucket,
// and the live session with it.
func TestBucketOutlivesAFrequentlyChangedSession(t *testing.T) {
	t.Parallel()
	for _, ft := range []FieldTTL{FieldTTLOff, FieldTTLAuto} {
		t.Run("miniredis, an hour's session changed every 100 s for half an hour, then idle 45 minutes, "+ft.String(), func(t *testing.T) {
			tg := newMiniTarget(t)
			s := newStore(t, tg, Config{FieldTTL: ft})
			mono := withFakeClock(t, tg, s)
			s.Options.MaxAge = 3600
			b := newBrowser()
			sess, r := b.get(t, s, "sid")
			sess.Values["n"] = 0
			b.save(t, s, r, sess)
			loc, _ := s.locate(sess.ID)
			step := func(d time.Duration) {
				tg.advance(t, d)
				mono.advance(d)
			}
			for i := 1; i <= 18; i++ {
				step(100 * time.Second)
				sess, r := b.get(t, s, "sid")
				equal(t, "session still there", sess.IsNew, false)
				sess.Values["n"] = i
				b.save(t, s, r, sess)
				checkBucket(t, tg, loc.key)
			}
			step(45 * time.Minute)
			got, _ := b.get(t, s, "sid")
			if got.IsNew || got.Values["n"] != 18 {
				t.Fatal("the session was lost while it had 15 minutes left")
			}
		})
	}
	t.Run("redis-server, a 79 s session changed every 300 ms for 7 s", func(t *testing.T) {
		forEachReal(t, func(t *testing.T, tg *target) {
			for _, ft := range []FieldTTL{FieldTTLOff, FieldTTLAuto} {
				t.Run(ft.String(), func(t *testing.T) {
					t.Parallel()
					frequentChanges(t, &target{client: tg.client, install: tg.install, prefix: randomPrefix()}, ft)
				})
			}
		})
	})
}

func frequentChanges(t *testing.T, tg *target, ft FieldTTL) {
	t.Helper()
	{
		s := newStore(t, tg, Config{FieldTTL: ft})
		s.Options.MaxAge = 79 // a slack of 5 s
		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		sess.Values["n"] = 0
		b.save(t, s, r, sess)
		loc, _ := s.locate(sess.ID)
		for i := 1; i <= 23; i++ {
			time.Sleep(300 * time.Millisecond)
			sess, r := b.get(t, s, "sid")
			sess.Values["n"] = i
			b.save(t, s, r, sess)
			checkBucket(t, tg, loc.key)
		}
	}
}

// TestPlainWriteNeverRaisesTheMarker: a session loaded while the marker was
// high, saved after a shorter-lived session came into the bucket, must not
// put the marker back above that session's expiry.
func TestWritesNeverRaiseTheMarker(t *testing.T) {
	t.Parallel()
	miniAndReal(t, func(t *testing.T, tg *target) {
		{
			bucket := tg.prefix + "one"
			s := newStore(t, tg, Config{FieldTTL: FieldTTLOff, HashKeyGenerator: func(string) (string, error) { return bucket, nil }})
			if tg.mini != nil {
				withFakeClock(t, tg, s)
			}
			save := func(b *browser, maxAge, n int) {
				sess, r := b.get(t, s, "sid")
				sess.Options.MaxAge = maxAge
				sess.Values["n"] = n
				b.save(t, s, r, sess)
			}
			save(newBrowser(), 10000, 1)
			a := newBrowser()
			save(a, 10000, 2)
			sess, r := a.get(t, s, "sid") // loaded with the marker at the first session's expiry
			save(newBrowser(), 100, 3)    // the marker comes down to this one's
			sess.Options.MaxAge = 5000
			sess.Values["n"] = 4
			a.save(t, s, r, sess)
			st := checkBucket(t, tg, bucket)
			equal(t, "sessions", st.sessions, 3)
		}
	})
}

// TestWritesCleanALargeBucketInBoundedChunks fills one bucket past
// cleanLimit in Redis's hashtable encoding, where HSCAN pages: each write
// removes a bounded chunk of the expired sessions, and a few writes remove
// them all, with no Sweep.
func TestWritesCleanALargeBucketInBoundedChunks(t *testing.T) {
	t.Parallel()
	forEachReal(t, func(t *testing.T, tg *target) {
		bucket := tg.prefix + "big"
		gen := func(string) (string, error) { return bucket, nil }
		filler := newStore(t, tg, Config{FieldTTL: FieldTTLOff, HashKeyGenerator: gen})
		withoutCleaning(filler, true)
		live := fill(t, filler, 300, 3600)
		fill(t, filler, 1200, expireSoon)
		enc, err := tg.do(t, "OBJECT", "ENCODING", bucket).ToString()
		noErr(t, err)
		equal(t, "encoding", enc, "hashtable")
		waitExpiry(t, tg)

		s := newStore(t, tg, Config{FieldTTL: FieldTTLOff, HashKeyGenerator: gen})
		before := sessionFields(t, tg, bucket)
		writes := 0
		for before > len(live)+writes {
			if writes == 30 {
				t.Fatalf("30 writes left %d sessions, %d of them live", before, len(live)+writes)
			}
			fill(t, s, 1, 3600)
			writes++
			after := sessionFields(t, tg, bucket)
			removed := before + 1 - after
			if removed <= 0 || removed > 2*cleanChunk {
				t.Fatalf("write %d removed %d expired sessions, want between 1 and %d", writes, removed, 2*cleanChunk)
			}
			before = after
		}
		t.Logf("%d writes cleaned 1200 expired sessions", writes)
		st := checkBucket(t, tg, bucket)
		if st.marker <= 0 {
			t.Fatalf("after the pass the marker is %d, want the earliest expiry", st.marker)
		}
		allLoad(t, s, live, "a live session was cleaned away")
	})
}

// TestManySessionsPerBucketStaySelfCleaning simulates a store far past
// the size the default buckets serve well: 100,000 sessions in 256 buckets
// (about 390 a bucket, as 65536 buckets hold at 25 million), half of them
// expired, written straight into the layout. Ordinary traffic through the
// store, with no Sweep, removes every expired one and keeps the layout's
// promises in every bucket.
func TestManySessionsPerBucketStaySelfCleaning(t *testing.T) {
	t.Parallel()
	forEachReal(t, func(t *testing.T, tg *target) {
		s := newStore(t, tg, Config{Buckets: 256, FieldTTL: FieldTTLOff})
		payload, err := CompactSerializer{}.Encode(nil, map[any]any{"user": "someone"})
		noErr(t, err)
		body := string(envelope.Append(nil, payload, envelope.CodecCompact, LZ4(), -1, false, envelope.Meta{}))
		now := tg.now().Unix()
		expired, alive := now-10, now+3600
		be32 := func(v int64) string { var b [4]byte; binary.BigEndian.PutUint32(b[:], uint32(v)); return string(b[:]) }
		const total = 100_000
		var cmds rueidis.Commands
		flush := func() {
			for _, r := range tg.client.DoMulti(context.Background(), cmds...) {
				noErr(t, r.Error())
			}
			cmds = cmds[:0]
		}
		var liveIDs []string
		for i := 0; i < total; i++ {
			id := newID()
			loc, _ := s.locate(id)
			exp := expired
			if i%2 == 0 {
				exp = alive
				if len(liveIDs) < 200 {
					liveIDs = append(liveIDs, id)
				}
			}
			cmds = append(cmds, tg.client.B().Hset().Key(loc.key).FieldValue().FieldValue(loc.field, be32(exp)+body).Build())
			if len(cmds) == 1000 {
				flush()
			}
		}
		for i := 0; i < 256; i++ {
			k := tg.prefix + string(hashLayoutOf(s).buckets.key(i))
			cmds = append(cmds, tg.client.B().Hset().Key(k).FieldValue().FieldValue("", be32(expired)).Build(),
				tg.client.B().Expireat().Key(k).Timestamp(alive+3600).Build())
		}
		flush()

		// Traffic: new sessions until every bucket has had a few writes.
		hits := map[string]int{}
		for len(hits) < 256 || minHits(hits) < 2 {
			b := fill(t, s, 1, 3600)[0]
			sess, _ := b.get(t, s, "sid")
			loc, _ := s.locate(sess.ID)
			hits[loc.key]++
		}
		writes := 0
		stored := 0
		for k, n := range hits {
			writes += n
			st := checkBucket(t, tg, k)
			if st.earliest <= now {
				t.Fatalf("a bucket still holds a session that expired at %d", st.earliest)
			}
			stored += st.sessions
		}
		equal(t, "sessions stored", stored, total/2+writes)
		for _, id := range liveIDs {
			found, err := s.Lookup(context.Background(), id)
			noErr(t, err)
			if !found.Found || found.Expired {
				t.Fatal("a live session was cleaned away")
			}
		}
		t.Logf("%d writes into 256 buckets removed %d expired sessions", writes, total/2)
	})
}

func minHits(hits map[string]int) int {
	low := -1
	for _, n := range hits {
		if low < 0 || n < low {
			low = n
		}
	}
	return low
}

// TestDowngradeFromFieldTTLs: sessions written with field TTLs (Redis
// 7.4+) and then served by a server without them (a downgrade: 8.0's RDB
// does not load in 7.0, so the bucket is copied field by field, as a
// migration would) still end at their stored expiry, and the first write
// cleans the bucket, which had no marker.
func TestDowngradeFromFieldTTLs(t *testing.T) {
	t.Parallel()
	var from, to *redistest.Install
	var toArgs []string
	for _, is := range installations(t) {
		in := is.in
		if installHas(in, "HEXPIRE") && from == nil {
			from = &in
		}
		if !installHas(in, "HEXPIRE") && to == nil {
			to = &in
		}
	}
	if from == nil {
		t.Skip("no Redis 7.4+ among the installations: nothing wrote field TTLs")
	}
	if to == nil {
		// An 8.0 without its field-TTL commands stands for 7.0.
		to, toArgs = from, []string{"--rename-command", "HEXPIRE", "", "--rename-command", "HSETEX", ""}
	}
	open := func(in redistest.Install, args ...string) *target {
		srv := in.StartT(t, args...)
		c, err := NewClient("redis://" + srv.Addr)
		noErr(t, err)
		t.Cleanup(c.Close)
		return &target{client: c, install: in, addr: srv.Addr, prefix: "test:downgrade:"}
	}
	src, dst := open(*from), open(*to, toArgs...)
	bucket := src.prefix + "one"
	gen := func(string) (string, error) { return bucket, nil }
	// FieldTTLOn: FieldTTLAuto leaves them off on Valkey, which may be the
	// one server here with them.
	old := newStore(t, src, Config{HashKeyGenerator: gen, FieldTTL: FieldTTLOn})
	short := fill(t, old, 5, 1)
	long := fill(t, old, 5, 3600)
	equal(t, "written with field TTLs", hashLayoutOf(old).native.Load(), int32(1))
	equal(t, "no marker", src.do(t, "HEXISTS", bucket, "").AsBoolMust(t), false)

	all, err := src.do(t, "HGETALL", bucket).AsStrMap()
	noErr(t, err)
	for f, v := range all {
		dst.do(t, "HSET", bucket, f, v)
	}
	if ms := src.do(t, "PEXPIRETIME", bucket).IntMust(t); ms > 0 {
		dst.do(t, "PEXPIREAT", bucket, strconv.FormatInt(ms, 10))
	}

	s := newStore(t, dst, Config{HashKeyGenerator: gen})
	allLoad(t, s, long, "a live session was lost in the downgrade")
	time.Sleep(2100 * time.Millisecond) // past the short sessions' expiry
	for _, b := range short {
		if sess, _ := b.get(t, s, "sid"); !sess.IsNew {
			t.Fatal("a session past its stored expiry was served after the downgrade")
		}
	}
	equal(t, "expired sessions still stored", sessionFields(t, dst, bucket), 10)
	fill(t, s, 1, 3600) // the first write cleans
	equal(t, "learned", hashLayoutOf(s).native.Load(), int32(-1))
	st := checkBucket(t, dst, bucket)
	equal(t, "sessions after the first write", st.sessions, 6)
}

// TestUnreadableMarkersNeverHalfWrite: a bucket whose cleaning marker is
// not one the store wrote (its cursor unreadable) is cleaned from the
// start again; no write fails after it has written (Lua does not roll
// back): not a Save, not a RegenerateID, not a new session.
func TestUnreadableMarkersNeverHalfWrite(t *testing.T) {
	t.Parallel()
	forEachTarget(t, func(t *testing.T, tg *target) {
		s := newStore(t, tg, Config{Buckets: 1, FieldTTL: FieldTTLOff}) // one bucket, cleaned by writes
		b := startedSession(t, s)
		sess, r := b.get(t, s, "sid")
		loc, err := s.locate(sess.ID)
		noErr(t, err)
		junk := func() { tg.do(t, "HSET", loc.key, "", "\x00\x00\x00\x00\x00\x00\x00\x00junk") }

		junk()
		sess.Values["n"] = 1
		noErr(t, s.Save(r, httptest.NewRecorder(), sess))
		if m, _ := tg.do(t, "HGET", loc.key, "").ToString(); strings.Contains(m, "junk") {
			t.Fatalf("the marker is still %q", m)
		}
		equal(t, "n", valuesOf(t, s, b)["n"], any(1))

		junk()
		old := cookieJar(b.cookies["sid"])
		sess, r = b.get(t, s, "sid")
		w := httptest.NewRecorder()
		noErr(t, s.RegenerateID(r, w, sess))
		b.keep(t, w)
		ended(t, s, old, "the old ID after RegenerateID")
		equal(t, "n after RegenerateID", valuesOf(t, s, b)["n"], any(1))

		junk()
		startedSession(t, s)

		// Digits, but past 64 bits: Redis refuses such a cursor.
		tg.do(t, "HSET", loc.key, "", "\x00\x00\x00\x00\x00\x00\x00\x0099999999999999999999999")
		sess, r = b.get(t, s, "sid")
		sess.Values["n"] = 2
		sess.Options.MaxAge = 86400 * 60
		noErr(t, s.Save(r, httptest.NewRecorder(), sess))
		if ttl := time.Duration(tg.do(t, "TTL", loc.key).IntMust(t)) * time.Second; ttl < 60*24*time.Hour {
			t.Fatalf("bucket TTL %v after a 60-day session was written", ttl)
		}
	})
}

// TestStatsWarnsOfFieldTTLsOnValkey: Stats says what FieldTTLOn costs where
// a hash with field TTLs is a hashtable (Valkey), and nothing of it where
// such a hash stays compact.
func TestStatsWarnsOfFieldTTLsOnValkey(t *testing.T) {
	t.Parallel()
	forEachReal(t, func(t *testing.T, tg *target) {
		if !tg.fieldTTLs() {
			return
		}
		s := newStore(t, tg, Config{FieldTTL: FieldTTLOn})
		fill(t, s, 3, 3600)
		st, err := s.Stats(context.Background(), 10)
		noErr(t, err)
		warned := slices.ContainsFunc(st.Warnings, func(w string) bool { return strings.Contains(w, "FieldTTLOn on Valkey") })
		if compact := fieldTTLsStayCompact(t, tg); warned == compact {
			t.Fatalf("warned of field TTLs: %v; the server keeps hashes with field TTLs compact: %v (%q)", warned, compact, st.Warnings)
		}
	})
}
