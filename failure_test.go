package redistore

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/redisession/redistore/internal/redistest"
)

// proxied returns a client that reaches tg through a proxy the test controls.
func proxied(t *testing.T, tg *target) (*redistest.Proxy, rueidis.Client) {
	t.Helper()
	p, err := redistest.NewProxy(tg.addr)
	noErr(t, err)
	t.Cleanup(p.Close)
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       []string{p.Addr},
		DisableCache:      true,
		ForceSingleClient: true,
	})
	noErr(t, err)
	t.Cleanup(c.Close)
	return p, c
}

// request runs Get, changes the session, and Save, the way a handler would,
// and reports both errors and how long it all took.
func request(s *Store, b *browser) (getErr, saveErr error, took time.Duration) {
	start := time.Now()
	r := b.request()
	sess, getErr := s.Get(r, "sid")
	if sess == nil {
		panic("nil session")
	}
	sess.Values["n"] = time.Now().UnixNano()
	saveErr = s.Save(r, httptest.NewRecorder(), sess)
	return getErr, saveErr, time.Since(start)
}

func TestRedisFailures(t *testing.T) {
	const timeout = 300 * time.Millisecond
	// Generous: the bound checked is "returns within the timeout, not
	// never"; scheduling on a loaded machine adds its own delay.
	const slack = 2 * time.Second

	faults := []struct {
		name  string
		apply func(p *redistest.Proxy)
	}{
		{"a stalled server", (*redistest.Proxy).Stall},
		{"a dead server", (*redistest.Proxy).Cut},
	}
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		if tg.cluster != nil {
			t.Skip("the proxy fronts one node; cluster faults are TestClusterFailover's")
		}
		for _, f := range faults {
			t.Run(f.name+" fails Get and Save within the timeout", func(t *testing.T) {
				p, c := proxied(t, tg)
				s := newStore(t, tg, Config{Mode: mode, Client: c, Timeout: timeout})
				// The session is set up through a store that waits as the
				// suite does: on a loaded machine a healthy call can take
				// longer than the short timeout under test.
				b := newBrowser()
				setup := newStore(t, tg, Config{Mode: mode, Client: c})
				sess, r := b.get(t, setup, "sid")
				sess.Values["n"] = 1
				b.save(t, setup, r, sess)

				f.apply(p)
				getErr, saveErr, took := request(s, b)
				for _, err := range []error{getErr, saveErr} {
					if !errors.Is(err, ErrUnavailable) || !strings.HasPrefix(err.Error(), "redistore: ") {
						t.Fatalf("error %v, want ErrUnavailable", err)
					}
				}
				if took > 2*timeout+slack {
					t.Fatalf("Get and Save took %v with a %v timeout", took, timeout)
				}

				p.Heal()
				deadline := time.Now().Add(10 * time.Second)
				for {
					getErr, saveErr, _ = request(s, b)
					if getErr == nil && saveErr == nil {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("still failing 10s after the fault healed: %v / %v", getErr, saveErr)
					}
					time.Sleep(50 * time.Millisecond)
				}
			})
		}
	})

	t.Run("with the default timeout a failing request ends within a few seconds", func(t *testing.T) {
		tg := newMiniTarget(t)
		p, c := proxied(t, tg)
		s := newStore(t, tg, Config{Client: c, Timeout: DefaultTimeout}) // as New's default
		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		b.save(t, s, r, sess)
		p.Stall()
		getErr, saveErr, took := request(s, b)
		if getErr == nil || saveErr == nil {
			t.Fatalf("errors %v / %v, want both", getErr, saveErr)
		}
		if !errors.Is(getErr, context.DeadlineExceeded) {
			t.Fatalf("Get error %v does not wrap context.DeadlineExceeded", getErr)
		}
		if took > 2*DefaultTimeout+slack {
			t.Fatalf("took %v", took)
		}
	})

	t.Run("a slow real server (DEBUG SLEEP) fails the call within the timeout", func(t *testing.T) {
		forEachInstall(t, func(t *testing.T, in redistest.Install) {
			srv := in.StartT(t, "--enable-debug-command", "yes")
			c, err := NewClient("redis://" + srv.Addr)
			noErr(t, err)
			defer c.Close()
			s, err := New(Config{Client: c, KeyPairs: testKeys, Timeout: timeout})
			noErr(t, err)
			b := newBrowser()
			sess, r := b.get(t, s, "sid")
			b.save(t, s, r, sess)

			slept := make(chan error, 1)
			go func() { _, err := redistest.DoWithin(srv.Addr, 10*time.Second, "DEBUG", "SLEEP", "6"); slept <- err }()
			// DEBUG SLEEP must reach the server first: wait until a PING goes
			// unanswered for half a second (a busy machine can delay a
			// PING's reply by a few tens of milliseconds), which leaves the
			// request more than 2*timeout+slack of the sleep.
			waitFor(t, 2*time.Second, "DEBUG SLEEP to block the server", func() bool {
				_, err := redistest.DoWithin(srv.Addr, 500*time.Millisecond, "PING")
				return err != nil
			})
			getErr, saveErr, took := request(s, b)
			if !errors.Is(getErr, ErrUnavailable) || !errors.Is(saveErr, ErrUnavailable) {
				t.Fatalf("errors %v / %v, want ErrUnavailable", getErr, saveErr)
			}
			if took > 2*timeout+slack {
				t.Fatalf("took %v", took)
			}
			noErr(t, <-slept)
			getErr, saveErr, _ = request(s, b)
			noErr(t, getErr)
			noErr(t, saveErr)
		})
	})

	t.Run("a context canceled by the client ends the call", func(t *testing.T) {
		tg := newMiniTarget(t)
		p, c := proxied(t, tg)
		s := newStore(t, tg, Config{Client: c, Timeout: time.Minute})
		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		b.save(t, s, r, sess)
		p.Stall()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		r = b.request().WithContext(ctx)
		start := time.Now()
		_, err := s.Get(r, "sid")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > timeout+slack {
			t.Fatalf("error %v after %v", err, time.Since(start))
		}
	})
}

