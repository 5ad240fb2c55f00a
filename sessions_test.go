package redistore

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/sessions"
	"github.com/redis/rueidis"
)

// newSession saves a new session holding values, kept maxAge seconds (0:
// the store's default), and returns its browser and session.
func newSession(t testing.TB, s *Store, values map[any]any, maxAge int) (*browser, *sessions.Session) {
	t.Helper()
	b := newBrowser()
	sess, r := b.get(t, s, "sid")
	for k, v := range values {
		sess.Values[k] = v
	}
	if maxAge > 0 {
		sess.Options.MaxAge = maxAge
	}
	b.save(t, s, r, sess)
	return b, sess
}

// walk collects what Sessions yields, failing on an error, by handle.
func walk(t testing.TB, s *Store) map[string][]SessionInfo {
	t.Helper()
	out := map[string][]SessionInfo{}
	for info, err := range s.Sessions(context.Background()) {
		noErr(t, err)
		out[info.Handle] = append(out[info.Handle], info)
	}
	return out
}

// sessionsConfig is a store whose HashMode buckets keep expired values (no
// field TTLs, no cleaning), for Sessions to skip.
func sessionsStore(t testing.TB, tg *target, mode Mode) *Store {
	t.Helper()
	cfg := Config{Mode: mode, UserKey: "uid"}
	if mode == HashMode {
		cfg.FieldTTL, cfg.Buckets = FieldTTLOff, 16
	}
	s := newStore(t, tg, cfg)
	if mode == HashMode {
		withoutCleaning(s, true)
	}
	return s
}

func TestSessionsVisitsEveryLiveSessionOnce(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := sessionsStore(t, tg, mode)
		other := newStore(t, tg, Config{Mode: mode, KeyPrefix: tg.prefix + "other:"})
		newSession(t, other, map[any]any{"cart": "elsewhere"}, 0)
		live := map[string]string{} // handle -> user
		for i := range 24 {
			values := map[any]any{"cart": i}
			user := ""
			if i%3 == 0 {
				user = fmt.Sprint("user", i%2)
				values["uid"] = user
			}
			_, sess := newSession(t, s, values, 0)
			live[s.Handle(sess)] = user
		}
		for range 4 {
			newSession(t, s, map[any]any{"uid": "gone"}, 1)
		}
		tg.advance(t, 2100*time.Millisecond)
		got := walk(t, s)
		equal(t, "sessions yielded", len(got), len(live))
		for h, user := range live {
			infos := got[h]
			equal(t, "times a session is yielded", len(infos), 1)
			info := infos[0]
			equal(t, "user", info.User, user)
			if info.Expired || info.Started.IsZero() || !info.Expires.After(info.Now) || info.StoredBytes == 0 || info.Compressor == "" || info.Values["cart"] == nil {
				t.Fatalf("session %s: %+v", h, info)
			}
			if info.Field != "" || mode == StringMode && info.Key != "" {
				t.Fatalf("Sessions gave the place that holds the ID: key %q, field %q", info.Key, info.Field)
			}
		}
		// The handles are UserSessions'.
		for _, user := range []string{"user0", "user1"} {
			list, err := s.UserSessions(context.Background(), user)
			noErr(t, err)
			for _, us := range list {
				equal(t, "user of a handle UserSessions lists", live[us.Handle], user)
			}
		}
	})
}

func TestSessionsYieldsWhatDoesNotDecode(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := sessionsStore(t, tg, mode)
		newSession(t, s, map[any]any{"cart": 1}, 0)
		id := newID()
		loc, err := s.locate(id)
		noErr(t, err)
		garbage := "\x7f\xff\xff\xffnot an envelope"
		if loc.field == "" {
			tg.do(t, "SET", loc.key, garbage, "EX", "100")
		} else {
			tg.do(t, "HSET", loc.key, loc.field, garbage)
		}
		var good, bad int
		for info, err := range s.Sessions(context.Background()) {
			switch {
			case err == nil:
				good++
			case info.Handle == handleOf(id):
				bad++
			default:
				t.Fatalf("Sessions: %v", err)
			}
		}
		equal(t, "sessions that decode", good, 1)
		equal(t, "sessions that do not", bad, 1)
	})
}

