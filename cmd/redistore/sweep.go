package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/redisession/redistore"
)

var sweepCommand = &command{
	name:    "sweep",
	summary: "remove expired sessions from the HashMode buckets: one pass, for cron",
	setup:   setupSweep,
}

func setupSweep(fs *flag.FlagSet, _ *options) func(context.Context, *env, []string) error {
	sample := fs.Int("sample", 0, "visit `N` buckets chosen at random instead of all of them (a partial pass for very large stores)")
	progress := fs.String("progress", "auto", "progress on stderr: auto (when stdout and stderr are a terminal, without --json), always or never")
	asJSON := jsonFlag(fs)
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) > 0 {
			return usageErrorf("sweep takes no arguments, got %q", args[0])
		}
		if *sample < 0 || *sample > 1<<16 {
			return usageErrorf("--sample %d: use 1 to 65536 buckets, or 0 for all of them", *sample)
		}
		show, err := showProgress(*progress, *asJSON, isTerminal(e.stdout) && isTerminal(e.stderr))
		if err != nil {
			return err
		}
		var bar *progressBar
		store, client, err := e.open(false, func(cfg *redistore.Config) {
			cfg.SweepBuckets = redistore.ScanBuckets()
			if *sample > 0 {
				cfg.SweepBuckets = redistore.SampleBuckets(*sample)
			}
			if show {
				// The bar counts the keys first, on a full sweep: only when
				// the layout has buckets to sweep does Sweep call the source.
				bar = &progressBar{w: e.stderr, start: time.Now(), total: *sample, countFirst: *sample == 0}
				cfg.SweepBuckets = bar.wrap(cfg.SweepBuckets)
			}
		})
		if err != nil {
			return err
		}
		defer client.Close()
		st, err := store.Sweep(ctx)
		bar.clear()
		what := "the line above"
		if *asJSON {
			what = "the document printed"
			if perr := e.printJSON(sweepDocument(st)); perr != nil {
				return perr
			}
		} else {
			fmt.Fprintln(e.stdout, st)
		}
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("interrupted: the sweep stopped early; %s is what it did", what)
		}
		if err == nil && !st.NothingToDo && st.Sessions == 0 && st.Removed == 0 {
			// Nothing found: a wrong --mode or --prefix? (With --sample,
			// buckets that do not exist count as visited.)
			return e.tell(e.mismatch(ctx, client, store))
		}
		return err
	}
}

// showProgress decides whether sweep draws its bar on stderr, from
// --progress: always, never, or auto. Auto draws it when stdout and stderr
// are both the terminal (terminals), since the summary goes to stdout and
// the bar's escapes must not end up in a log, and not with --json: a
// program reads that, and wants no bar.
func showProgress(progress string, asJSON, terminals bool) (bool, error) {
	switch progress {
	case "auto":
		return terminals && !asJSON, nil
	case "always":
		return true, nil
	case "never":
		return false, nil
	}
	return false, usageErrorf("--progress %q: use auto, always or never", progress)
}

// sweepJSON is what sweep --json prints: redistore.SweepStats. Its field
// names are part of the command's interface: add fields, never rename.
type sweepJSON struct {
	// Buckets is the number of buckets visited.
	Buckets int `json:"buckets"`
	// Live is the number of live sessions found in them.
	Live int `json:"live"`
	// Removed is the number of expired sessions deleted.
	Removed int `json:"removed"`
	// Skipped counts the keys left alone: keys under the prefix that are
	// not the store's buckets (user index keys are not counted).
	Skipped int `json:"skipped"`
	// Errors is the number of buckets that could not be swept (the
	// command's error names the first).
	Errors int `json:"errors"`
	// NothingToDo is true in StringMode, where Redis expires sessions itself.
	NothingToDo bool    `json:"nothing_to_do"`
	DurationMS  float64 `json:"duration_ms"`
}

func sweepDocument(st redistore.SweepStats) sweepJSON {
	return sweepJSON{
		Buckets:     st.Buckets,
		Live:        st.Sessions,
		Removed:     st.Removed,
		Skipped:     st.Skipped,
		Errors:      st.Errors,
		NothingToDo: st.NothingToDo,
		DurationMS:  float64(st.Duration.Microseconds()) / 1000,
	}
}

// progressBar draws one line on stderr while a sweep runs: a bar when the
// number of buckets is known, a counter when it is not.
type progressBar struct {
	w     io.Writer
	total int // buckets expected; 0 when unknown
	done  int // buckets handed to the sweep
	start time.Time
	last  time.Time // of the last redraw
	drawn bool
	// countFirst: count the keys under the prefix before the sweep starts
	// (a full sweep, whose total is not known yet).
	countFirst bool
}

// redrawEvery keeps the terminal from being flooded.
const redrawEvery = 100 * time.Millisecond

// count gives the bar its total with a quick pass of SCAN over the prefix.
// If it fails, the bar stays a counter: the sweep will report the error.
func (p *progressBar) count(ctx context.Context, client rueidis.Client, prefix string) {
	n := 0
	err := redistore.ScanBuckets()(ctx, client, prefix, func(keys []string) error {
		n += len(keys)
		p.draw(false, fmt.Sprintf("counting the keys under %q: %d", prefix, n))
		return nil
	})
	if err == nil {
		p.total = n
	}
}

// wrap returns a BucketSource that hands src's keys to the sweep one at a
// time, counting them, so that the bar moves smoothly through large
// batches.
func (p *progressBar) wrap(src redistore.BucketSource) redistore.BucketSource {
	return func(ctx context.Context, client rueidis.Client, prefix string, yield func([]string) error) error {
		if p.countFirst {
			p.count(ctx, client, prefix)
		}
		return src(ctx, client, prefix, func(keys []string) error {
			for i := range keys {
				if err := yield(keys[i : i+1]); err != nil {
					return err
				}
				p.done++
				p.draw(false, p.line())
			}
			return nil
		})
	}
}

func (p *progressBar) line() string {
	elapsed := time.Since(p.start)
	if p.total <= 0 {
		return fmt.Sprintf("sweeping: %d buckets in %v", p.done, elapsed.Round(time.Second))
	}
	total := max(p.total, p.done) // keys written since the count
	const width = 30
	frac := float64(p.done) / float64(total)
	fill := int(frac * width)
	line := fmt.Sprintf("sweeping [%s%s] %d/%d buckets %3.0f%%",
		strings.Repeat("#", fill), strings.Repeat("-", width-fill), p.done, total, 100*frac)
	if p.done > 0 && elapsed > time.Second {
		left := time.Duration(float64(elapsed) / float64(p.done) * float64(total-p.done)).Round(time.Second)
		if left > 0 {
			line += fmt.Sprintf(", about %v left", left)
		}
	}
	return line
}

// draw replaces the line, at most every redrawEvery unless forced.
func (p *progressBar) draw(force bool, line string) {
	now := time.Now()
	if !force && now.Sub(p.last) < redrawEvery {
		return
	}
	p.last = now
	p.drawn = true
	fmt.Fprintf(p.w, "\r\x1b[K%s", line)
}

// clear erases the bar before the summary is printed. It is a no-op on a
// nil bar.
func (p *progressBar) clear() {
	if p == nil || !p.drawn {
		return
	}
	fmt.Fprint(p.w, "\r\x1b[K")
}
