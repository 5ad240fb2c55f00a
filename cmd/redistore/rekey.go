package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/redisession/redistore"
)

var rekeyCommand = &command{
	name:    "rekey",
	summary: "re-seal every session with the first key of $" + envSealKeys + ", so that the others can leave the ring",
	setup:   setupRekey,
}

func setupRekey(fs *flag.FlagSet, _ *options) func(context.Context, *env, []string) error {
	progress := fs.String("progress", "auto", "progress on stderr: auto (when stdout and stderr are a terminal, without --json), always or never")
	unseal := fs.Bool("unseal", false, "write every sealed session in clear instead (Config.WriteUnsealed: the way back, before the keys go)")
	asJSON := jsonFlag(fs)
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) > 0 {
			return usageErrorf("rekey takes no arguments, got %q", args[0])
		}
		if strings.TrimSpace(e.getenv(envSealKeys)) == "" {
			return usageErrorf("%s is not set: it must hold the store's Config.EncryptionKeys, hex-encoded and comma-separated, the key to seal with first", envSealKeys)
		}
		show, err := showProgress(*progress, *asJSON, isTerminal(e.stdout) && isTerminal(e.stderr))
		if err != nil {
			return err
		}
		store, client, err := e.open(false, func(cfg *redistore.Config) { cfg.WriteUnsealed = *unseal })
		if err != nil {
			return err
		}
		defer client.Close()
		var bar *progressBar
		var report func(redistore.RekeyStats)
		if show {
			bar = &progressBar{w: e.stderr, start: time.Now()}
			bar.count(ctx, client, e.opts.prefix)
			report = func(st redistore.RekeyStats) {
				bar.done = st.Keys
				bar.draw(bar.total > 0 && st.Keys >= bar.total, rekeyLine(bar, st)) // the last one always
			}
		}
		st, err := store.Rekey(ctx, report)
		bar.clear()
		what := "the line above"
		if *asJSON {
			what = "the document printed"
			if perr := e.printJSON(rekeyDocument(st)); perr != nil {
				return perr
			}
		} else {
			fmt.Fprintln(e.stdout, st)
		}
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("interrupted: rekey stopped early; %s is what it did, and a run again goes on", what)
		}
		if err == nil && st.Keys == 0 {
			// Nothing of the store's: a wrong --mode or --prefix?
			return e.tell(e.mismatch(ctx, client, store))
		}
		if err == nil && st.Busy > 0 {
			return fmt.Errorf("%d session(s) changed on every attempt and were left as they were: run rekey again before a key leaves the ring", st.Busy)
		}
		if err == nil && st.Unreadable > 0 {
			return fmt.Errorf("%d value(s) open with no key in %s (sealed by a key that left it, or not sessions): they were left as they are", st.Unreadable, envSealKeys)
		}
		return err
	}
}

// rekeyLine is the bar's line: the keys visited of those counted, and what
// was re-sealed.
func rekeyLine(p *progressBar, st redistore.RekeyStats) string {
	elapsed := time.Since(p.start).Round(time.Second)
	if p.total <= 0 {
		return fmt.Sprintf("re-sealing: %d keys, %d sessions re-sealed in %v", st.Keys, st.Resealed, elapsed)
	}
	total := max(p.total, st.Keys)
	const width = 30
	frac := float64(st.Keys) / float64(total)
	fill := int(frac * width)
	return fmt.Sprintf("re-sealing [%s%s] %d/%d keys %3.0f%%, %d sessions re-sealed",
		strings.Repeat("#", fill), strings.Repeat("-", width-fill), st.Keys, total, 100*frac, st.Resealed)
}

// rekeyJSON is what rekey --json prints: redistore.RekeyStats. Its field
// names are part of the command's interface: add fields, never rename.
type rekeyJSON struct {
	Keys       int `json:"keys"`
	Sessions   int `json:"sessions"`
	Resealed   int `json:"resealed"`
	Current    int `json:"current"`
	Expired    int `json:"expired"`
	Unreadable int `json:"unreadable"`
	// Busy counts the sessions that changed on every attempt: run again.
	Busy int `json:"busy"`
	// Devices counts the devices in users' indexes re-sealed (or written
	// in clear with --unseal).
	Devices    int     `json:"devices"`
	DurationMS float64 `json:"duration_ms"`
}

func rekeyDocument(st redistore.RekeyStats) rekeyJSON {
	return rekeyJSON{Keys: st.Keys, Sessions: st.Sessions, Resealed: st.Resealed, Current: st.Current,
		Expired: st.Expired, Unreadable: st.Unreadable, Busy: st.Busy, Devices: st.Devices, DurationMS: float64(st.Duration.Microseconds()) / 1000}
}
