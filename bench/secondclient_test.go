package main

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/internal/redistest"
)

// TestSecondClientCost measures what the README's Quick start says an
// application that already holds a go-redis client pays for the store's
// own: the connections the rueidis client of NewClient opens, and the heap
// it holds after 1000 commands, at GOMAXPROCS 2 and 8. Run with -v to read
// the figures:
//
//	cd bench && go test -count=1 -v -run TestSecondClientCost .
func TestSecondClientCost(t *testing.T) {
	ins := redistest.NeedInstalls(t)
	srv := ins[0].StartT(t)
	url := "redis://" + srv.Addr
	ctx := context.Background()
	app := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer app.Close()
	for i := range 1000 {
		if err := app.Set(ctx, "app:"+strconv.Itoa(i%10), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	clients := func() int {
		info, err := app.Info(ctx, "clients").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "connected_clients:"); ok {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
		t.Fatal("INFO clients has no connected_clients")
		return 0
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{2, 8} {
		t.Run(fmt.Sprint("GOMAXPROCS=", procs), func(t *testing.T) {
			runtime.GOMAXPROCS(procs)
			conns0, heap0 := clients(), heap()
			c, err := redistore.NewClient(url)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 1000 {
				if err := c.Do(ctx, c.B().Set().Key("store:"+strconv.Itoa(i%10)).Value("v").Build()).Error(); err != nil {
					t.Fatal(err)
				}
			}
			conns, held := clients()-conns0, int64(heap())-int64(heap0)
			runtime.KeepAlive(c)
			c.Close()
			if conns < 1 {
				t.Fatalf("the second client opened %d connections", conns)
			}
			t.Logf("second client at GOMAXPROCS %d: %d connection(s), %.1f MiB of heap after 1000 commands", procs, conns, float64(held)/(1<<20))
		})
	}
}