// walkCounter counts the calls sent through a client and its nodes.
type walkCounter struct {
	rueidis.Client
	calls *atomic.Int64
}

func (c walkCounter) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	c.calls.Add(1)
	return c.Client.Do(ctx, cmd)
}

func (c walkCounter) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	c.calls.Add(1)
	return c.Client.DoMulti(ctx, cmds...)
}

func (c walkCounter) Nodes() map[string]rueidis.Client {
	out := map[string]rueidis.Client{}
	for addr, n := range c.Client.Nodes() {
		out[addr] = walkCounter{Client: n, calls: c.calls}
	}
	return out
}

func TestSessionsStopsEarly(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		calls := &atomic.Int64{}
		s := newStore(t, tg, Config{Mode: mode, Client: walkCounter{Client: tg.client, calls: calls}})
		for i := range 300 {
			newSession(t, s, map[any]any{"n": i}, 0)
		}
		seen, after := 0, int64(0)
		for _, err := range s.Sessions(context.Background()) {
			noErr(t, err)
			seen++
			after = calls.Load()
			break
		}
		equal(t, "sessions yielded", seen, 1)
		equal(t, "calls after the break", calls.Load(), after)
	})
}

func TestSessionsUnderConcurrentWrites(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := sessionsStore(t, tg, mode)
		stable := map[string]*browser{}
		for i := range 150 {
			b, sess := newSession(t, s, map[any]any{"n": i}, 0)
			stable[s.Handle(sess)] = b
		}
		for range 20 {
			newSession(t, s, map[any]any{"short": true}, 1)
		}
		browsers := make([]*browser, 0, len(stable))
		for _, b := range stable {
			browsers = append(browsers, b)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var churnErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			churnErr = churn(s, browsers, stop)
		}()
		// A SCAN reply of a few keys, and writes between them as well as
		// beside them, so that the walk meets the writes (and, on a real
		// server, the key table's resizes they cause).
		withWalkCount(s, 8)
		got := map[string][]SessionInfo{}
		var walkErr error
		i := 0
		for info, err := range s.Sessions(context.Background()) {
			if err != nil {
				walkErr = err
				break
			}
			got[info.Handle] = append(got[info.Handle], info)
			if i++; i == 50 {
				tg.advance(t, 1500*time.Millisecond) // the sessions of a second or two expire mid-walk
			}
			if i%4 == 0 {
				if walkErr = rewrite(s, newBrowser(), func(sess *sessions.Session) { sess.Values["during"] = i }); walkErr != nil {
					break
				}
			}
		}
		close(stop)
		wg.Wait()
		noErr(t, walkErr)
		noErr(t, churnErr)
		for h := range stable {
			equal(t, "times a session that lived throughout is yielded", len(got[h]), 1)
		}
		for h, infos := range got {
			if len(infos) > 1 {
				t.Fatalf("session %s yielded %d times", h, len(infos))
			}
		}
	})
}

