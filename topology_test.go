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

// runWriters runs writers until stop is closed.
func runWriters(t testing.TB, s *Store, writers []*writer, stop <-chan struct{}, succeeded *atomic.Int64) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, wr := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				before := wr.acked
				wr.step(t, s)
				if wr.acked != before {
					succeeded.Add(1)
				} else {
					time.Sleep(5 * time.Millisecond) // Redis is down: do not spin
				}
			}
		}()
	}
	return &wg
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
			writers := make([]*writer, 16)
			for i := range writers {
				writers[i] = &writer{b: newBrowser()}
				writers[i].step(t, s)
			}
			stop := make(chan struct{})
			var ok atomic.Int64
			wg := runWriters(t, s, writers, stop, &ok)
			time.Sleep(500 * time.Millisecond)
			replica := cl.Replicas()[0]
			start := time.Now()
			noErr(t, cl.Failover(replica))
			t.Logf("CLUSTER FAILOVER on %s took %v", replica.Addr, time.Since(start))
			before := ok.Load()
			time.Sleep(500 * time.Millisecond)
			close(stop)
			wg.Wait()
			if ok.Load() == before {
				t.Fatal("no Save succeeded after the failover")
			}
			failed := 0
			for _, wr := range writers {
				failed += wr.failed
			}
			t.Logf("%d saves acknowledged, %d requests failed", ok.Load(), failed)
			equal(t, "sessions that lost an acknowledged save", lost(t, s, writers), 0)
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
			writers := make([]*writer, 16)
			for i := range writers {
				writers[i] = &writer{b: newBrowser()}
				writers[i].step(t, s)
			}
			stop := make(chan struct{})
			var ok atomic.Int64
			wg := runWriters(t, s, writers, stop, &ok)
			time.Sleep(500 * time.Millisecond)

			old, err := sn.KillPrimary()
			noErr(t, err)
			killed := time.Now()
			before := ok.Load()
			// The bound: sentinels notice after down-after-milliseconds (1s),
			// agree, promote; rueidis follows them. 20s is generous.
			const bound = 20 * time.Second
			for ok.Load() == before {
				if time.Since(killed) > bound {
					close(stop)
					wg.Wait()
					t.Fatalf("no Save succeeded within %v of killing the primary", bound)
				}
				time.Sleep(20 * time.Millisecond)
			}
			recovered := time.Since(killed)
			time.Sleep(500 * time.Millisecond)
			close(stop)
			wg.Wait()
			failed := 0
			for _, wr := range writers {
				failed += wr.failed
			}
			// Replication is asynchronous: saves acknowledged by the old
			// primary but not yet copied to the replica are lost.
			t.Logf("saves work again %v after the primary was killed; %d requests failed meanwhile; %d of %d sessions lost their last acknowledged save",
				recovered.Round(time.Millisecond), failed, lost(t, s, writers), len(writers))
			noErr(t, sn.Rejoin(old, 30*time.Second))
		})
	}
}
