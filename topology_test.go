package redistore

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/redisession/redistore/internal/redistest"
)

func TestClusterSweepVisitsEachPrimaryOnce(t *testing.T) {
	t.Parallel()
	for _, is := range installations(t) {
		t.Run(is.in.Name(), func(t *testing.T) {
			t.Parallel()
			tg := newClusterTarget(t, is)
			s := newStore(t, tg, Config{})
			if n := len(tg.client.Nodes()); n != 6 {
				t.Fatalf("the client knows %d nodes, want 6: replicas must be among them for this test to mean anything", n)
			}
			browsers := fill(t, s, 500, 3600)
			buckets := map[string]bool{}
			for _, b := range browsers {
				sess, _ := b.get(t, s, "sid")
				loc, _ := s.locate(sess.ID)
				buckets[loc.key] = true
			}
			st, err := s.Sweep(context.Background())
			noErr(t, err)
			equal(t, "buckets visited", st.Buckets, len(buckets))
			equal(t, "sessions seen", st.Sessions, 500)
		})
	}
}

// writer increments its own session's counter in a loop, remembering the
// last count a Save acknowledged.
type writer struct {
	b      *browser
	acked  int
	failed int
	// regressed counts reads of less than the last acknowledged count: a
	// lost save.
	regressed int
}

func (wr *writer) step(t testing.TB, s *Store) {
	r := wr.b.request()
	sess, err := s.Get(r, "sid")
	if err != nil {
		wr.failed++
		return
	}
	n, _ := sess.Values["n"].(int)
	if n < wr.acked && !sess.IsNew {
		wr.regressed++
	}
	sess.Values["n"] = n + 1
	w := httptest.NewRecorder()
	if err := s.Save(r, w, sess); err != nil {
		wr.failed++
		return
	}
	wr.b.keep(t, w)
	wr.acked = n + 1
}

// load is a set of writers saving concurrently until finish.
type load struct {
	writers []*writer
	ok      atomic.Int64 // saves acknowledged
	// since is a mark (UnixNano) set by mark; okSince counts the saves
	// acknowledged that began after it, so that a save in flight at the
	// mark does not count as one that worked after it.
	since   atomic.Int64
	okSince atomic.Int64
	stop    chan struct{}
	wg      sync.WaitGroup
}

// mark starts counting, in okSince, the saves that begin from now on.
func (l *load) mark() {
	l.okSince.Store(0)
	l.since.Store(time.Now().UnixNano())
}

// startLoad starts n writers, each with one session saved before it returns.
func startLoad(t testing.TB, s *Store, n int) *load {
	l := &load{writers: make([]*writer, n), stop: make(chan struct{})}
	for i := range l.writers {
		l.writers[i] = &writer{b: newBrowser()}
		l.writers[i].step(t, s)
	}
	for _, wr := range l.writers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				before, began := wr.acked, time.Now().UnixNano()
				wr.step(t, s)
				if wr.acked != before {
					l.ok.Add(1)
					if since := l.since.Load(); since != 0 && began > since {
						l.okSince.Add(1)
					}
				} else {
					time.Sleep(5 * time.Millisecond) // Redis is down: do not spin
				}
			}
		}()
	}
	return l
}

// finish stops the writers and returns how many of their requests failed,
// and how many reads found less than a save had acknowledged.
func (l *load) finish() (failed, regressed int) {
	close(l.stop)
	l.wg.Wait()
	for _, wr := range l.writers {
		failed += wr.failed
		regressed += wr.regressed
	}
	return failed, regressed
}

// lost reads every writer's session and counts those holding less than
// their last acknowledged count. A read that times out is tried again
// (a few times, on a loaded machine, just after a failover): the count is
// what matters here, not how fast the first read after it is.
func lost(t testing.TB, s *Store, writers []*writer) int {
	n := 0
	for _, wr := range writers {
		sess, err := s.Get(wr.b.request(), "sid")
		for try := 0; errors.Is(err, ErrUnavailable) && try < 10; try++ {
			time.Sleep(200 * time.Millisecond)
			sess, err = s.Get(wr.b.request(), "sid")
		}
		noErr(t, err)
		if got, _ := sess.Values["n"].(int); got < wr.acked {
			n++
			t.Logf("a session holds %d, %d was acknowledged", got, wr.acked)
		}
	}
	return n
}