func TestDeleteSessions(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := sessionsStore(t, tg, mode)
		var alice, others []*browser
		for range 3 {
			b, _ := newSession(t, s, map[any]any{"uid": "alice"}, 0)
			alice = append(alice, b)
		}
		for _, v := range []map[any]any{{"uid": "bob"}, {"uid": "bob"}, {"cart": 1}} {
			b, _ := newSession(t, s, v, 0)
			others = append(others, b)
		}
		// A request that loaded one of alice's sessions before.
		late, lateReq := alice[0].get(t, s, "sid")
		late.Values["cart"] = "3 items"
		n, err := s.DeleteSessions(context.Background(), func(info SessionInfo) bool { return info.User == "alice" })
		noErr(t, err)
		equal(t, "sessions ended", n, 3)
		for _, b := range alice {
			ended(t, s, b, "alice's session")
		}
		for _, b := range others {
			lives(t, s, b, "another session")
		}
		if err := s.Save(lateReq, httptest.NewRecorder(), late); !errors.Is(err, ErrEnded) {
			t.Fatalf("Save of a session DeleteSessions ended: %v, want ErrEnded", err)
		}
		sameHandles(t, "alice's index", handles(t, s, "alice"))
		entries, err := s.indexEntries(context.Background(), s.indexKey("alice"))
		noErr(t, err)
		equal(t, "entries left in alice's index", len(entries), 0)
	})
}

func TestDeleteSessionsRechecksARewrittenSession(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		for _, tc := range []struct {
			name    string
			rewrite map[any]any
			ends    bool
		}{
			{"rewritten into one it would not pick is left", map[any]any{"uid": "bob"}, false},
			{"rewritten into one it still picks is ended", map[any]any{"cart": "full"}, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tg.prefix = randomPrefix()
				s := sessionsStore(t, tg, mode)
				b, sess := newSession(t, s, map[any]any{"uid": "alice"}, 0)
				target := s.Handle(sess)
				rewritten := false
				n, err := s.DeleteSessions(context.Background(), func(info SessionInfo) bool {
					if info.Handle == target && !rewritten {
						// Another request rewrites it between the read and the delete.
						rewritten = true
						sess, r := b.get(t, s, "sid")
						for k, v := range tc.rewrite {
							sess.Values[k] = v
						}
						b.save(t, s, r, sess)
					}
					return info.User == "alice"
				})
				noErr(t, err)
				equal(t, "rewritten", rewritten, true)
				if tc.ends {
					equal(t, "sessions ended", n, 1)
					ended(t, s, b, "the session")
				} else {
					equal(t, "sessions ended", n, 0)
					lives(t, s, b, "the session")
				}
			})
		}
	})
}

// churn writes until stop is closed: it rewrites the sessions of browsers
// in turn, creates new sessions (some to expire in a second), and ends
// every other one it created.
func churn(s *Store, browsers []*browser, stop chan struct{}) error {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return nil
		default:
		}
		b := browsers[i%len(browsers)]
		if err := rewrite(s, b, func(sess *sessions.Session) { sess.Values["n"] = i }); err != nil {
			return err
		}
		nb := newBrowser()
		if err := rewrite(s, nb, func(sess *sessions.Session) { sess.Values["churn"] = i; sess.Options.MaxAge = 1 + i%2 }); err != nil {
			return err
		}
		if i%2 == 0 {
			if err := rewrite(s, nb, func(sess *sessions.Session) { sess.Options.MaxAge = -1 }); err != nil {
				return err
			}
		}
	}
}

// rewrite loads a browser's session, changes it and saves it, without a
// testing.T (for goroutines).
func rewrite(s *Store, b *browser, change func(*sessions.Session)) error {
	r := b.request()
	sess, err := s.Get(r, "sid")
	if err != nil {
		return err
	}
	change(sess)
	w := httptest.NewRecorder()
	if err := s.Save(r, w, sess); err != nil {
		return err
	}
	for _, c := range w.Result().Cookies() {
		b.cookies[c.Name] = c
	}
	return nil
}

func TestSessionsObserved(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	var mu sync.Mutex
	var events []Event
	s := newStore(t, tg, Config{Observer: ObserverFunc(func(_ context.Context, e Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	})})
	for i := range 3 {
		newSession(t, s, map[any]any{"n": i}, 0)
	}
	mu.Lock()
	events = nil
	mu.Unlock()
	walk(t, s)
	n, err := s.DeleteSessions(context.Background(), func(info SessionInfo) bool { return info.Values["n"] == 1 })
	noErr(t, err)
	equal(t, "ended", n, 1)
	mu.Lock()
	defer mu.Unlock()
	equal(t, "events", len(events), 2)
	equal(t, "first op", events[0].Op, OpSessions)
	equal(t, "sessions walked", events[0].Sessions, 3)
	equal(t, "second op", events[1].Op, OpDeleteSessions)
	equal(t, "sessions ended", events[1].Sessions, 1)
}

