package redistore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A randomized run of the HashMode write paths against a few buckets, with
// the layout's promises checked after every step. It drives many sessions
// through new, changed, unchanged (skipped or renewed), MaxAge raised and
// lowered, RegenerateID, logout and expiry, and asserts after each step:
//   - every bucket lasts at least a second past its latest session's expiry;
//   - every bucket's marker is at or below its earliest session's expiry;
//   - every session the model says is alive loads, with its latest value;
//   - no session past its expiry, logged out or regenerated away is served.

// modelSession is what the test knows of one browser's session.
type modelSession struct {
	b      *browser
	alive  bool
	n      int   // the latest value saved
	maxAge int   // the MaxAge it was last saved with
	lo, hi int64 // bounds of its stored expiry (Unix seconds, server clock)
}

// invariantRun is one randomized run.
type invariantRun struct {
	t        *testing.T
	tg       *target
	stores   []*Store // the same layout; one renews on every Save
	rng      *rand.Rand
	sessions []*modelSession
	dead     []deadCookie // cookies that must never open a session again
	maxAges  []int
	pass     func(d time.Duration) // lets time pass on the server
	long     time.Duration         // the longest idle step
	counts   map[string]int
	touched  map[string]bool // buckets written since the last check
	checks   int
}

// touch records the bucket of a session ID a step loaded or saved.
func (run *invariantRun) touch(id string) {
	if id == "" {
		return
	}
	if loc, err := run.stores[0].locate(id); err == nil {
		run.touched[loc.key] = true
	}
}

func (run *invariantRun) store() *Store { return run.stores[run.rng.IntN(len(run.stores))] }

func (run *invariantRun) step() {
	t, tg := run.t, run.tg
	m := run.sessions[run.rng.IntN(len(run.sessions))]
	s := run.store()
	before := tg.now().Unix()
	sess, r := m.b.get(t, s, "sid")
	run.touch(sess.ID)
	switch {
	case m.alive && sess.IsNew && before+1 < m.lo:
		run.fail("a live session (stored expiry %d..%d) did not load at %d", m.lo, m.hi, before)
	case !m.alive && !sess.IsNew:
		run.fail("a session that had ended was served")
	case m.alive && !sess.IsNew && sess.Values["n"] != m.n:
		run.fail("session loaded with n=%v, want %d", sess.Values["n"], m.n)
	case m.alive && sess.IsNew: // expired, as it may have by now
		m.alive = false
		// Expired by this store's estimate of the server's clock; another
		// store's may lag it a little: dead for all past its latest expiry.
		run.dead = append(run.dead, deadCookie{cookieJar(m.b.cookies["sid"]), m.hi + 1})
	}
	maxAge := m.maxAge
	action := "new"
	switch p := run.rng.IntN(100); {
	case !m.alive:
		maxAge = run.maxAges[run.rng.IntN(len(run.maxAges))]
	case p < 35:
		action = "change"
	case p < 50:
		action, maxAge = "maxage", run.maxAges[run.rng.IntN(len(run.maxAges))]
	case p < 70:
		action = "unchanged"
	case p < 80:
		action = "regenerate"
	case p < 86:
		action = "logout"
	case p < 92:
		action = "burst"
	default:
		action = "idle"
	}
	sess.Options.MaxAge = maxAge
	run.counts[action]++
	old := m.b.cookies["sid"]
	w := httptest.NewRecorder()
	var err error
	switch action {
	case "idle":
		run.pass(time.Duration(run.rng.Int64N(int64(run.long))))
		return
	case "burst":
		run.burst(m)
		return
	case "logout":
		sess.Options.MaxAge = -1
		err = s.Save(r, w, sess)
	case "regenerate":
		err = s.RegenerateID(r, w, sess)
	case "unchanged":
		err = s.Save(r, w, sess)
	default:
		m.n++
		sess.Values["n"] = m.n
		err = s.Save(r, w, sess)
	}
	after := tg.now().Unix()
	if errors.Is(err, ErrEnded) && action != "logout" && after+1 >= m.lo {
		run.endedInFlight(action, m, w, old)
		return
	}
	if err != nil {
		run.fail("%s: Save: %v", action, err)
	}
	run.touch(sess.ID)
	m.b.keep(t, w)
	switch action {
	case "logout":
		m.alive = false
		if old != nil {
			run.dead = append(run.dead, deadCookie{cookieJar(old), 0})
		}
	case "regenerate":
		run.dead = append(run.dead, deadCookie{cookieJar(old), 0})
		fallthrough
	default:
		lo, hi := before+int64(maxAge), after+int64(maxAge)+1
		if action == "unchanged" {
			// The Save may have skipped the write, or renewed the expiry.
			lo, hi = min(lo, m.lo), max(hi, m.hi)
		}
		m.alive, m.lo, m.hi, m.maxAge = true, lo, hi, maxAge
	}
	run.check()
}