func TestClusterFailoverLosesNoSession(t *testing.T) {
	t.Parallel()
	skipSlow(t)
	forEachClusterMode(t, func(t *testing.T, cl *redistest.Cluster, s *Store) {
		l := startLoad(t, s, 16)
		time.Sleep(500 * time.Millisecond)
		replica := cl.Replicas()[0]
		start := time.Now()
		noErr(t, cl.Failover(replica))
		t.Logf("CLUSTER FAILOVER on %s took %v", replica.Addr, time.Since(start))
		l.mark()
		time.Sleep(500 * time.Millisecond)
		failed, regressed := l.finish()
		if l.okSince.Load() == 0 {
			t.Fatal("no Save succeeded after the failover")
		}
		t.Logf("%d saves acknowledged, %d requests failed", l.ok.Load(), failed)
		// A coordinated failover waits for the replica to catch up.
		equal(t, "reads that found less than an acknowledged save", regressed, 0)
		equal(t, "sessions that lost an acknowledged save", lost(t, s, l.writers), 0)
	})
}

// TestClusterPrimaryKilled kills, under load, the primary that holds a
// session, without warning: Redis Cluster promotes its replica once the
// other primaries have found it unreachable for cluster-node-timeout (2 s
// here), and the client follows the new slot map. Saves of that session
// fail until then and work again after; the test reports how long that
// took (docs/scaling.md cites it). Replication is asynchronous, so writes
// the old primary acknowledged but had not yet copied may be lost; the test
// reports how many.
func TestClusterPrimaryKilled(t *testing.T) {
	t.Parallel()
	skipSlow(t)
	forEachClusterMode(t, func(t *testing.T, cl *redistest.Cluster, s *Store) {
		// A session whose primary still has a replica (the first subtest
		// leaves one primary without).
		var probe *browser
		var victim *redistest.Server
		for range 100 {
			b := startedSession(t, s)
			sess, _ := b.get(t, s, "sid")
			loc, err := s.locate(sess.ID)
			noErr(t, err)
			if p := primaryWithReplica(cl, loc.key); p != nil {
				probe, victim = b, p
				break
			}
		}
		if victim == nil {
			t.Fatal("no session landed on a primary with a replica")
		}
		l := startLoad(t, s, 16)
		time.Sleep(500 * time.Millisecond)
		victim.Stop()
		killed := time.Now()
		const bound = 30 * time.Second
		var recovered time.Duration
		for n := 1; ; n++ {
			r := probe.request()
			sess, err := s.Get(r, "sid")
			if err == nil && !sess.IsNew {
				sess.Values["after"] = n
				if err = s.Save(r, httptest.NewRecorder(), sess); err == nil {
					recovered = time.Since(killed)
					break
				}
			}
			if time.Since(killed) > bound {
				l.finish()
				t.Fatalf("the session's saves did not work again within %v of killing its primary: %v", bound, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond)
		failed, regressed := l.finish()
		t.Logf("saves of the session work again %v after its primary was killed; %d requests of the load failed meanwhile; %d reads found less than an acknowledged save; %d of %d sessions hold less than their last acknowledged save",
			recovered.Round(time.Millisecond), failed, regressed, lost(t, s, l.writers), len(l.writers))
	})
}

// primaryWithReplica returns the primary serving key when a running replica
// follows it, and nil otherwise.
func primaryWithReplica(cl *redistest.Cluster, key string) *redistest.Server {
	for _, p := range cl.Primaries() {
		if _, err := redistest.Do(p.Addr, "EXISTS", key); err != nil {
			continue // MOVED: another primary's
		}
		for _, r := range cl.Replicas() {
			if info, err := redistest.Info(r.Addr, "replication"); err == nil && info["master_port"] == strconv.Itoa(p.Port) && info["master_link_status"] == "up" {
				return p
			}
		}
		return nil
	}
	return nil
}

// TestClusterFailoverMergesSharedSession: requests sharing one session,
// each incrementing its own key, keep merging through a CLUSTER FAILOVER
// of the session's primary: every count ends at its last acknowledged
// value (or one more, where the failover cut off a Save's reply).
func TestClusterFailoverMergesSharedSession(t *testing.T) {
	t.Parallel()
	skipSlow(t)
	forEachClusterMode(t, func(t *testing.T, cl *redistest.Cluster, s *Store) {
		owner := startedSession(t, s)
		const workers = 8
		acked := make([]atomic.Int64, workers)
		var merged, failed atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < workers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := cookieJar(owner.cookies["sid"])
				key := fmt.Sprint("w", i)
				for {
					select {
					case <-stop:
						return
					default:
					}
					r := b.request()
					sess, err := s.Get(r, "sid")
					if err != nil || sess.IsNew {
						failed.Add(1)
						time.Sleep(5 * time.Millisecond)
						continue
					}
					n, _ := sess.Values[key].(int)
					sess.Values[key] = n + 1
					if err := s.Save(r, httptest.NewRecorder(), sess); err != nil {
						failed.Add(1)
						continue
					}
					merged.Add(1)
					acked[i].Store(int64(n + 1))
				}
			}()
		}
		time.Sleep(500 * time.Millisecond)
		shared, _ := owner.get(t, s, "sid")
		loc, _ := s.locate(shared.ID)
		replica := replicaOf(t, cl, loc.key)
		noErr(t, cl.Failover(replica))
		time.Sleep(500 * time.Millisecond)
		close(stop)
		wg.Wait()
		got, _ := owner.get(t, s, "sid")
		for i := range acked {
			n, _ := got.Values[fmt.Sprint("w", i)].(int)
			if a := acked[i].Load(); int64(n) < a || int64(n) > a+1 {
				t.Errorf("w%d is %d, its last acknowledged increment %d", i, n, a)
			}
		}
		t.Logf("%d saves merged into one session across the failover, %d requests failed", merged.Load(), failed.Load())
	})
}

