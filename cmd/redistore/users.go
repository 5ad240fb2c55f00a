package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redisession/redistore"
)

var sessionsCommand = &command{
	name:    "sessions",
	args:    " --user USER | --all",
	summary: "list a user's live sessions (Config.UserKey's index): handle, start, last seen, expiry, device; or with --all every session: handle, user, start, expiry, size",
	setup:   setupSessions,
}

var revokeCommand = &command{
	name:    "revoke",
	args:    " --user USER [--handle HANDLE]",
	summary: "end a user's sessions: all of them, or the one --handle names",
	setup:   setupRevoke,
}

// userFlags are the flags of the user commands.
type userFlags struct{ user, userKey string }

func addUserFlags(fs *flag.FlagSet) *userFlags {
	u := &userFlags{}
	fs.StringVar(&u.user, "user", "", "the user's `ID`, as the application stores it in Values[Config.UserKey]")
	fs.StringVar(&u.userKey, "user-key", "user", "the store's Config.UserKey")
	return u
}

// open checks the user flags and opens the store with its UserKey.
func (u *userFlags) open(e *env, args []string) (*redistore.Store, func(), error) {
	if len(args) > 0 {
		return nil, nil, usageErrorf("takes no arguments, only flags; got %q", args)
	}
	if u.user == "" {
		return nil, nil, usageErrorf("--user is required: the user's ID, as the application stores it")
	}
	if u.userKey == "" {
		return nil, nil, usageErrorf("--user-key is empty: give the store's Config.UserKey")
	}
	store, client, err := e.open(false, func(cfg *redistore.Config) { cfg.UserKey = u.userKey })
	if err != nil {
		return nil, nil, err
	}
	return store, client.Close, nil
}

func setupSessions(fs *flag.FlagSet, _ *options) func(context.Context, *env, []string) error {
	u := addUserFlags(fs)
	all := fs.Bool("all", false, "list every session of the store (a walk over every key under the prefix), not one user's")
	progress := fs.String("progress", "auto", "with --all, progress on stderr: auto (when stderr is a terminal, without --json), always or never")
	asJSON := jsonFlag(fs)
	return func(ctx context.Context, e *env, args []string) error {
		if *all {
			return listAll(ctx, e, args, u, *progress, *asJSON)
		}
		if u.user == "" && len(args) == 0 {
			return usageErrorf("--user is required: the user's ID, as the application stores it; or --all, for every session")
		}
		store, done, err := u.open(e, args)
		if err != nil {
			return err
		}
		defer done()
		list, err := store.UserSessions(ctx, u.user)
		if err != nil {
			return err
		}
		if *asJSON {
			return e.printJSON(sessionsDocument(u.user, list))
		}
		printUserSessions(e, list, time.Now())
		return nil
	}
}

// sessionsJSON is what sessions --json prints: the user's live sessions.
// Its field names are part of the command's interface: add fields, never
// rename.
type sessionsJSON struct {
	User     string            `json:"user"`
	Sessions []userSessionJSON `json:"sessions"`
}

// userSessionJSON is one redistore.UserSession. Times are RFC 3339, UTC;
// Started is null for a session written before Config.UserKey or
// Config.MaxLifetime was set, LastSeen for one last written before this
// release recorded it (the text's "unknown"); UserAgent and IP are "" where
// the session recorded none.
type userSessionJSON struct {
	Handle    string  `json:"handle"`
	Started   *string `json:"started"`
	Expires   *string `json:"expires"`
	LastSeen  *string `json:"last_seen"`
	UserAgent string  `json:"user_agent"`
	IP        string  `json:"ip"`
}

func sessionsDocument(user string, list []redistore.UserSession) sessionsJSON {
	doc := sessionsJSON{User: user, Sessions: make([]userSessionJSON, 0, len(list))}
	for _, us := range list {
		doc.Sessions = append(doc.Sessions, userSessionJSON{Handle: us.Handle, Started: jsonTime(us.Started), Expires: jsonTime(us.Expires),
			LastSeen: jsonTime(us.LastSeen), UserAgent: us.UserAgent, IP: us.IP})
	}
	return doc
}

func printUserSessions(e *env, list []redistore.UserSession, now time.Time) {
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "no live sessions")
		return
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HANDLE\tSTARTED\tLAST SEEN\tEXPIRES\tIP\tUSER AGENT")
	for _, us := range list {
		started, seen := "unknown", "unknown"
		if !us.Started.IsZero() {
			started = us.Started.UTC().Format(time.DateTime + " MST")
		}
		if !us.LastSeen.IsZero() {
			seen = human(now.Sub(us.LastSeen)) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s (in %s)\t%s\t%s\n", us.Handle, started, seen, us.Expires.UTC().Format(time.DateTime+" MST"),
			human(us.Expires.Sub(now)), printable(us.IP), printable(us.UserAgent))
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "%d live session(s)\n", len(list))
}

func setupRevoke(fs *flag.FlagSet, _ *options) func(context.Context, *env, []string) error {
	u := addUserFlags(fs)
	handle := fs.String("handle", "", "end only the session with this `handle` (from redistore sessions); default: all of the user's sessions")
	asJSON := jsonFlag(fs)
	return func(ctx context.Context, e *env, args []string) error {
		store, done, err := u.open(e, args)
		if err != nil {
			return err
		}
		defer done()
		report := func(n int) error {
			if *asJSON {
				return e.printJSON(revokeJSON{User: u.user, Handle: *handle, Ended: n})
			}
			if *handle != "" {
				fmt.Fprintf(e.stdout, "ended session %s\n", *handle)
			} else {
				fmt.Fprintf(e.stdout, "ended %d session(s)\n", n)
			}
			return nil
		}
		if *handle == "" {
			// Those ended before a failure are reported, then the failure.
			n, err := store.DeleteUserSessions(ctx, u.user)
			if perr := report(n); err == nil {
				err = perr
			}
			return err
		}
		list, err := store.UserSessions(ctx, u.user)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(list, func(us redistore.UserSession) bool { return us.Handle == *handle }) {
			return fmt.Errorf("the user has no live session with handle %q (see redistore sessions --user)", *handle)
		}
		if err := store.DeleteUserSession(ctx, u.user, *handle); err != nil {
			return err
		}
		return report(1)
	}
}

// revokeJSON is what revoke --json prints: what was ended. Its field names
// are part of the command's interface: add fields, never rename.
type revokeJSON struct {
	User string `json:"user"`
	// Handle is the session --handle named; "" when revoke ended all the
	// user's sessions.
	Handle string `json:"handle"`
	// Ended is how many sessions were ended: 1 with --handle; with none,
	// those ended before a failure too (the command then exits 1).
	Ended int `json:"ended"`
}

// printable returns what a client sent (a User-Agent, an address) safe to
// print on a terminal: quoted, with escapes, if it holds anything but
// printable characters; "-" if it is empty.
func printable(s string) string {
	if s == "" {
		return "-"
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || r == utf8.RuneError {
			return strconv.QuoteToGraphic(s)
		}
	}
	return s
}
