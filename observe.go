package redistore

import (
	"context"
	"errors"
	"time"
)

// Observer receives what each operation of a Store did, for metrics and
// traces (the redistoreotel module turns events into OpenTelemetry data).
// Observe is called once per operation, after it ended, on the caller's
// goroutine: it must be quick and safe for concurrent use. An Event never
// holds a session ID, a cookie or a session's values; it names a user only
// for the user methods, and only with Config.ObserveUserIDs.
type Observer interface {
	Observe(ctx context.Context, e Event)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(ctx context.Context, e Event)

// Observe calls f.
func (f ObserverFunc) Observe(ctx context.Context, e Event) { f(ctx, e) }

// Event is what one operation did.
type Event struct {
	Op      Op
	Mode    Mode
	Outcome Outcome
	// Error classifies the error the operation returned (ErrorNone when it
	// returned none).
	Error ErrorKind
	// Start is when the operation began, and Duration how long it took.
	Start    time.Time
	Duration time.Duration
	// SerializedBytes and StoredBytes are the session's size serialized
	// and as stored (after compression, with its expiry and envelope), and
	// Compressed whether it is compressed: for a Get that loaded a
	// session and a Save that wrote one.
	SerializedBytes, StoredBytes int
	Compressed                   bool
	// Merges is how many times a Save merged its changes into what other
	// requests had stored meanwhile before it wrote (or gave up).
	Merges int
	// Sessions counts the sessions the operation dealt with: live sessions
	// found by Sweep, listed by UserSessions or Sessions, ended by
	// DeleteUserSessions or DeleteSessions.
	Sessions int
	// Removed and Buckets are a Sweep's: expired sessions deleted, buckets
	// visited.
	Removed, Buckets int
	// User is the user of UserSessions and DeleteUserSession(s), with
	// Config.ObserveUserIDs only.
	User string
}

// Op names an operation of a Store.
type Op uint8

const (
	OpGet                Op = iota + 1 // Get or New loading the request's session
	OpSave                             // Save or RegenerateID
	OpDelete                           // Delete
	OpSweep                            // Sweep
	OpUserSessions                     // UserSessions
	OpDeleteUserSessions               // DeleteUserSession or DeleteUserSessions
	OpSessions                         // Sessions (one walk)
	OpDeleteSessions                   // DeleteSessions
)

var opNames = [...]string{"", "get", "save", "delete", "sweep", "user_sessions", "delete_user_sessions", "sessions", "delete_sessions"}

// String returns the operation's name in snake case ("get", "save", ...),
// as metrics label it.
func (o Op) String() string { return nameOf(opNames[:], int(o), "unknown") }

// Outcome says how an operation ended.
type Outcome uint8

const (
	OutcomeHit      Outcome = iota + 1 // Get: a stored session loaded
	OutcomeMiss                        // Get: the cookie names no live session; a new one
	OutcomeNew                         // Get: no cookie; a new session
	OutcomeWritten                     // Save: the session written (see Merges)
	OutcomeTouched                     // Save: unchanged, only its expiry renewed
	OutcomeSkipped                     // Save: unchanged and not due for renewal; nothing sent
	OutcomeDeleted                     // Save with MaxAge < 0, Delete: the session deleted
	OutcomeEnded                       // Save refused: the session had ended (ErrEnded)
	OutcomeConflict                    // Save gave up merging (ErrConflict)
	OutcomeDone                        // Sweep, UserSessions, DeleteUserSessions: done
	OutcomeError                       // failed: see Event.Error
)

var outcomeNames = [...]string{"", "hit", "miss", "new", "written", "touched", "skipped", "deleted", "ended", "conflict", "done", "error"}

// String returns the outcome's name ("hit", "written", ...).
func (o Outcome) String() string { return nameOf(outcomeNames[:], int(o), "unknown") }

// ErrorKind classifies an operation's error by the package's sentinel
// errors.
type ErrorKind uint8

const (
	ErrorNone ErrorKind = iota
	ErrorInvalidCookie
	ErrorInvalidID
	ErrorTooLarge
	ErrorCorrupt
	ErrorUnavailable
	ErrorUnknownFormat
	ErrorEnded
	ErrorConflict
	ErrorCanceled // the caller's context ended
	ErrorOther
	ErrorNoScripting // ErrNoScripting: the server refuses Lua scripts
)

var errorKindNames = [...]string{"", "invalid_cookie", "invalid_id", "too_large", "corrupt", "unavailable", "unknown_format", "ended", "conflict", "canceled", "other", "no_scripting"}

// String returns the kind's name ("unavailable", "corrupt", ...; "" for
// ErrorNone).
func (k ErrorKind) String() string {
	if k == ErrorNone {
		return ""
	}
	return nameOf(errorKindNames[:], int(k), "other")
}

// nameOf returns names[i], or unknown for i out of range or 0.
func nameOf(names []string, i int, unknown string) string {
	if i > 0 && i < len(names) {
		return names[i]
	}
	return unknown
}

// errorKindOf classifies err.
func errorKindOf(err error) ErrorKind {
	switch {
	case err == nil:
		return ErrorNone
	case errors.Is(err, ErrEnded):
		return ErrorEnded
	case errors.Is(err, ErrConflict):
		return ErrorConflict
	case errors.Is(err, ErrInvalidCookie):
		return ErrorInvalidCookie
	case errors.Is(err, ErrInvalidID):
		return ErrorInvalidID
	case errors.Is(err, ErrTooLarge):
		return ErrorTooLarge
	case errors.Is(err, ErrCorrupt):
		return ErrorCorrupt
	case errors.Is(err, ErrUnknownFormat):
		return ErrorUnknownFormat
	case errors.Is(err, ErrNoScripting):
		return ErrorNoScripting
	case errors.Is(err, context.Canceled):
		return ErrorCanceled
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return ErrorUnavailable
	}
	return ErrorOther
}

// opInfo is what an operation reports besides its error.
type opInfo struct {
	outcome                      Outcome
	serializedBytes, storedBytes int
	compressed                   bool
	merges                       int
}

// observe reports an operation that began at start (zero: the store has
// no observer) to the observer.
func (s *Store) observe(ctx context.Context, op Op, start time.Time, info opInfo, err error, fill func(*Event)) {
	if s.observer == nil {
		return
	}
	e := Event{Op: op, Mode: s.layout.mode(), Outcome: info.outcome, Error: errorKindOf(err),
		Start: start, Duration: time.Since(start),
		SerializedBytes: info.serializedBytes, StoredBytes: info.storedBytes, Compressed: info.compressed, Merges: info.merges}
	if err != nil && ctx.Err() != nil {
		e.Error = ErrorCanceled // the caller's context ended, whatever the error says
	}
	switch {
	case errors.Is(err, ErrEnded) && op == OpSave:
		e.Outcome = OutcomeEnded
	case errors.Is(err, ErrConflict) && op == OpSave:
		e.Outcome = OutcomeConflict
	case err != nil:
		e.Outcome = OutcomeError
	}
	if e.Outcome != OutcomeHit && e.Outcome != OutcomeWritten {
		// Sizes describe a session loaded or written, not an attempt.
		e.SerializedBytes, e.StoredBytes, e.Compressed = 0, 0, false
	}
	if fill != nil {
		fill(&e)
	}
	s.observer.Observe(ctx, e)
}

// began returns the start of an operation, when there is an observer to
// tell.
func (s *Store) began() time.Time {
	if s.observer == nil {
		return time.Time{}
	}
	return time.Now()
}