// TestSessionsSkipsWhatSCANRepeats feeds a walk SCAN replies that list keys
// again, as SCAN may across a resize of Redis's key table: each session is
// visited once.
func TestSessionsSkipsWhatSCANRepeats(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	for _, mode := range []Mode{HashMode, StringMode} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := Config{Mode: mode, KeyPrefix: randomPrefix()}
			if mode == HashMode {
				cfg.Buckets = 1 << 20 // a session a bucket
			}
			s := newStore(t, tg, cfg)
			var keys []string
			for i := range 3 {
				_, sess := newSession(t, s, map[any]any{"n": i}, 0)
				loc, err := s.locate(sess.ID)
				noErr(t, err)
				keys = append(keys, loc.key)
			}
			visits := map[string]int{}
			w := &sessionWalk{s: s, ctx: context.Background(), visit: func(f foundSession) error {
				visits[s.idAt(f.loc)]++
				return nil
			}}
			if hb, ok := s.layout.(*hashLayout); ok {
				w.buckets, w.seen = &hb.buckets, make([]uint64, (hb.buckets.n+63)/64)
			}
			a, b, c := keys[0], keys[1], keys[2]
			for _, reply := range [][]string{{a, b, a}, {b, c}, {}, {}, {a, c}} {
				noErr(t, w.chunk(reply))
			}
			equal(t, "sessions visited", len(visits), 3)
			for id, n := range visits {
				equal(t, "visits of "+handleOf(id), n, 1)
			}
		})
	}
}

// TestSessionsReadsALargeBucketOnce: a bucket of more than
// sessionsWholeBucket sessions is read with HSCAN, each session once.
func TestSessionsReadsALargeBucketOnce(t *testing.T) {
	t.Parallel()
	miniAndReal(t, func(t *testing.T, tg *target) {
		s := newStore(t, tg, Config{Mode: HashMode, Buckets: 1})
		_, sess := newSession(t, s, map[any]any{"n": 1}, 0)
		loc, err := s.locate(sess.ID)
		noErr(t, err)
		v, err := tg.do(t, "HGET", loc.key, loc.field).ToString()
		noErr(t, err)
		n := sessionsWholeBucket + 300
		args := []string{"HSET", loc.key}
		for range n - 1 {
			raw, _ := rawID(newID())
			args = append(args, string(raw[:]), v) // copies under other IDs
		}
		tg.do(t, args...)
		got := walk(t, s)
		equal(t, "sessions yielded", len(got), n)
		for h, infos := range got {
			equal(t, "times "+h+" is yielded", len(infos), 1)
		}
	})
}

// TestSessionsYieldsARedisFailure: with Redis gone, the walk yields one
// zero SessionInfo with ErrUnavailable, within Config.Timeout, and ends.
func TestSessionsYieldsARedisFailure(t *testing.T) {
	t.Parallel()
	for _, mode := range []Mode{HashMode, StringMode} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			tg := newMiniTarget(t)
			s := newStore(t, tg, Config{Mode: mode, Timeout: 300 * time.Millisecond})
			newSession(t, s, map[any]any{"n": 1}, 0)
			tg.mini.Close()
			yields := 0
			for info, err := range s.Sessions(context.Background()) {
				yields++
				if !errors.Is(err, ErrUnavailable) || info.Found || info.Handle != "" {
					t.Fatalf("with Redis gone: %+v, %v; want a zero SessionInfo and ErrUnavailable", info, err)
				}
			}
			equal(t, "yields", yields, 1)
			n, err := s.DeleteSessions(context.Background(), func(SessionInfo) bool { return true })
			if n != 0 || !errors.Is(err, ErrUnavailable) {
				t.Fatalf("DeleteSessions with Redis gone: %d, %v", n, err)
			}
		})
	}
}