// endedInFlight records a session that expired while a request held it
// (MaxAge 1 runs out between a Get and its Save): its Save wrote nothing and
// must have set no cookie; it is dead from now.
func (run *invariantRun) endedInFlight(action string, m *modelSession, w *httptest.ResponseRecorder, old *http.Cookie) {
	if len(w.Result().Cookies()) != 0 {
		run.fail("%s: a Save of a session that had ended set a cookie", action)
	}
	m.alive = false
	run.dead = append(run.dead, deadCookie{cookieJar(old), m.hi + 1})
	run.counts["ended in flight"]++
	run.check()
}

// burst changes one session several times in quick succession, as a user
// clicking through pages does: each write must carry its bucket along.
func (run *invariantRun) burst(m *modelSession) {
	t, tg := run.t, run.tg
	for i := 2 + run.rng.IntN(8); i > 0; i-- {
		run.pass(time.Duration(run.rng.Int64N(int64(run.long / 10))))
		s := run.store()
		before := tg.now().Unix()
		sess, r := m.b.get(t, s, "sid")
		if sess.IsNew {
			if before+1 < m.lo {
				run.fail("burst: a live session (stored expiry %d..%d) did not load at %d", m.lo, m.hi, before)
			}
			m.alive = false
			return
		}
		m.n++
		sess.Values["n"] = m.n
		sess.Options.MaxAge = m.maxAge
		old := m.b.cookies["sid"]
		w := httptest.NewRecorder()
		err := s.Save(r, w, sess)
		if errors.Is(err, ErrEnded) && tg.now().Unix()+1 >= m.lo {
			run.endedInFlight("burst", m, w, old)
			return
		}
		if err != nil {
			run.fail("burst: Save: %v", err)
		}
		m.b.keep(t, w)
		run.touch(sess.ID)
		m.lo, m.hi = before+int64(m.maxAge), tg.now().Unix()+int64(m.maxAge)+1
		run.check()
	}
}

// deadCookie is the cookie of a session that ended, from the server time
// after (Unix seconds) on.
type deadCookie struct {
	b     *browser
	after int64
}

func cookieJar(c *http.Cookie) *browser {
	b := newBrowser()
	b.cookies[c.Name] = c
	return b
}

// check asserts the promises: over the buckets the last step wrote and a
// few sessions at random, and every tenth time over the whole state. (A
// bucket nobody writes to keeps them: its deadline and its sessions'
// expiries are absolute times.)
func (run *invariantRun) check() {
	t, tg := run.t, run.tg
	t.Helper()
	run.checks++
	full := run.checks%10 == 0
	buckets := run.touched
	if full {
		buckets = map[string]bool{}
		for k := range scanPrefix(t, tg, tg.prefix) {
			buckets[k] = true
		}
	}
	for k := range buckets {
		checkBucket(t, tg, k)
	}
	run.touched = map[string]bool{}
	now := tg.now().Unix()
	s := run.stores[0]
	for i, m := range run.sessions {
		if !m.alive || (!full && i%4 != run.checks%4) {
			continue
		}
		switch {
		case now+1 < m.lo:
			r := m.b.request()
			sess, err := s.Get(r, "sid")
			if err != nil || sess.IsNew || sess.Values["n"] != m.n {
				run.fail("a live session (expiry %d..%d, now %d) read as new=%v n=%v err=%v", m.lo, m.hi, now, sess.IsNew, sess.Values["n"], err)
			}
		case now > m.hi:
			if sess, _ := s.Get(m.b.request(), "sid"); !sess.IsNew {
				run.fail("a session past its expiry (%d..%d, now %d) was served", m.lo, m.hi, now)
			}
			m.alive = false
		}
	}
	for i := 0; i < 5 && len(run.dead) > 0; i++ {
		run.checkDead(run.dead[run.rng.IntN(len(run.dead))])
	}
}

