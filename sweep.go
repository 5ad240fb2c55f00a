package redistore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/redisession/redistore/internal/topology"
)

// SweepStats reports what a Sweep did.
type SweepStats struct {
	// Buckets is the number of buckets visited.
	Buckets int
	// Sessions is the number of live sessions found in them.
	Sessions int
	// Removed is the number of expired sessions deleted.
	Removed int
	// Skipped counts keys that were offered to Sweep but left alone: keys
	// under KeyPrefix that are not hashes, and keys outside KeyPrefix that a
	// custom BucketSource returned. User index keys (Config.UserKey) are
	// not offered: they expire by themselves.
	Skipped int
	// Errors is the number of buckets that could not be swept; the error
	// Sweep returns describes the first.
	Errors int
	// NothingToDo is set in StringMode, where Redis expires every session
	// by itself.
	NothingToDo bool
	// Duration is how long the Sweep took.
	Duration time.Duration
}

// String summarizes the stats on one line.
func (st SweepStats) String() string {
	if st.NothingToDo {
		return "nothing to sweep: in StringMode Redis expires sessions itself"
	}
	return fmt.Sprintf("%s, %s, %d expired removed, %s skipped, %s in %v",
		plural(st.Buckets, "bucket"), plural(st.Sessions, "live session"), st.Removed, plural(st.Skipped, "key"), plural(st.Errors, "error"), st.Duration.Round(time.Millisecond))
}

// BucketSource chooses the buckets a Sweep visits, like django-redisession's
// HASH_KEYS_CHECK_FOR_EXPIRY: it calls yield with batches of keys, and stops
// and returns yield's error when yield returns one (the Sweep was canceled).
// Keys outside the store's prefix are skipped, never touched.
type BucketSource func(ctx context.Context, client rueidis.Client, prefix string, yield func(keys []string) error) error

// ScanBuckets returns the default BucketSource: every key under the prefix,
// found with SCAN MATCH on every primary (in Redis Cluster, each primary
// once; replicas are left out).
func ScanBuckets() BucketSource { return scanKeys(scanCount) }

// scanCount is the COUNT of the store's SCANs.
const scanCount = 1000

// scanKeys is ScanBuckets with a SCAN COUNT of count.
func scanKeys(count int64) BucketSource {
	return func(ctx context.Context, client rueidis.Client, prefix string, yield func([]string) error) error {
		nodes, err := topology.Primaries(ctx, client)
		if err != nil {
			return err
		}
		pattern := escapeGlob(prefix) + "*"
		for _, node := range nodes {
			var cursor uint64
			for {
				entry, err := node.Do(ctx, node.B().Scan().Cursor(cursor).Match(pattern).Count(count).Build()).AsScanEntry()
				if err != nil {
					return fmt.Errorf("SCAN: %w", err)
				}
				if len(entry.Elements) > 0 {
					if err := yield(entry.Elements); err != nil {
						return err
					}
				}
				if entry.Cursor == 0 {
					break
				}
				cursor = entry.Cursor
			}
		}
		return nil
	}
}

// bucketsKey carries the store's buckets to the BucketSource of a Sweep.
type bucketsKey struct{}

// SampleBuckets returns a BucketSource that visits n of the buckets of the
// default HashKeyGenerator (Config.Buckets of them), chosen at random without
// repeats: a cheap partial pass for stores too large to sweep whole at once.
// With another HashKeyGenerator, supply a BucketSource of your own.
func SampleBuckets(n int) BucketSource {
	return func(ctx context.Context, client rueidis.Client, prefix string, yield func([]string) error) error {
		bs, ok := ctx.Value(bucketsKey{}).(buckets)
		if !ok {
			bs, _ = newBuckets(DefaultBuckets)
		}
		n := min(max(n, 0), bs.n)
		keys := make([]string, 0, min(n, 512))
		// A partial Fisher-Yates shuffle: n picks without a slice of them all.
		swapped := map[int]int{}
		pick := func(i int) int {
			if v, ok := swapped[i]; ok {
				return v
			}
			return i
		}
		for i := 0; i < n; i++ {
			j := i + rand.IntN(bs.n-i)
			b := pick(j)
			swapped[j] = pick(i)
			keys = append(keys, prefix+string(bs.key(b)))
			if len(keys) == cap(keys) {
				if err := yield(keys); err != nil {
					return err
				}
				keys = keys[:0]
			}
		}
		if len(keys) > 0 {
			return yield(keys)
		}
		return nil
	}
}

