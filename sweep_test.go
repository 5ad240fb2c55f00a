package redistore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// fill saves n sessions with the given MaxAge and returns their browsers.
func fill(t testing.TB, s *Store, n, maxAge int) []*browser {
	t.Helper()
	out := make([]*browser, n)
	for i := range out {
		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		sess.Options.MaxAge = maxAge
		sess.Values["i"] = i
		b.save(t, s, r, sess)
		out[i] = b
	}
	return out
}

// sessionFields counts the sessions in a bucket: its fields but the cleaning
// marker.
func sessionFields(t testing.TB, tg *target, bucket string) int {
	t.Helper()
	n := tg.do(t, "HLEN", bucket).IntMust(t)
	if tg.do(t, "HEXISTS", bucket, "").AsBoolMust(t) {
		n--
	}
	return int(n)
}

// expireSoon is the MaxAge of sessions a test lets expire, and waitExpiry
// moves the server past it.
const expireSoon = 1

func waitExpiry(t testing.TB, tg *target) {
	t.Helper()
	tg.advance(t, expireSoon*time.Second+200*time.Millisecond)
}

// backdate makes every session under the prefix expired on the server's
// clock (its stored expiry 10 s past) while its bucket keeps its TTL, so
// that a sweep test does not race Redis ending buckets by themselves,
// however slow the run.
func backdate(t testing.TB, tg *target) {
	t.Helper()
	past := uint32(tg.now().Unix() - 10)
	for k, typ := range scanPrefix(t, tg, tg.prefix) {
		if typ != "hash" {
			continue
		}
		all, err := tg.do(t, "HGETALL", k).AsStrMap()
		noErr(t, err)
		for f, v := range all {
			if f == "" || len(v) < expiryLen {
				continue
			}
			b := []byte(v)
			binary.BigEndian.PutUint32(b, past)
			tg.do(t, "HSET", k, f, string(b))
		}
	}
}

// The sweep tests use FieldTTLOff: the layout Sweep is for. Redis 7.4+ and
// miniredis would otherwise expire the fields themselves, racing the sweep.

func TestSweepRemovesOnlyExpiredSessions(t *testing.T) {
	t.Parallel()
	forEachTarget(t, func(t *testing.T, tg *target) {
		// 64 buckets, so that live and expired sessions share them.
		s := newStore(t, tg, Config{FieldTTL: FieldTTLOff, HashKeyGenerator: func(id string) (string, error) { return tg.prefix + id[:2], nil }})
		// Writes that would clean their bucket once a session in it has
		// expired (a slow fill on a loaded machine) leave it to the sweep.
		withoutCleaning(s, true)
		gone := fill(t, s, 150, expireSoon)
		live := fill(t, s, 100, 3600)
		waitExpiry(t, tg)

		st, err := s.Sweep(context.Background())
		noErr(t, err)
		// Writes into a bucket clean it too: the expired sessions are gone
		// either way, and the sweep removed those the writes left.
		left := 0
		for k := range scanPrefix(t, tg, tg.prefix) {
			left += sessionFields(t, tg, k)
		}
		equal(t, "sessions left", left, len(live))
		if st.Removed == 0 || st.Removed > len(gone) {
			t.Fatalf("removed %d of %d expired", st.Removed, len(gone))
		}
		equal(t, "live", st.Sessions, len(live))
		equal(t, "skipped", st.Skipped, 0)
		equal(t, "errors", st.Errors, 0)
		if st.Buckets == 0 || st.Buckets > 256 {
			t.Fatalf("visited %d buckets", st.Buckets)
		}
		allLoad(t, s, live, "a live session was removed")
		again, err := s.Sweep(context.Background())
		noErr(t, err)
		equal(t, "removed by a second sweep", again.Removed, 0)
		t.Log(st)
	})
}

