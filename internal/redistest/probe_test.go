package redistest

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// callTimeout bounds every rueidis call in these tests: rueidis retries
// read-only commands on network errors without end.
const callTimeout = 2 * time.Second

// writeKeys SETs n keys named prefix+i, which fall in many hash slots, and
// fails the test on any error.
func writeKeys(t *testing.T, c rueidis.Client, prefix string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		err := c.Do(ctx, c.B().Set().Key(prefix+strconv.Itoa(i)).Value(strconv.Itoa(i)).Build()).Error()
		cancel()
		if err != nil {
			t.Fatalf("SET %s%d: %v", prefix, i, err)
		}
	}
}

// checkKeys GETs the n keys writeKeys wrote and fails the test on any
// error or wrong value.
func checkKeys(t *testing.T, c rueidis.Client, prefix string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		v, err := c.Do(ctx, c.B().Get().Key(prefix+strconv.Itoa(i)).Build()).ToString()
		cancel()
		if err != nil || v != strconv.Itoa(i) {
			t.Fatalf("GET %s%d = %q, %v; want %d", prefix, i, v, err, i)
		}
	}
}

// waitWritable SETs key until it succeeds and returns how long that took,
// failing the test after bound.
func waitWritable(t *testing.T, c rueidis.Client, key string, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		err := c.Do(ctx, c.B().Set().Key(key).Value("1").Build()).Error()
		cancel()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > bound {
			t.Fatalf("SET %s still fails %v later: %v", key, bound, err)
		}
		time.Sleep(pollInterval)
	}
}

// outage is what a client saw while writing through a topology change.
type outage struct {
	ok, failed int
	longest    time.Duration // the longest run of failed writes, or of one slow write
	errs       map[string]int
	unhealed   bool // the writes still failed when the probe stopped
}

func (o outage) String() string {
	var errs []string
	for e, n := range o.errs {
		errs = append(errs, fmt.Sprintf("%dx %s", n, e))
	}
	sort.Strings(errs)
	still := ""
	if o.unhealed {
		still = " (still failing at the end)"
	}
	return fmt.Sprintf("%d writes ok, %d failed, longest outage %v%s; errors: [%s]",
		o.ok, o.failed, o.longest.Round(time.Millisecond), still, strings.Join(errs, "; "))
}

// probeWrites SETs key in a loop, each call bounded by callTimeout and 10 ms
// apart, until the returned function is called; that stops the loop at its
// next successful write (or after 10 s) and reports how the writes fared.
func probeWrites(c rueidis.Client, key string) (stop func() outage) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var o outage
	o.errs = map[string]int{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var failingSince, stopAt time.Time
		for {
			if stopAt.IsZero() {
				select {
				case <-done:
					stopAt = time.Now().Add(10 * time.Second)
				default:
				}
			}
			if !stopAt.IsZero() && (failingSince.IsZero() || time.Now().After(stopAt)) {
				if !failingSince.IsZero() {
					o.longest = max(o.longest, time.Since(failingSince))
					o.unhealed = true
				}
				return
			}
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			err := c.Do(ctx, c.B().Set().Key(key).Value("1").Build()).Error()
			cancel()
			if err == nil {
				o.ok++
				o.longest = max(o.longest, time.Since(start))
				if !failingSince.IsZero() {
					o.longest = max(o.longest, time.Since(failingSince))
					failingSince = time.Time{}
				}
			} else {
				o.failed++
				o.errs[errClass(err)]++
				if failingSince.IsZero() {
					failingSince = start
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return func() outage {
		close(done)
		wg.Wait()
		return o
	}
}

// errClass strips addresses from an error so that like errors count together.
func errClass(err error) string {
	f := strings.Fields(err.Error())
	for i, w := range f {
		if strings.Contains(w, "127.0.0.1:") {
			f[i] = "ADDR"
		} else if _, err := strconv.Atoi(w); err == nil {
			f[i] = "N"
		}
	}
	return strings.Join(f, " ")
}
