package redistore

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/redisession/redistore/internal/redistest"
)

func TestNewClient(t *testing.T) {
	t.Parallel()
	unix := filepath.Join(t.TempDir(), "redis.sock")
	srv := redistest.StartT(t, "--unixsocket", unix, "--requirepass", "s3cret")

	works := []struct{ name, url string }{
		{"redis://", "redis://:s3cret@" + srv.Addr},
		{"redis:// with a database", "redis://:s3cret@" + srv.Addr + "/3"},
		{"unix://", "unix://:s3cret@" + unix + "?db=2"},
		{"RESP2", "redis://:s3cret@" + srv.Addr + "?protocol=2"},
	}
	for _, tt := range works {
		t.Run(tt.name+" connects and serves sessions", func(t *testing.T) {
			c, err := NewClient(tt.url)
			noErr(t, err)
			defer c.Close()
			tg := &target{client: c, prefix: randomPrefix()}
			s := newStore(t, tg, Config{})
			b := newBrowser()
			sess, r := b.get(t, s, "sid")
			sess.Values["n"] = 1
			b.save(t, s, r, sess)
			got, _ := b.get(t, s, "sid")
			equal(t, "n", got.Values["n"], any(1))
		})
	}

	fails := []struct{ name, url string }{
		{"a wrong password", "redis://:wrong-s3cret@" + srv.Addr},
		{"an unparsable URL", "redis://:s3cret@" + srv.Addr + ":badport"},
		{"an unknown scheme", "http://:s3cret@" + srv.Addr},
		{"a closed port", "redis://:s3cret@127.0.0.1:1?dial_timeout=1s"},
	}
	for _, tt := range fails {
		t.Run(tt.name+" fails without showing the password", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				c, err := NewClient(tt.url)
				if err == nil {
					c.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("no error")
				}
				if !strings.HasPrefix(err.Error(), "redistore: ") || strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("error %q", err)
				}
			case <-ctx.Done():
				t.Fatal("NewClient hangs")
			}
		})
	}
}

func TestNewClientConnections(t *testing.T) {
	t.Parallel()
	for procs, want := range map[int]int{1: -1, 2: -1, 3: 0, 4: 0, 64: 0} {
		if got := pipelineMultiplex(procs); got != want {
			t.Errorf("pipelineMultiplex(%d) = %d, want %d", procs, got, want)
		}
	}
	srv := redistest.StartT(t)
	var opt rueidis.ClientOption
	c, err := NewClient("redis://"+srv.Addr+"?client_name=conns-under-test", func(o *rueidis.ClientOption) { opt = *o })
	noErr(t, err)
	defer c.Close()
	if want := pipelineMultiplex(runtime.GOMAXPROCS(0)); opt.PipelineMultiplex != want {
		t.Fatalf("PipelineMultiplex = %d, want %d", opt.PipelineMultiplex, want)
	}
	// Many requests at once, then count the client's connections.
	s := newStore(t, &target{client: c, prefix: randomPrefix()}, Config{})
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := newBrowser()
			for range 20 {
				sess, r := b.get(t, s, "sid")
				sess.Values["n"] = 1
				b.save(t, s, r, sess)
			}
		}()
	}
	wg.Wait()
	list, err := c.Do(context.Background(), c.B().ClientList().Build()).ToString()
	noErr(t, err)
	n := strings.Count(list, "name=conns-under-test ")
	switch {
	case n < 1:
		t.Fatalf("no connection named conns-under-test in CLIENT LIST:\n%s", list)
	case runtime.GOMAXPROCS(0) <= 2 && n != 1:
		t.Fatalf("%d connections on %d cores, want 1", n, runtime.GOMAXPROCS(0))
	}
}

// An empty URL (REDIS_URL unset) says so, and how to give one.
func TestNewClientWithAnEmptyURL(t *testing.T) {
	_, err := NewClient("")
	if err == nil || !strings.Contains(err.Error(), "empty") || !strings.Contains(err.Error(), "redis://") {
		t.Fatalf("NewClient(\"\"): %v", err)
	}
}