func TestSweepTouchesOnlyItsOwnHashes(t *testing.T) {
	t.Parallel()
	forEachTarget(t, func(t *testing.T, tg *target) {
		s := newStore(t, tg, Config{FieldTTL: FieldTTLOff})
		fill(t, s, 20, 3600)
		// Expired by their stored expiry while their buckets live on: the
		// sweep must remove every session.
		backdate(t, tg)
		// Keys of other kinds under the prefix, and another application's
		// hash, laid out like a bucket, outside it.
		tg.do(t, "SET", tg.prefix+"a-string", "x")
		tg.do(t, "RPUSH", tg.prefix+"a-list", "x")
		other := "other-app:" + tg.prefix
		tg.do(t, "HSET", other, "\x00\x00\x00\x01old", "expired-looking")

		st, err := s.Sweep(context.Background())
		noErr(t, err)
		equal(t, "removed", st.Removed, 20)
		equal(t, "skipped", st.Skipped, 2)
		equal(t, "string untouched", tg.do(t, "EXISTS", tg.prefix+"a-string").IntMust(t), 1)
		equal(t, "other app's hash untouched", tg.do(t, "HLEN", other).IntMust(t), 1)
		tg.do(t, "DEL", other)
	})
}

func TestSweepFindsEveryBucketBySCAN(t *testing.T) {
	t.Parallel()
	// miniredis answers SCAN in one page: only the real server exercises
	// the cursor.
	forEachReal(t, func(t *testing.T, tg *target) {
		s := newStore(t, tg, Config{})
		fill(t, s, 3000, 3600)
		buckets := len(scanPrefix(t, tg, tg.prefix))
		st, err := s.Sweep(context.Background())
		noErr(t, err)
		equal(t, "buckets", st.Buckets, buckets)
		equal(t, "live sessions", st.Sessions, 3000)
	})
}

func TestSweepCleansALargeBucketInChunks(t *testing.T) {
	t.Parallel()
	forEachReal(t, func(t *testing.T, tg *target) {
		bucket := tg.prefix + "big"
		// Without field TTLs, which Redis 7.4+ would expire by itself.
		s := newStore(t, tg, Config{FieldTTL: FieldTTLOff, HashKeyGenerator: func(string) (string, error) { return bucket, nil }})
		// Writes that do not clean, so that every expired session is left for
		// the sweep, however long filling takes.
		withoutCleaning(s, true)
		live := fill(t, s, 300, 3600)
		fill(t, s, 1200, expireSoon)
		enc, err := tg.do(t, "OBJECT", "ENCODING", bucket).ToString()
		noErr(t, err)
		equal(t, "encoding", enc, "hashtable") // HSCAN pages through it
		waitExpiry(t, tg)
		st, err := s.Sweep(context.Background())
		noErr(t, err)
		equal(t, "removed", st.Removed, 1200)
		equal(t, "live", st.Sessions, 300)
		equal(t, "sessions left", sessionFields(t, tg, bucket), len(live))
	})
}

func TestSweepSources(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	s := newStore(t, tg, Config{FieldTTL: FieldTTLOff})
	fill(t, s, 200, expireSoon)
	waitExpiry(t, tg)

	t.Run("a sample visits at most n buckets", func(t *testing.T) {
		sample := newStore(t, tg, Config{FieldTTL: FieldTTLOff, SweepBuckets: SampleBuckets(1000)})
		st, err := sample.Sweep(context.Background())
		noErr(t, err)
		if st.Buckets > 1000 || st.Removed > 200 {
			t.Fatalf("sample: %v", st)
		}
	})

	t.Run("a sample names the buckets of Config.Buckets", func(t *testing.T) {
		few := newStore(t, tg, Config{FieldTTL: FieldTTLOff, Buckets: 16, SweepBuckets: SampleBuckets(1000)})
		fill(t, few, 100, expireSoon)
		waitExpiry(t, tg)
		st, err := few.Sweep(context.Background())
		noErr(t, err)
		equal(t, "buckets visited", st.Buckets, 16)
		equal(t, "removed", st.Removed, 100)
		equal(t, "skipped", st.Skipped, 0)
	})

	t.Run("a caller's source; keys outside the prefix are skipped", func(t *testing.T) {
		var listed []string
		for k := range scanPrefix(t, tg, tg.prefix) {
			listed = append(listed, k)
		}
		tg.do(t, "HSET", "elsewhere", "\x00\x00\x00\x01x", "y")
		own := newStore(t, tg, Config{SweepBuckets: func(ctx context.Context, c rueidis.Client, prefix string, yield func([]string) error) error {
			return yield(append(listed, "elsewhere", prefix))
		}})
		st, err := own.Sweep(context.Background())
		noErr(t, err)
		equal(t, "skipped", st.Skipped, 2)
		equal(t, "elsewhere untouched", tg.do(t, "HLEN", "elsewhere").IntMust(t), 1)
		equal(t, "left under the prefix", len(scanPrefix(t, tg, tg.prefix)) <= len(listed), true)
	})
}