func TestWrongTypeInRedis(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode})
		id := newID()
		loc, err := s.locate(id)
		noErr(t, err)
		// Another kind of key where the session would live.
		tg.do(t, "RPUSH", loc.key, "x")
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(&http.Cookie{Name: "sid", Value: cookieFor(t, s, "sid", id)})
		sess, err := s.Get(r, "sid")
		if !errors.Is(err, ErrCorrupt) || !sess.IsNew {
			t.Fatalf("Get: %v, IsNew=%v; want ErrCorrupt and a new session", err, sess.IsNew)
		}
		// The new session goes elsewhere; the list is untouched.
		sess.Values["k"] = "v"
		noErr(t, s.Save(r, httptest.NewRecorder(), sess))
		equal(t, "list length", tg.do(t, "LLEN", loc.key).IntMust(t), 1)
	})
}

// TestServerRestartUnderLoad stops a real redis-server while clients are
// busy and starts it again: requests fail fast with ErrUnavailable while it
// is down, nothing hangs or panics, and the clients recover by themselves.
func TestServerRestartUnderLoad(t *testing.T) {
	const timeout = 300 * time.Millisecond
	forEachInstall(t, func(t *testing.T, in redistest.Install) {
		srv := in.StartT(t)
		c, err := NewClient("redis://" + srv.Addr)
		noErr(t, err)
		defer c.Close()
		for _, mode := range []Mode{HashMode, StringMode} {
			t.Run(mode.String(), func(t *testing.T) {
				s, err := New(Config{Client: c, KeyPairs: testKeys, Mode: mode, Timeout: timeout, KeyPrefix: randomPrefix()})
				noErr(t, err)
				var (
					mu      sync.Mutex
					slowest time.Duration
					failed  int
					ok      int
				)
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				for i := 0; i < 8; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						b := newBrowser()
						for ctx.Err() == nil {
							getErr, saveErr, took := request(s, b)
							mu.Lock()
							slowest = max(slowest, took)
							if getErr != nil || saveErr != nil {
								failed++
								for _, err := range []error{getErr, saveErr} {
									if err != nil && !errors.Is(err, ErrUnavailable) {
										t.Errorf("error %v is not ErrUnavailable", err)
									}
								}
							} else {
								ok++
							}
							mu.Unlock()
						}
					}()
				}
				time.Sleep(300 * time.Millisecond)
				srv.Stop()
				time.Sleep(time.Second)
				mu.Lock()
				downFailures := failed
				mu.Unlock()
				noErr(t, srv.Restart())
				// Wait until requests succeed again.
				deadline := time.Now().Add(10 * time.Second)
				for {
					mu.Lock()
					before := ok
					mu.Unlock()
					time.Sleep(200 * time.Millisecond)
					mu.Lock()
					after := ok
					mu.Unlock()
					if after > before {
						break
					}
					if time.Now().After(deadline) {
						cancel()
						wg.Wait()
						t.Fatal("no request succeeded within 10s of the restart")
					}
				}
				cancel()
				wg.Wait()
				if downFailures == 0 {
					t.Fatal("no request failed while the server was down")
				}
				// Each request is a Get and a Save, each bounded by the timeout.
				if slowest > 2*timeout+2*time.Second {
					t.Fatalf("a request took %v with a %v timeout", slowest, timeout)
				}
				t.Logf("%d requests ok, %d failed; slowest %v", ok, failed, slowest)
			})
		}
	})
}

// TestCountersUnderLoad has many clients increment their own session's
// counter many times at once; every counter must end exact.
func TestCountersUnderLoad(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode})
		const clients, increments = 32, 50
		browsers := make([]*browser, clients)
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for i := range browsers {
			browsers[i] = newBrowser()
			wg.Add(1)
			go func(b *browser) {
				defer wg.Done()
				for n := 0; n < increments; n++ {
					r := b.request()
					sess, err := s.Get(r, "sid")
					if err != nil {
						errs <- err
						return
					}
					count, _ := sess.Values["count"].(int)
					sess.Values["count"] = count + 1
					w := httptest.NewRecorder()
					if err := s.Save(r, w, sess); err != nil {
						errs <- err
						return
					}
					b.keep(t, w)
				}
			}(browsers[i])
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for _, b := range browsers {
			sess, _ := b.get(t, s, "sid")
			equal(t, "count", sess.Values["count"], any(increments))
		}
	})
}
