package redistore

import (
	"context"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/redisession/redistore/internal/redistest"
)

func TestClusterSweepVisitsEachPrimaryOnce(t *testing.T) {
	tg := newClusterTarget(t)
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
}

// writer increments its own session's counter in a loop, remembering the
// last count a Save acknowledged.
type writer struct {
	b      *browser
	acked  int
	failed int
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
		t.Errorf("read count %d after %d was acknowledged", n, wr.acked)
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
	stop    chan struct{}
	wg      sync.WaitGroup
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
				before := wr.acked
				wr.step(t, s)
				if wr.acked != before {
					l.ok.Add(1)
				} else {
					time.Sleep(5 * time.Millisecond) // Redis is down: do not spin
				}
			}
		}()
	}
	return l
}

// finish stops the writers and returns how many of their requests failed.
func (l *load) finish() (failed int) {
	close(l.stop)
	l.wg.Wait()
	for _, wr := range l.writers {
		failed += wr.failed
	}
	return failed
}

// lost reads every writer's session and counts those holding less than
// their last acknowledged count.
func lost(t testing.TB, s *Store, writers []*writer) int {
	n := 0
	for _, wr := range writers {
		sess, err := s.Get(wr.b.request(), "sid")
		noErr(t, err)
		if got, _ := sess.Values["n"].(int); got < wr.acked {
			n++
			t.Logf("a session holds %d, %d was acknowledged", got, wr.acked)
		}
	}
	return n
}

func TestClusterFailoverLosesNoSession(t *testing.T) {
	cl := redistest.StartClusterT(t, 3, 1)
	addrs := cl.Addrs()
	c, err := NewClient("redis://"+addrs[0], func(o *rueidis.ClientOption) { o.InitAddress = addrs })
	noErr(t, err)
	defer c.Close()
	for _, mode := range []Mode{HashMode, StringMode} {
		t.Run(mode.String(), func(t *testing.T) {
			s, err := New(Config{Client: c, KeyPairs: testKeys, Mode: mode, KeyPrefix: randomPrefix(), Timeout: 2 * time.Second})
			noErr(t, err)
			l := startLoad(t, s, 16)
			time.Sleep(500 * time.Millisecond)
			replica := cl.Replicas()[0]
			start := time.Now()
			noErr(t, cl.Failover(replica))
			t.Logf("CLUSTER FAILOVER on %s took %v", replica.Addr, time.Since(start))
			before := l.ok.Load()
			time.Sleep(500 * time.Millisecond)
			failed := l.finish()
			if l.ok.Load() == before {
				t.Fatal("no Save succeeded after the failover")
			}
			t.Logf("%d saves acknowledged, %d requests failed", l.ok.Load(), failed)
			equal(t, "sessions that lost an acknowledged save", lost(t, s, l.writers), 0)
		})
	}
}

func TestSentinelFailover(t *testing.T) {
	sn := redistest.StartSentinelT(t, 1, 3)
	c, err := NewClient(sn.URL())
	noErr(t, err)
	defer c.Close()
	equal(t, "client mode", c.Mode(), rueidis.ClientModeSentinel)
	for _, mode := range []Mode{HashMode, StringMode} {
		t.Run(mode.String(), func(t *testing.T) {
			noErr(t, sn.WaitHealthy(30*time.Second))
			s, err := New(Config{Client: c, KeyPairs: testKeys, Mode: mode, KeyPrefix: randomPrefix(), Timeout: 500 * time.Millisecond})
			noErr(t, err)
			l := startLoad(t, s, 16)
			time.Sleep(500 * time.Millisecond)

			old, err := sn.KillPrimary()
			noErr(t, err)
			killed := time.Now()
			before := l.ok.Load()
			// The bound: sentinels notice after down-after-milliseconds (1s),
			// agree, promote; rueidis follows them. 20s is generous.
			const bound = 20 * time.Second
			for l.ok.Load() == before {
				if time.Since(killed) > bound {
					l.finish()
					t.Fatalf("no Save succeeded within %v of killing the primary", bound)
				}
				time.Sleep(20 * time.Millisecond)
			}
			recovered := time.Since(killed)
			time.Sleep(500 * time.Millisecond)
			failed := l.finish()
			// Replication is asynchronous: saves acknowledged by the old
			// primary but not yet copied to the replica are lost.
			t.Logf("saves work again %v after the primary was killed; %d requests failed meanwhile; %d of %d sessions lost their last acknowledged save",
				recovered.Round(time.Millisecond), failed, lost(t, s, l.writers), len(l.writers))
			noErr(t, sn.Rejoin(old, 30*time.Second))
		})
	}
}