// "End every session of tenant X": a tenant-x session that gets a new ID
// (RegenerateID: a privilege change, a periodic rotation) while
// DeleteSessions runs does not survive it: the walk may have passed its new
// place, and a further pass ends it.
func TestDeleteSessionsEndsSessionsGivenANewIDMeanwhile(t *testing.T) {
	t.Parallel()
	miniAndReal(t, func(t *testing.T, tg *target) {
		for _, mode := range []Mode{HashMode, StringMode} {
			t.Run(mode.String(), func(t *testing.T) {
				tg.prefix = randomPrefix()
				s := newStore(t, tg, Config{Mode: mode, UserKey: "uid", Buckets: map[Mode]int{HashMode: 16, StringMode: 0}[mode]})
				type held struct {
					b    *browser
					sess *sessions.Session
				}
				var all []held
				for i := range 40 {
					b, sess := newSession(t, s, map[any]any{"uid": fmt.Sprint("tenant-x:", i)}, 0)
					all = append(all, held{b, sess})
				}
				once := false
				n, err := s.DeleteSessions(context.Background(), func(info SessionInfo) bool {
					if !once {
						once = true
						for _, h := range all {
							if s.Handle(h.sess) == info.Handle {
								continue
							}
							sess, r := h.b.get(t, s, "sid")
							w := httptest.NewRecorder()
							if err := s.RegenerateID(r, w, sess); err == nil {
								h.b.keep(t, w)
							}
							break // one request, of one other user of the tenant
						}
					}
					return true
				})
				noErr(t, err)
				left := 0
				for info, err := range s.Sessions(context.Background()) {
					noErr(t, err)
					left++
					_ = info
				}
				signedIn := 0
				for _, h := range all {
					sess, _ := h.b.get(t, s, "sid")
					if !sess.IsNew && sess.Values["uid"] != nil {
						signedIn++
					}
				}
				equal(t, "ended", n, 40)
				t.Logf("%s: ended %d, live after DeleteSessions(all of tenant x): %d, browsers still signed in: %d", mode, n, left, signedIn)
				if left > 0 || signedIn > 0 {
					t.Errorf("%d tenant-x sessions survive DeleteSessions (%d browsers still signed in)", left, signedIn)
				}
			})
		}
	})
}

// TestDeleteSessionsEndsTheOneSessionGivenANewIDMeanwhile: the one session
// DeleteSessions picks is given a new ID (a login in another tab) between
// the walk's read and its delete, so the pass ends nothing: it walks again
// all the same, and the session ends under its new ID.
func TestDeleteSessionsEndsTheOneSessionGivenANewIDMeanwhile(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode, UserKey: "uid"})
		for i := range 30 {
			newSession(t, s, map[any]any{"uid": fmt.Sprint("tenant-y:", i)}, 0)
		}
		for trial := range 6 {
			b, _ := newSession(t, s, map[any]any{"uid": fmt.Sprint("tenant-x:", trial)}, 0)
			regenerated := false
			_, err := s.DeleteSessions(context.Background(), func(info SessionInfo) bool {
				if !strings.HasPrefix(info.User, "tenant-x:") {
					return false
				}
				if !regenerated {
					regenerated = true
					sess, r := b.get(t, s, "sid")
					w := httptest.NewRecorder()
					noErr(t, s.RegenerateID(r, w, sess))
					b.keep(t, w)
				}
				return true
			})
			noErr(t, err)
			ended(t, s, b, fmt.Sprintf("trial %d: the session given a new ID during DeleteSessions", trial))
		}
	})
}
