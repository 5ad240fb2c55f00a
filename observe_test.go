package redistore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is an Observer that keeps the events.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) Observe(_ context.Context, e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// take returns the events since the last take.
func (r *recorder) take() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

// one returns the only event since the last take, failing otherwise.
func (r *recorder) one(t testing.TB, what string) Event {
	t.Helper()
	es := r.take()
	if len(es) != 1 {
		t.Fatalf("%s: %d events, want 1: %+v", what, len(es), es)
	}
	return es[0]
}

func wantEvent(t testing.TB, what string, e Event, op Op, outcome Outcome, kind ErrorKind) {
	t.Helper()
	if e.Op != op || e.Outcome != outcome || e.Error != kind {
		t.Fatalf("%s: event %v/%v/%q, want %v/%v/%q", what, e.Op, e.Outcome, e.Error, op, outcome, kind)
	}
	if e.Start.IsZero() || e.Duration < 0 || e.Duration > time.Minute {
		t.Fatalf("%s: start %v, duration %v", what, e.Start, e.Duration)
	}
}

// TestObserver: each operation reports one event with its outcome, error
// kind, sizes and merges, and no event carries an ID, a cookie or a value.
func TestObserver(t *testing.T) {
	t.Parallel()
	miniAndReal(t, func(t *testing.T, tg *target) {
		for _, mode := range []Mode{HashMode, StringMode} {
			t.Run(mode.String(), func(t *testing.T) {
				tg.prefix = randomPrefix()
				rec := &recorder{}
				s := newStore(t, tg, Config{Mode: mode, Observer: rec, UserKey: "uid"})
				var secrets []string
				b := newBrowser()

				sess, r := b.get(t, s, "sid")
				wantEvent(t, "Get without a cookie", rec.one(t, "Get"), OpGet, OutcomeNew, ErrorNone)
				sess.Values["uid"] = "alice"
				sess.Values["secret"] = "hunter2-value"
				b.save(t, s, r, sess)
				e := rec.one(t, "Save of a new session")
				wantEvent(t, "Save of a new session", e, OpSave, OutcomeWritten, ErrorNone)
				equal(t, "mode", e.Mode, mode)
				if e.SerializedBytes == 0 || e.StoredBytes <= e.SerializedBytes || e.Compressed {
					t.Fatalf("sizes: serialized %d, stored %d, compressed %v", e.SerializedBytes, e.StoredBytes, e.Compressed)
				}
				secrets = append(secrets, sess.ID, b.cookies["sid"].Value, "hunter2-value")

				sess, r = b.get(t, s, "sid")
				e = rec.one(t, "Get")
				wantEvent(t, "Get of a stored session", e, OpGet, OutcomeHit, ErrorNone)
				if e.StoredBytes == 0 || e.SerializedBytes == 0 {
					t.Fatalf("Get sizes: %+v", e)
				}
				b.save(t, s, r, sess)
				wantEvent(t, "Save unchanged", rec.one(t, "Save"), OpSave, OutcomeSkipped, ErrorNone)

				big, r := b.get(t, s, "sid")
				rec.take()
				big.Values["cart"] = strings.Repeat("an item, ", 100)
				b.save(t, s, r, big)
				e = rec.one(t, "Save changed")
				wantEvent(t, "Save changed", e, OpSave, OutcomeWritten, ErrorNone)
				if !e.Compressed || e.StoredBytes >= e.SerializedBytes {
					t.Fatalf("a compressible session: serialized %d, stored %d, compressed %v", e.SerializedBytes, e.StoredBytes, e.Compressed)
				}

				// Two requests at once: the later one merges.
				a, ra := b.get(t, s, "sid")
				c, rc := b.get(t, s, "sid")
				rec.take()
				a.Values["a"] = 1
				c.Values["c"] = 2
				b.save(t, s, ra, a)
				rec.take()
				b.save(t, s, rc, c)
				e = rec.one(t, "Save that merged")
				wantEvent(t, "Save that merged", e, OpSave, OutcomeWritten, ErrorNone)
				equal(t, "merges", e.Merges, 1)

				toucher := newStore(t, tg, Config{Mode: mode, Observer: rec, UserKey: "uid", TouchInterval: -1})
				sess, r = b.get(t, toucher, "sid")
				rec.take()
				b.save(t, toucher, r, sess)
				wantEvent(t, "Save due for renewal", rec.one(t, "touch"), OpSave, OutcomeTouched, ErrorNone)

				list, err := s.UserSessions(context.Background(), "alice")
				noErr(t, err)
				e = rec.one(t, "UserSessions")
				wantEvent(t, "UserSessions", e, OpUserSessions, OutcomeDone, ErrorNone)
				equal(t, "sessions listed", e.Sessions, len(list))
				equal(t, "user without ObserveUserIDs", e.User, "")

				// A request in flight when the user logs out.
				late, rl := b.get(t, s, "sid")
				out, ro := b.get(t, s, "sid")
				rec.take()
				out.Options.MaxAge = -1
				b.save(t, s, ro, out)
				wantEvent(t, "logout", rec.one(t, "logout"), OpSave, OutcomeDeleted, ErrorNone)
				late.Values["x"] = 1
				if err := s.Save(rl, httptest.NewRecorder(), late); !errors.Is(err, ErrEnded) {
					t.Fatalf("late Save: %v", err)
				}
				wantEvent(t, "late Save", rec.one(t, "late Save"), OpSave, OutcomeEnded, ErrorEnded)

				stale := newBrowser()
				stale.cookies["sid"] = &http.Cookie{Name: "sid", Value: secrets[1]}
				stale.get(t, s, "sid")
				wantEvent(t, "Get of an ended session", rec.one(t, "Get"), OpGet, OutcomeMiss, ErrorNone)

				r = httptest.NewRequest("GET", "/", nil)
				r.AddCookie(&http.Cookie{Name: "sid", Value: "tampered" + secrets[1]})
				if _, err := s.Get(r, "sid"); !errors.Is(err, ErrInvalidCookie) {
					t.Fatalf("Get with a tampered cookie: %v", err)
				}
				wantEvent(t, "tampered cookie", rec.one(t, "Get"), OpGet, OutcomeError, ErrorInvalidCookie)

				_, sess = signIn(t, s, "bob")
				rec.take()
				noErr(t, s.Delete(context.Background(), sess.ID))
				wantEvent(t, "Delete", rec.one(t, "Delete"), OpDelete, OutcomeDeleted, ErrorNone)
				if err := s.Delete(context.Background(), "nope"); !errors.Is(err, ErrInvalidID) {
					t.Fatal(err)
				}
				wantEvent(t, "Delete of a malformed ID", rec.one(t, "Delete"), OpDelete, OutcomeError, ErrorInvalidID)

				named := newStore(t, tg, Config{Mode: mode, Observer: rec, UserKey: "uid", ObserveUserIDs: true})
				signIn(t, named, "carol")
				rec.take()
				n, err := named.DeleteUserSessions(context.Background(), "carol")
				noErr(t, err)
				e = rec.one(t, "DeleteUserSessions")
				wantEvent(t, "DeleteUserSessions", e, OpDeleteUserSessions, OutcomeDone, ErrorNone)
				equal(t, "sessions ended", e.Sessions, n)
				equal(t, "user with ObserveUserIDs", e.User, "carol")

				if mode == HashMode {
					signIn(t, s, "dave")
					rec.take()
					_, err := s.Sweep(context.Background())
					noErr(t, err)
					e = rec.one(t, "Sweep")
					wantEvent(t, "Sweep", e, OpSweep, OutcomeDone, ErrorNone)
					if e.Buckets == 0 {
						t.Fatalf("Sweep event: %+v", e)
					}
				}

				// Nothing secret ever reached the observer (secrets collected
				// above; events of the whole test are checked as they went).
				for _, e := range append(rec.take(), Event{}) {
					text := fmt.Sprintf("%+v", e)
					for _, secret := range secrets {
						if strings.Contains(text, secret) {
							t.Fatalf("an event holds a secret: %s", text)
						}
					}
				}
			})
		}
	})
}

// TestObserverSeesRedisDown: a Get against a Redis that does not answer is
// an error event of kind unavailable.
func TestObserverSeesRedisDown(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	rec := &recorder{}
	s := newStore(t, tg, Config{Observer: rec}) // a closed server refuses at once: no timeout needed
	b := startedSession(t, s)
	rec.take()
	tg.mini.Close()
	r := b.request()
	if _, err := s.Get(r, "sid"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get with Redis down: %v", err)
	}
	wantEvent(t, "Get with Redis down", rec.one(t, "Get"), OpGet, OutcomeError, ErrorUnavailable)
}

func TestEventNames(t *testing.T) {
	t.Parallel()
	equal(t, "op", OpDeleteUserSessions.String(), "delete_user_sessions")
	equal(t, "op", OpSessions.String(), "sessions")
	equal(t, "op", OpDeleteSessions.String(), "delete_sessions")
	equal(t, "unknown op", Op(99).String(), "unknown")
	equal(t, "outcome", OutcomeTouched.String(), "touched")
	equal(t, "kind", ErrorUnavailable.String(), "unavailable")
	equal(t, "no error", ErrorNone.String(), "")
	equal(t, "wrapped", errorKindOf(fmt.Errorf("x: %w", ErrCorrupt)), ErrorCorrupt)
	equal(t, "deadline", errorKindOf(context.DeadlineExceeded), ErrorUnavailable)
}