// checkDead asserts that a cookie whose session ended opens nothing.
func (run *invariantRun) checkDead(d deadCookie) {
	run.t.Helper()
	if d.after > 0 && run.tg.now().Unix() <= d.after {
		return
	}
	if sess, _ := run.stores[0].Get(d.b.request(), "sid"); !sess.IsNew {
		run.fail("a cookie whose session ended (logged out, regenerated or expired) opened a session")
	}
}

// finish checks every ended cookie.
func (run *invariantRun) finish() {
	run.t.Helper()
	for _, d := range run.dead {
		run.checkDead(d)
	}
	run.t.Logf("steps: %v; %d ended cookies checked", run.counts, len(run.dead))
}

func (run *invariantRun) fail(format string, args ...any) {
	run.t.Helper()
	run.t.Fatalf("after %v: "+format, append([]any{run.counts}, args...)...)
}

// fleets are the application servers a run writes through: every one
// without field TTLs, every one with them where the server has them, and a
// mixed fleet, as during a rolling change of FieldTTL.
// (miniredis keeps a field's TTL when HSET overwrites it, where Redis 7.4+
// removes it, so a mixed fleet runs on real servers only.)
var fleets = []struct {
	name      string
	ttls      []FieldTTL
	miniredis bool
}{
	{"FieldTTLOff", []FieldTTL{FieldTTLOff}, true},
	{"FieldTTLAuto", []FieldTTL{FieldTTLAuto}, true},
	{"a mixed fleet", []FieldTTL{FieldTTLOff, FieldTTLAuto}, false},
}

func TestWritePathsKeepTheLayoutsPromises(t *testing.T) {
	t.Parallel()
	for _, fleet := range fleets {
		t.Run("real time, "+fleet.name, func(t *testing.T) {
			forEachReal(t, func(t *testing.T, tg *target) {
				run := newInvariantRun(t, tg, fleet.ttls, 4, []int{1, 2, 3, 30, 79})
				run.pass, run.long = func(d time.Duration) { time.Sleep(d) }, time.Second
				deadline := time.Now().Add(5 * time.Second)
				for i := 0; time.Now().Before(deadline) || i < 150; i++ {
					run.step()
				}
				run.finish()
			})
		})
		for _, buckets := range []int{4, 64} {
			if !fleet.miniredis {
				continue
			}
			t.Run(fmt.Sprintf("miniredis, days in seconds, %d buckets, %s", buckets, fleet.name), func(t *testing.T) {
				t.Parallel()
				tg := newMiniTarget(t)
				run := newInvariantRun(t, tg, fleet.ttls, buckets, []int{5, 60, 600, 3600, 86400})
				monos := make([]*fakeMonotonic, len(run.stores))
				for i, s := range run.stores {
					monos[i] = withFakeClock(t, tg, s)
				}
				run.pass, run.long = func(d time.Duration) {
					tg.advance(t, d)
					for _, m := range monos {
						m.advance(d)
					}
				}, 20*time.Minute
				for i := 0; i < 600; i++ {
					run.step()
				}
				run.finish()
			})
		}
	}
}

// newInvariantRun writes through two stores for each FieldTTL, one that
// renews on every Save and one with the default TouchInterval.
func newInvariantRun(t *testing.T, tg *target, ttls []FieldTTL, buckets int, maxAges []int) *invariantRun {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	run := &invariantRun{t: t, tg: tg, rng: rand.New(rand.NewPCG(seed, seed)), maxAges: maxAges, counts: map[string]int{}, touched: map[string]bool{}}
	for _, ft := range ttls {
		for _, touch := range []time.Duration{0, -1} {
			run.stores = append(run.stores, newStore(t, tg, Config{Buckets: buckets, FieldTTL: ft, TouchInterval: touch}))
		}
	}
	for i := 0; i < 24; i++ {
		run.sessions = append(run.sessions, &modelSession{b: newBrowser()})
	}
	return run
}
