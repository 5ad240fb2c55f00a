package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redisession/redistore"
)

// listAll is sessions --all: every session of the store, through
// Store.Sessions. The text streams a line a session; --json collects them
// and prints one document, whole or not at all.
func listAll(ctx context.Context, e *env, args []string, u *userFlags, progress string, asJSON bool) error {
	if len(args) > 0 {
		return usageErrorf("takes no arguments, only flags; got %q", args)
	}
	if u.user != "" {
		return usageErrorf("--all and --user: give one (--all lists every user's sessions)")
	}
	show, err := showProgress(progress, asJSON, isTerminal(e.stderr))
	if err != nil {
		return err
	}
	store, client, err := e.open(false, func(cfg *redistore.Config) { cfg.UserKey = u.userKey })
	if err != nil {
		return err
	}
	defer client.Close()
	var bar *walkBar
	if show {
		bar = &walkBar{w: e.stderr, start: time.Now()}
		bar.count(ctx, store)
	}
	doc := allSessionsJSON{Sessions: []allSessionJSON{}}
	now := time.Now()
	var rows *allRows
	if !asJSON {
		rows = &allRows{w: e.stdout, now: now}
	}
	var undecoded int
	var first error
	for info, err := range store.Sessions(ctx) {
		if err != nil && !info.Found {
			bar.clear()
			return err // Redis failed: the walk ended
		}
		if err != nil {
			if undecoded++; first == nil {
				first = err
			}
		}
		doc.Sessions = appendIf(asJSON, doc.Sessions, allSessionDocument(info, err))
		if rows != nil {
			bar.clear()
			rows.print(info, err)
		}
		bar.step()
	}
	bar.clear()
	if asJSON {
		if err := e.printJSON(doc); err != nil {
			return err
		}
	} else {
		rows.total()
	}
	if first != nil {
		return fmt.Errorf("%d session(s) could not be decoded; the first: %w", undecoded, first)
	}
	if len(doc.Sessions) == 0 && (rows == nil || rows.n == 0) {
		// Nothing found: a wrong --mode or --prefix?
		return e.tell(e.mismatch(ctx, client, store))
	}
	return nil
}

func appendIf[T any](ok bool, list []T, v T) []T {
	if !ok {
		return list
	}
	return append(list, v)
}

// allSessionsJSON is what sessions --all --json prints: every session.
// Its field names are part of the command's interface: add fields, never
// rename.
type allSessionsJSON struct {
	Sessions []allSessionJSON `json:"sessions"`
}

// allSessionJSON is one redistore.SessionInfo. User is "" for a session
// that names no user (or without the store's --user-key); Started is null
// where the store did not record it; Error is set, and the rest partial,
// for a session whose value does not decode.
type allSessionJSON struct {
	Handle      string  `json:"handle"`
	User        string  `json:"user"`
	Started     *string `json:"started"`
	Expires     *string `json:"expires"`
	StoredBytes int     `json:"stored_bytes"`
	Compressor  string  `json:"compressor"`
	Error       string  `json:"error,omitempty"`
}

func allSessionDocument(info redistore.SessionInfo, err error) allSessionJSON {
	d := allSessionJSON{Handle: info.Handle, User: info.User, Started: jsonTime(info.Started), Expires: jsonTime(info.Expires),
		StoredBytes: info.StoredBytes, Compressor: info.Compressor}
	if err != nil {
		d.Error = err.Error()
	}
	return d
}

// allRows prints the sessions as they come, in fixed columns (a table
// would wait for the last).
type allRows struct {
	w      io.Writer
	now    time.Time
	n      int
	header bool
}

const allRowFormat = "%-16s  %-23s  %-36s  %8s  %-10s  %s\n"

func (r *allRows) print(info redistore.SessionInfo, err error) {
	if !r.header {
		r.header = true
		fmt.Fprintf(r.w, allRowFormat, "HANDLE", "STARTED", "EXPIRES", "SIZE", "COMPRESSOR", "USER")
	}
	r.n++
	started, expires := "unknown", "unknown"
	if !info.Started.IsZero() {
		started = info.Started.UTC().Format(time.DateTime + " MST")
	}
	if !info.Expires.IsZero() {
		expires = fmt.Sprintf("%s (in %s)", info.Expires.UTC().Format(time.DateTime+" MST"), human(info.Expires.Sub(r.now)))
	}
	// A user ID is often the user's own choice: escaped, so that it cannot
	// drive the operator's terminal.
	user := printable(info.User)
	if err != nil {
		user = "(does not decode: " + printable(err.Error()) + ")"
	}
	fmt.Fprintf(r.w, allRowFormat, info.Handle, started, expires, fmt.Sprintf("%d B", info.StoredBytes), info.Compressor, user)
}

func (r *allRows) total() {
	if r.n == 0 {
		fmt.Fprintln(r.w, "no live sessions")
		return
	}
	fmt.Fprintf(r.w, "%d live session(s)\n", r.n)
}

// walkBar draws the progress of sessions --all on stderr: a bar against
// the number of sessions stored, counted first (expired ones not removed
// yet included, so the bar may end short of full), or a counter when that
// count failed.
type walkBar struct {
	w     io.Writer
	start time.Time
	n     int
	total int // 0: unknown
	bar   progressBar
}

// count gives the bar its total with Stats (a SCAN of the prefix and a
// pipelined HLEN or TYPE a key), drawing while it counts. If it fails, the
// bar stays a counter: the walk will report the error.
func (b *walkBar) count(ctx context.Context, store *redistore.Store) {
	b.bar.w = b.w
	b.bar.draw(true, "counting the sessions...")
	if st, err := store.Stats(ctx, 1); err == nil {
		b.total = st.Sessions
	}
}

// step counts a session and redraws, at most every redrawEvery but for
// the first and the last. It is a no-op on a nil bar.
func (b *walkBar) step() {
	if b == nil {
		return
	}
	b.n++
	b.bar.w = b.w
	b.bar.draw(b.n == 1 || b.n == b.total, b.line()) // the first and the last always
}

func (b *walkBar) line() string {
	elapsed := time.Since(b.start).Round(time.Second)
	if b.total <= 0 {
		return fmt.Sprintf("listing sessions: %d in %v", b.n, elapsed)
	}
	total := max(b.total, b.n) // sessions written since the count
	const width = 30
	fill := width * b.n / total
	return fmt.Sprintf("listing sessions [%s%s] %d/%d %3.0f%%",
		strings.Repeat("#", fill), strings.Repeat("-", width-fill), b.n, total, 100*float64(b.n)/float64(total))
}

// clear erases the bar (before a line of output). It is a no-op on a nil
// bar.
func (b *walkBar) clear() {
	if b == nil {
		return
	}
	b.bar.clear()
	b.bar.drawn = false
}
