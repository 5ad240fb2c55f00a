package redistore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// A deterministic scheduler for concurrent requests. Each request runs in a
// goroutine of its own (a "tab"), but only one runs at a time: every Redis
// call a request makes is a point where the scheduler, driven by a seeded
// random source, hands the turn to any waiting request. So a seed replays
// the same interleaving, down to the round trip, and interleavings that
// real traffic meets rarely (a write landing between another request's
// conflict and its retry) come up in a few hundred schedules.

// scheduler runs tabs one step at a time.
type scheduler struct {
	rng    *rand.Rand
	events chan schedEvent
	// step counts the turns handed out: the logical clock of a history.
	step atomic.Int64
}

type schedEvent struct {
	tb   *schedTab
	done bool
}

// schedTab is one request run by a scheduler.
type schedTab struct {
	s      *scheduler
	n      int // its place among the tabs of a run, for a deterministic choice
	resume chan struct{}
}

type tabKey struct{}

func newScheduler(seed uint64) *scheduler {
	return &scheduler{rng: rand.New(rand.NewPCG(seed, 0x5ced)), events: make(chan schedEvent)}
}

// now is the logical clock.
func (s *scheduler) now() int64 { return s.step.Load() }

// tick advances the logical clock outside a run (for the steps a test
// takes between runs).
func (s *scheduler) tick() int64 { return s.step.Add(1) }

// yield parks the tab until the scheduler gives it the turn again.
func (tb *schedTab) yield() {
	tb.s.events <- schedEvent{tb: tb}
	<-tb.resume
}

// pause is where a Redis call made with ctx waits for its turn; outside a
// run it returns at once.
func pause(ctx context.Context) {
	if tb, ok := ctx.Value(tabKey{}).(*schedTab); ok {
		tb.yield()
	}
}

// run runs fns, each as a tab given a context that marks its Redis calls
// as scheduling points, until all have returned. A panic in a tab is
// returned as an error, with the tab's number.
func (s *scheduler) run(fns []func(ctx context.Context)) error {
	var failed atomic.Pointer[error]
	for i, fn := range fns {
		tb := &schedTab{s: s, n: i, resume: make(chan struct{})}
		go func() {
			defer func() {
				if p := recover(); p != nil {
					err := fmt.Errorf("tab %d panicked: %v", tb.n, p)
					failed.CompareAndSwap(nil, &err)
				}
				s.events <- schedEvent{tb: tb, done: true}
			}()
			ctx := context.WithValue(context.Background(), tabKey{}, tb)
			tb.yield()
			fn(ctx)
		}()
	}
	var parked []*schedTab
	live := len(fns)
	for live > 0 {
		select {
		case ev := <-s.events:
			if ev.done {
				live--
			} else {
				parked = append(parked, ev.tb)
			}
		case <-time.After(time.Minute):
			return fmt.Errorf("scheduler: no tab moved for a minute (%d parked of %d live)", len(parked), live)
		}
		if len(parked) == live && live > 0 {
			slices.SortFunc(parked, func(a, b *schedTab) int { return a.n - b.n })
			i := s.rng.IntN(len(parked))
			tb := parked[i]
			parked = slices.Delete(parked, i, i+1)
			s.step.Add(1)
			tb.resume <- struct{}{}
		}
	}
	if err := failed.Load(); err != nil {
		return *err
	}
	return nil
}

// schedClient makes every call through it a scheduling point.
type schedClient struct{ rueidis.Client }

func (c schedClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	// An EVAL follows an EVALSHA the server answered NOSCRIPT (the first
	// call of a script on a server): not a point of its own, so that a
	// seed replays the same schedule whatever scripts the server has.
	if !strings.EqualFold(cmd.Commands()[0], "EVAL") {
		pause(ctx)
	}
	return c.Client.Do(ctx, cmd)
}

func (c schedClient) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	pause(ctx)
	return c.Client.DoMulti(ctx, cmds...)
}