// TestSentinelFailover kills the primary that three sentinels watch, under
// load: saves fail until a sentinel promotes the replica and the client
// follows, and then work again. Sentinels notice after
// down-after-milliseconds (1 s here), agree and promote in about a second
// more; the client asks them for the primary every DefaultSentinelRefresh,
// so it follows even if it misses their +switch-master message. The bound
// below allows for one failed election (sentinels then wait for
// failover-timeout, 5 s here, before another) and a loaded machine.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	skipSlow(t)
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		for _, mode := range []Mode{HashMode, StringMode} {
			t.Run(mode.String(), func(t *testing.T) {
				t.Parallel()
				sn := in.StartSentinelT(t, 1, 3)
				c, err := NewClient(sn.URL())
				noErr(t, err)
				defer c.Close()
				equal(t, "client mode", c.Mode(), rueidis.ClientModeSentinel)
				s, err := New(Config{Client: c, KeyPairs: testKeys, Mode: mode, KeyPrefix: randomPrefix(), Timeout: 500 * time.Millisecond})
				noErr(t, err)
				l := startLoad(t, s, 16)
				time.Sleep(500 * time.Millisecond)

				_, err = sn.KillPrimary()
				noErr(t, err)
				killed := time.Now()
				l.mark()
				const bound = 15 * time.Second
				for l.okSince.Load() == 0 {
					if time.Since(killed) > bound {
						l.finish()
						t.Fatalf("no Save succeeded within %v of killing the primary", bound)
					}
					time.Sleep(20 * time.Millisecond)
				}
				recovered := time.Since(killed)
				time.Sleep(500 * time.Millisecond)
				failed, regressed := l.finish()
				// Replication is asynchronous: saves acknowledged by the old
				// primary but not yet copied to the replica are lost.
				t.Logf("saves work again %v after the primary was killed; %d requests failed meanwhile; %d reads found less than an acknowledged save; %d of %d sessions hold less than their last acknowledged save",
					recovered.Round(time.Millisecond), failed, regressed, lost(t, s, l.writers), len(l.writers))
			})
		}
	})
}

// skipSlow skips, with go test -short, a test that takes many seconds of
// real time (a failover). CI runs them.
func skipSlow(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("a failover takes seconds of real time; run without -short")
	}
}

// replicaOf returns a replica of the primary that serves key.
func replicaOf(t *testing.T, cl *redistest.Cluster, key string) *redistest.Server {
	t.Helper()
	owner := ""
	for _, p := range cl.Primaries() {
		if _, err := redistest.Do(p.Addr, "EXISTS", key); err == nil {
			owner = strconv.Itoa(p.Port)
			break
		}
	}
	for _, r := range cl.Replicas() {
		info, err := redistest.Info(r.Addr, "replication")
		if err == nil && info["master_port"] == owner {
			return r
		}
	}
	t.Fatalf("no replica of the primary serving %q", key)
	return nil
}

// forEachClusterMode runs fn on a cluster of 3 primaries with a replica
// each, for every installation, with a store of each mode under a prefix of
// its own.
func forEachClusterMode(t *testing.T, fn func(t *testing.T, cl *redistest.Cluster, s *Store)) {
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		cl := in.StartClusterT(t, 3, 1)
		addrs := cl.Addrs()
		c, err := NewClient("redis://"+addrs[0], func(o *rueidis.ClientOption) { o.InitAddress = addrs })
		noErr(t, err)
		defer c.Close()
		for _, mode := range []Mode{HashMode, StringMode} {
			t.Run(mode.String(), func(t *testing.T) {
				s, err := New(Config{Client: c, KeyPairs: testKeys, Mode: mode, KeyPrefix: randomPrefix(), Timeout: 2 * time.Second})
				noErr(t, err)
				fn(t, cl, s)
			})
		}
	})
}