// escapeGlob quotes the characters SCAN MATCH treats specially.
func escapeGlob(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// sweepWorkers is how many buckets are swept at once; rueidis pipelines
// their scripts over its connections.
const sweepWorkers = 16

// Sweep removes expired sessions from the HashMode buckets chosen by
// Config.SweepBuckets (every bucket, by default). Each bucket is cleaned
// atomically on the server by the server's clock, so a session renewed
// concurrently is never removed. Only keys under KeyPrefix are touched; a key
// there that is not a hash is skipped and counted, and so, with the default
// key generators, is any key or field that is not shaped like theirs. When ctx ends, Sweep stops
// and returns what it did so far with ctx's error. A bucket that fails is
// counted and the sweep goes on; the first such error is returned.
//
// HashMode stores clean the bucket they write to, and idle buckets expire by
// themselves, so Sweep is an optional, periodic tidy-up; in StringMode it has
// nothing to do and returns at once with NothingToDo set.
func (s *Store) Sweep(ctx context.Context) (SweepStats, error) {
	start := time.Now()
	st, err := s.sweep(ctx, start)
	s.observe(ctx, OpSweep, start, opInfo{outcome: OutcomeDone}, err, func(e *Event) {
		e.Sessions, e.Removed, e.Buckets = st.Sessions, st.Removed, st.Buckets
	})
	return st, err
}

func (s *Store) sweep(ctx context.Context, start time.Time) (SweepStats, error) {
	if s.layout.expiresItself() {
		return SweepStats{NothingToDo: true}, nil
	}
	// The sweep's own context ends it early when buckets keep failing.
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	sw := &sweeper{s: s, ctx: sctx, stop: stop, work: make(chan string)}
	for i := 0; i < sweepWorkers; i++ {
		sw.wg.Add(1)
		go sw.worker()
	}
	srcErr := s.sweepSource(s.layout.sweepContext(sctx), s.bounded(), s.prefix, sw.offer)
	close(sw.work)
	sw.wg.Wait()
	sw.st.Duration = time.Since(start)
	switch {
	case sw.gaveUp:
		return sw.st, fmt.Errorf("redistore: sweep stopped after %d buckets failed in a row: %w", MaxSweepFailures, sw.lastErr)
	case ctx.Err() != nil:
		return sw.st, fmt.Errorf("redistore: sweep stopped early: %w", ctx.Err())
	case srcErr != nil:
		return sw.st, redisError("listing buckets to sweep", srcErr)
	}
	return sw.st, sw.firstErr
}

// sweeper is one Sweep: the keys its BucketSource offers go to workers.
type sweeper struct {
	s    *Store
	ctx  context.Context
	work chan string
	wg   sync.WaitGroup

	stop func() // ends ctx

	mu       sync.Mutex
	st       SweepStats
	firstErr error
	lastErr  error
	failing  int  // buckets that failed in a row
	gaveUp   bool // MaxSweepFailures in a row: the sweep stopped
}

// MaxSweepFailures is how many buckets in a row may fail before Sweep stops
// (a server that stopped answering fails every bucket after a timeout each).
const MaxSweepFailures = 5

// offer passes the keys the layout owns to the workers, and counts the
// others as skipped.
func (sw *sweeper) offer(keys []string) error {
	for _, k := range keys {
		if isIndexKey(k, sw.s.prefix) {
			continue
		}
		if !sw.s.layout.ownsKey(k) {
			sw.mu.Lock()
			sw.st.Skipped++
			sw.mu.Unlock()
			continue
		}
		select {
		case sw.work <- k:
		case <-sw.ctx.Done():
			return sw.ctx.Err()
		}
	}
	return nil
}

func (sw *sweeper) worker() {
	defer sw.wg.Done()
	for key := range sw.work {
		removed, live, skipped, err := sw.s.layout.sweepKey(sw.ctx, key)
		sw.mu.Lock()
		switch {
		case skipped:
			sw.st.Skipped++
		case err != nil:
			if sw.ctx.Err() == nil { // not merely canceled
				sw.st.Errors++
				if sw.firstErr == nil {
					sw.firstErr = err
				}
				sw.lastErr = err
				if sw.failing++; sw.failing >= MaxSweepFailures && !sw.gaveUp {
					sw.gaveUp = true
					sw.stop()
				}
			}
		default:
			sw.st.Buckets++
			sw.failing = 0
		}
		sw.st.Removed += removed
		sw.st.Sessions += live
		sw.mu.Unlock()
	}
}