func TestSweepStopsWhenCanceled(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	s := newStore(t, tg, Config{FieldTTL: FieldTTLOff})
	fill(t, s, 50, expireSoon)
	waitExpiry(t, tg)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	st, err := s.Sweep(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if st.Removed > 50 {
		t.Fatalf("stats %v", st)
	}
}

func TestSweepInStringMode(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	cc := &countingClient{Client: tg.client}
	s := newStore(t, tg, Config{Mode: StringMode, Client: cc})
	st, err := s.Sweep(context.Background())
	noErr(t, err)
	equal(t, "NothingToDo", st.NothingToDo, true)
	equal(t, "Redis calls", cc.reset(), 0)
}

// TestSweepNeverRemovesARenewedSession hammers Saves and renewals on live
// sessions that share buckets with expired ones while Sweep runs over and
// over: every Get must find its session.
func TestSweepNeverRemovesARenewedSession(t *testing.T) {
	t.Parallel()
	forEachTarget(t, func(t *testing.T, tg *target) {
		// 4 buckets; renewals on every Save.
		s := newStore(t, tg, Config{FieldTTL: FieldTTLOff, TouchInterval: -1, HashKeyGenerator: func(id string) (string, error) {
			return tg.prefix + id[:1], nil
		}})
		fill(t, s, 200, expireSoon)
		waitExpiry(t, tg)
		filled := time.Now()
		hammered := fill(t, s, 16, 2)

		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var lost, stalled, saves atomic.Int64
		var removed atomic.Int64
		var wg sync.WaitGroup
		for i, b := range hammered {
			wg.Add(1)
			go func() {
				defer wg.Done()
				saved := filled // the last Save of the session began after this
				for n := 0; ctx.Err() == nil; n++ {
					r := b.request()
					sess, err := s.Get(r, "sid")
					if err != nil {
						t.Errorf("Get: %v", err)
						return
					}
					if sess.IsNew {
						// A Save with MaxAge 2 keeps the session at least a
						// second (expiry is in whole seconds): gone sooner is
						// a loss; later, the machine stalled this goroutine
						// past the session's end.
						if time.Since(saved) < time.Second {
							lost.Add(1)
						} else {
							stalled.Add(1)
						}
						return
					}
					if n%2 == 0 { // alternate changes and pure renewals
						sess.Values["n"] = fmt.Sprint(i, n)
					}
					saved = time.Now()
					if err := s.Save(r, httptest.NewRecorder(), sess); err != nil {
						t.Errorf("Save: %v", err)
						return
					}
					saves.Add(1)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				st, err := s.Sweep(ctx)
				// A deadline can only be the test's (the store's Timeout is
				// longer): rueidis may answer it a moment before ctx says so.
				if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Sweep: %v", err)
					return
				}
				removed.Add(int64(st.Removed))
			}
		}()
		wg.Wait()
		equal(t, "sessions lost", lost.Load(), 0)
		left := 0
		for k := range scanPrefix(t, tg, tg.prefix) {
			left += sessionFields(t, tg, k)
		}
		// Expired sessions go by Sweep, by writes cleaning their bucket, or
		// by their field TTL.
		if n := len(hammered); left > n || left < n-int(stalled.Load()) {
			t.Fatalf("%d sessions left, want %d (less those that ended in a stall, %d)", left, n, stalled.Load())
		}
		t.Logf("%d saves during the sweeps, which removed %d sessions; %d sessions ended while the machine stalled their requests for over a second",
			saves.Load(), removed.Load(), stalled.Load())
	})
}

func TestSweepLeavesWhatIsNotShapedLikeASession(t *testing.T) {
	t.Parallel()
	forEachTarget(t, func(t *testing.T, tg *target) {
		s := newStore(t, tg, Config{FieldTTL: FieldTTLOff})
		fill(t, s, 10, 3600)
		backdate(t, tg)
		// A hash under the prefix that is not a bucket, and a stray field
		// in a real bucket; both hold values that look expired.
		tg.do(t, "HSET", tg.prefix+"user:42", "\x00\x00\x00\x01abc", "\x00\x00\x00\x01x")
		bucket := tg.prefix + "\x00\x01"
		tg.do(t, "HSET", bucket, "short", "\x00\x00\x00\x01x")
		st, err := s.Sweep(context.Background())
		noErr(t, err)
		equal(t, "removed", st.Removed, 10)
		equal(t, "skipped", st.Skipped, 1)
		equal(t, "other hash", tg.do(t, "HLEN", tg.prefix+"user:42").IntMust(t), 1)
		equal(t, "stray field", tg.do(t, "HEXISTS", bucket, "short").AsBoolMust(t), true)
	})
}

func TestSweepOnAStalledServerEndsWithinTheTimeout(t *testing.T) {
	tg := newMiniTarget(t)
	p, c := proxied(t, tg)
	s := newStore(t, tg, Config{Client: c, Timeout: 200 * time.Millisecond})
	fill(t, s, 10, 3600)
	p.Stall()
	start := time.Now()
	_, err := s.Sweep(context.Background())
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("error %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("took %v", took)
	}
	start = time.Now()
	if _, err := s.Stats(context.Background(), 10); !errors.Is(err, ErrUnavailable) || time.Since(start) > 3*time.Second {
		t.Fatalf("Stats: %v after %v", err, time.Since(start))
	}
}

// failingScripts fails every script a store runs, as a server that stopped
// answering would, after its timeout.
type failingScripts struct{ rueidis.Client }

func (c failingScripts) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	if name := strings.ToUpper(cmd.Commands()[0]); name == "EVALSHA" || name == "EVAL" {
		return rueidis.NewErrorResult(errors.New("i/o timeout"))
	}
	return c.Client.Do(ctx, cmd)
}

// TestSweepStopsAfterFailuresInARow: when bucket after bucket fails, Sweep
// stops after MaxSweepFailures in a row and says why, instead of trying
// every bucket.
func TestSweepStopsAfterFailuresInARow(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	var offered int
	many := BucketSource(func(ctx context.Context, _ rueidis.Client, prefix string, yield func([]string) error) error {
		for i := range 4096 {
			offered++
			if err := yield([]string{prefix + string([]byte{byte(i >> 8), byte(i)})}); err != nil {
				return err
			}
		}
		return nil
	})
	s := newStore(t, tg, Config{Client: failingScripts{tg.client}, FieldTTL: FieldTTLOff, SweepBuckets: many})
	st, err := s.Sweep(context.Background())
	if err == nil || !strings.Contains(err.Error(), "stopped after 5 buckets failed in a row") || !strings.Contains(err.Error(), "i/o timeout") {
		t.Fatalf("Sweep: %v", err)
	}
	if st.Errors < MaxSweepFailures || st.Errors > MaxSweepFailures+sweepWorkers || offered > 200 {
		t.Fatalf("%d errors after %d buckets offered, want about %d", st.Errors, offered, MaxSweepFailures)
	}
}
