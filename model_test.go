package redistore

import (
	"context"
	"encoding/gob"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/gorilla/sessions"
)

// TestModel drives the store as browsers with several tabs do, and checks
// everything they see against a reference model of what the README
// promises. Each schedule is a few rounds; in a round, requests of one or
// two browsers run concurrently under a deterministic scheduler (every
// Redis call is a point where another request may run: schedule_test.go),
// each doing what applications do: load the session; set, change and
// delete keys, add and read flashes, sign in, switch or sign out a user, set
// Values to nil, change MaxAge; then Save, Save twice (a handler and a
// middleware), RegenerateID, clear the ID and Save, log out, log out then
// add a flash and Save, or nothing; an admin may Delete a session. Some
// requests use an old cookie of their browser (an old tab, or a thief).
// Between rounds every cookie ever issued is loaded and looked up, each
// user's index is compared with the sessions that hold the user, users'
// sessions are ended now and then, and on miniredis the clock moves.
//
// The model (mState.step) is the README's: a Save applies its request's
// changes since it loaded the session or last saved it (a key set takes
// this request's value; a key deleted goes only if it still holds what the
// request loaded) atomically, on what is stored at that moment, unless the
// session ended; ended stays ended; a new session, a new ID and a session
// after logout get an ID never issued before; a renewal renews only the
// session as its request loaded it; an unchanged session without a user is
// not written again. Every history is checked for linearizability against
// it (porcupine), per browser; the user index is checked between rounds: a
// session holding user U is listed for U while it lives, and nothing else.
//
// A failure prints its seed; -model-seed=N replays that schedule on each
// target, and -model-schedules=N runs N schedules per target and layout.
var (
	modelSchedules = flag.Int("model-schedules", 0, "TestModel: schedules per target and layout (0: a bounded default)")
	modelSeed      = flag.Uint64("model-seed", 0, "TestModel: run only this schedule (its seed, as a failure prints it)")
	modelVerbose   = flag.Bool("model-verbose", false, "TestModel: print the history of every schedule run")
)

// modelThing is an application type stored in sessions: gob-registered,
// with a map inside, so its gob encoding varies from run to run.
type modelThing struct {
	Name string
	Tags map[string]int
}

func init() {
	gob.Register(modelThing{})
	gob.Register(map[string]any{})
	gob.Register([]any{})
}

func TestModel(t *testing.T) {
	t.Parallel()
	forEachTarget(t, func(t *testing.T, tg *target) {
		runModel(t, tg, modelLayouts)
	})
}

// TestModelWithoutScripting runs the model on a server without any
// scripting engine, in StringMode without UserKey: every write there is
// compare-and-set (SET IFEQ, DELIFEQ: Valkey 8.1+).
func TestModelWithoutScripting(t *testing.T) {
	t.Parallel()
	runModel(t, casTarget(t), []modelLayout{
		{"string-compact-nousers", StringMode, FieldTTLAuto, nil, true, false},
		{"string-gob-nousers-sealed", StringMode, FieldTTLAuto, GobSerializer{}, true, true},
	})
}

// runModel runs schedules of each layout on tg.
func runModel(t *testing.T, tg *target, layouts []modelLayout) {
	{
		schedules := *modelSchedules
		if schedules == 0 {
			schedules = 150
			if tg.mini == nil {
				schedules = 50
			}
			if testing.Short() {
				schedules /= 4
			}
		}
		for _, layout := range layouts {
			t.Run(layout.name, func(t *testing.T) {
				seeds := make([]uint64, 0, schedules)
				if *modelSeed != 0 {
					seeds = append(seeds, *modelSeed)
				} else {
					for range schedules {
						seeds = append(seeds, rand.Uint64()|1)
					}
				}
				first, count := map[string]int{}, map[string]int{}
				failed := 0
				for i, seed := range seeds {
					tg.prefix = randomPrefix()
					run := newModelRun(t, tg, layout, seed)
					run.schedule()
					if len(run.fails) == 0 {
						continue
					}
					failed++
					seen, fresh := map[string]bool{}, false
					for _, f := range run.fails {
						kind, _, _ := strings.Cut(f, ":")
						if !seen[kind] {
							seen[kind] = true
							count[kind]++
							if first[kind] == 0 {
								first[kind], fresh = i+1, true
							}
						}
					}
					if fresh {
						// Each kind of failure is reported once, with its history.
						run.report()
						t.Errorf("schedule %d of %d, seed %d (replay: go test -run 'TestModel/%s/%s' -model-seed=%d):\n%s",
							i+1, len(seeds), seed, tg.name, layout.name, seed, strings.Join(run.fails, "\n"))
					}
					if *modelSchedules == 0 {
						break // in a default run, one failing schedule says enough
					}
				}
				if failed > 0 {
					var kinds []string
					for _, k := range slices.Sorted(maps.Keys(first)) {
						kinds = append(kinds, fmt.Sprintf("%s: first in schedule %d, in %d schedule(s)", k, first[k], count[k]))
					}
					t.Errorf("%d of %d schedules failed:\n%s", failed, len(seeds), strings.Join(kinds, "\n"))
				}
			})
		}
	}
}

// modelLayout is a store configuration the model runs on.
type modelLayout struct {
	name       string
	mode       Mode
	fieldTTL   FieldTTL
	serializer Serializer
	noUserKey  bool // no Config.UserKey (and no index to check)
	// sealed: values sealed (Config.EncryptionKeys), the two stores in the
	// middle of a rotation: one seals with the old key, the other with the
	// new, and each opens both.
	sealed bool
}

var modelLayouts = []modelLayout{
	{"hash-compact", HashMode, FieldTTLAuto, nil, false, false},
	{"hash-fieldttl-off-gob-sealed", HashMode, FieldTTLOff, GobSerializer{}, false, true},
	{"string-compact-sealed", StringMode, FieldTTLAuto, nil, false, true},
	{"string-gob", StringMode, FieldTTLAuto, GobSerializer{}, false, false},
}

// The model.

// mVals are a session's values as the model sees them: each key and value
// by its canonical form, so that NaN equals NaN and maps compare by content
// whatever order a serializer wrote them in.
type mVals map[string]string

func canon(v any) string { return fmt.Sprintf("%T %#v", v, v) }

func canonValues(values map[any]any) mVals {
	out := make(mVals, len(values))
	for k, v := range values {
		if q, ok := v.([]any); ok && k == flashesKey {
			out[flashCanon] = canonQueue(q)
			continue
		}
		out[canon(k)] = canon(v)
	}
	return out
}

// The flash queue (gorilla's default key, a []any) has a canonical form
// apply can take apart: its items' canonical forms, each ended by a byte
// that no canonical form holds.
var flashCanon = canon(flashesKey)

const queuePrefix, queueEnd = "queue:", "\x1e"

func canonQueue(q []any) string {
	var b strings.Builder
	b.WriteString(queuePrefix)
	for _, v := range q {
		b.WriteString(canon(v))
		b.WriteString(queueEnd)
	}
	return b.String()
}

// queueOf returns the items of a canonical flash queue; ok is false when
// v is not one.
func queueOf(v string) (items []string, ok bool) {
	rest, ok := strings.CutPrefix(v, queuePrefix)
	if !ok {
		return nil, false
	}
	items = strings.SplitAfter(rest, queueEnd)
	return items[:len(items)-1], true
}

// mFlash is what a request did to the flash queue (see flashChange).
type mFlash struct {
	consumed, added []string
}

func (v mVals) String() string {
	keys := slices.Sorted(maps.Keys(v))
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %s", short(k), short(v[k]))
	}
	b.WriteByte('}')
	return b.String()
}

// short drops the type from a canonical form where it adds nothing.
func short(c string) string {
	typ, val, _ := strings.Cut(c, " ")
	switch typ {
	case "string", "int", "float64":
		return val
	}
	return c
}

var userCanon = canon("user")

// mSess is one session of the model.
type mSess struct {
	alive        bool
	vals         mVals
	expLo, expHi int64 // bounds of its expiry, server Unix seconds
}

// mState is the model's state for one browser: every session its requests
// created, alive or ended.
type mState struct{ sess map[string]mSess }

func (st mState) with(id string, se mSess) mState {
	next := maps.Clone(st.sess)
	if next == nil {
		next = map[string]mSess{}
	}
	next[id] = se
	return mState{next}
}

func (st mState) equal(o mState) bool {
	return maps.EqualFunc(st.sess, o.sess, func(a, b mSess) bool {
		return a.alive == b.alive && a.expLo == b.expLo && a.expHi == b.expHi && maps.Equal(a.vals, b.vals)
	})
}

// mOp is one operation of a history.
type mOp struct {
	b, tab int     // the browser (the history's partition) and the tab
	kind   string  // get, save, regen, create, logout, delete, lookup, enduser, advance
	id     string  // the session it names (for save: the ID the request holds)
	snap   mVals   // save, regen: what the request loaded or last saved
	sets   mVals   // save, regen, create: keys the request set or changed since
	dels   mVals   // and keys it deleted, with the values it had loaded
	ttl    int64   // save, regen, create: seconds the session is kept
	flash  *mFlash // save, regen, create: what it did to the flash queue
	// lifetimeSet: the request set another MaxAge than the session had
	// when it loaded or last saved it.
	lifetimeSet bool
	at          int64  // server time when it began (advance: the new time)
	user        string // enduser: the user whose sessions end
	keep        string // enduser: the session kept ("" none)
	only        string // enduser: the only session that may end ("" all)
	// reseal: save, with sealed values: the request's store seals with
	// another first key than the other store, so that an unchanged Save may
	// rewrite what is stored, re-sealed by its own.
	reseal bool
}

// mRes is what an operation answered.
type mRes struct {
	err     string  // "", "ended", "conflict", or the error's text
	outcome Outcome // save, regen, create: what the Observer was told
	id      string  // save, regen, create: session.ID after it
	found   bool    // get, lookup
	vals    mVals   // get, save, regen, create: session.Values after it
	at      int64   // server time when it returned
	expires int64   // lookup
}

// liveness says whether se is alive between the server times from and to:
// surely, surely not, or maybe (its expiry falls in between).
func (se mSess) liveness(from, to int64) (sure, maybe bool) {
	switch {
	case !se.alive || from > se.expHi+1:
		return false, false
	case to < se.expLo-1:
		return true, true
	}
	return false, true
}

// apply is what a Save's changes make of vals.
func apply(vals mVals, op mOp) mVals {
	out := maps.Clone(vals)
	if out == nil {
		out = mVals{}
	}
	maps.Copy(out, op.sets)
	for k, was := range op.dels {
		if v, ok := out[k]; ok && v == was {
			delete(out, k)
		}
	}
	if f := op.flash; f != nil {
		// A queue: the flashes read leave it if it still begins with them;
		// those added go at its end.
		q, _ := queueOf(out[flashCanon])
		if n := len(f.consumed); n > 0 && len(q) >= n && slices.Equal(q[:n], f.consumed) {
			q = q[n:]
		}
		q = append(slices.Clip(q), f.added...)
		if len(q) == 0 {
			delete(out, flashCanon)
		} else {
			out[flashCanon] = queuePrefix + strings.Join(q, "")
		}
	}
	return out
}

// flashOf moves the flash queue's change out of op's sets and dels into
// op.flash, as the store tells it (flashDiff): from what the request
// loaded (snap) to what it holds (cur).
func flashOf(op *mOp, cur mVals) {
	lv, lok := op.snap[flashCanon]
	nv, nok := cur[flashCanon]
	l, lq := queueOf(lv)
	n, nq := queueOf(nv)
	switch {
	case !lok && !nok, lok && !lq, nok && !nq, lok && nok && lv == nv:
		return
	}
	delete(op.sets, flashCanon)
	delete(op.dels, flashCanon)
	if len(l) <= len(n) && slices.Equal(n[:len(l)], l) {
		op.flash = &mFlash{added: n[len(l):]}
		return
	}
	op.flash = &mFlash{consumed: l, added: n}
}

// step applies op with its result to the state; a non-empty reason says
// why the result breaks the model.
func (st mState) step(op mOp, res mRes) (reason string, next mState) {
	se, known := st.sess[op.id]
	sure, maybe := se.liveness(op.at, res.at)
	ended := func() mState {
		se.alive = false
		return st.with(op.id, se)
	}
	written := func(id string, vals mVals) mState {
		return st.with(id, mSess{alive: true, vals: vals, expLo: op.at + op.ttl - 1, expHi: res.at + op.ttl + 1})
	}
	switch op.kind {
	case "get":
		switch {
		case res.found && !maybe:
			return "ended served: a cookie opened a session that had ended", st
		case res.found && !maps.Equal(res.vals, se.vals):
			return fmt.Sprintf("wrong values: loaded %v, the model holds %v", res.vals, se.vals), st
		case !res.found && sure:
			return "live lost: a live session did not load", st
		case !res.found && known:
			return "", ended()
		}
		return "", st
	case "lookup":
		switch {
		case res.found && !maybe:
			return "ended served: Lookup found a session that had ended", st
		case res.found && (res.expires < se.expLo || res.expires > se.expHi):
			return fmt.Sprintf("wrong expiry: %d, the model's bounds %d..%d", res.expires, se.expLo, se.expHi), st
		case res.found:
			se.expLo, se.expHi = res.expires, res.expires
			return "", st.with(op.id, se)
		case sure:
			return "live lost: Lookup did not find a live session", st
		case known:
			return "", ended()
		}
		return "", st
	case "logout", "delete":
		if res.err != "" {
			return "unexpected error: " + res.err, st
		}
		if known {
			return "", ended()
		}
		return "", st
	case "enduser":
		next := st
		for id, s := range st.sess {
			if s.alive && s.vals[userCanon] == canon(op.user) && id != op.keep && (op.only == "" || op.only == id) {
				s.alive = false
				next = next.with(id, s)
			}
		}
		return "", next
	case "advance":
		next := st
		for id, s := range st.sess {
			switch {
			case !s.alive:
			case op.at > s.expHi:
				s.alive = false
				next = next.with(id, s)
			case op.at >= s.expLo:
				return fmt.Sprintf("harness: the clock moved into an expiry window (%d in %d..%d)", op.at, s.expLo, s.expHi), st
			}
		}
		return "", next
	case "create":
		switch {
		case res.err != "":
			return "unexpected error: " + res.err, st
		case res.outcome != OutcomeWritten:
			return fmt.Sprintf("new session not written: outcome %v", res.outcome), st
		case res.id == "" || st.sess[res.id].vals != nil:
			return "id reused: a new session (or one after logout) got an ID issued before", st
		case !maps.Equal(res.vals, apply(nil, op)):
			return fmt.Sprintf("wrong values: a new session holds %v, want %v", res.vals, apply(nil, op)), st
		}
		return "", written(res.id, res.vals)
	case "save", "regen":
		changed := len(op.sets)+len(op.dels) > 0 || op.flash != nil
		switch {
		case res.err == "ended":
			if sure {
				return "wrongly ended: ErrEnded for a session that lives", st
			}
			return "", ended()
		case res.err != "":
			return "unexpected error: " + res.err, st
		case res.outcome == OutcomeSkipped:
			// Skipped: unchanged, or its changes merged into what another
			// request stored came to what is stored (a key it set that
			// another set alike, a key it deleted that another deleted or
			// changed); then it holds what is stored.
			switch {
			case op.kind == "regen":
				return "regen skipped", st
			case changed && (!maybe || !maps.Equal(apply(se.vals, op), se.vals)):
				return fmt.Sprintf("change skipped: a Save dropped the changes %v -%v (stored %v)", op.sets, op.dels, se.vals), st
			case !maps.Equal(res.vals, op.snap) && (!maybe || !maps.Equal(res.vals, se.vals)):
				return fmt.Sprintf("wrong values: a skipped Save left %v, neither loaded %v nor stored %v", res.vals, op.snap, se.vals), st
			}
			return "", st
		case !maybe:
			return fmt.Sprintf("ended revived: %s of a session that had ended succeeded (%v)", op.kind, res.outcome), st
		case res.outcome == OutcomeTouched:
			switch {
			case op.kind == "regen" || changed && (!op.lifetimeSet || !maps.Equal(apply(se.vals, op), se.vals)):
				// (Changes merged into what another request wrote may come
				// to what is stored: then only the lifetime this request
				// set is left to apply.)
				return fmt.Sprintf("change skipped: %s with changes %v -%v only renewed", op.kind, op.sets, op.dels), st
			case !op.lifetimeSet && !maps.Equal(se.vals, op.snap):
				// Only a request that set the lifetime itself renews what
				// another request wrote.
				return fmt.Sprintf("stale renewal: renewed a session that changed since its request loaded it (%v, stored %v)", op.snap, se.vals), st
			case !maps.Equal(res.vals, se.vals):
				return fmt.Sprintf("wrong values: a renewal left %v, stored %v", res.vals, se.vals), st
			}
			se.expLo, se.expHi = op.at+op.ttl-1, res.at+op.ttl+1
			return "", st.with(op.id, se)
		case res.outcome != OutcomeWritten:
			return fmt.Sprintf("unexpected outcome %v", res.outcome), st
		}
		want := apply(se.vals, op)
		switch {
		case !maps.Equal(res.vals, want):
			return fmt.Sprintf("wrong values: %s wrote %v; its changes %v -%v on %v make %v", op.kind, res.vals, op.sets, op.dels, se.vals, want), st
		case op.kind == "save" && res.id != op.id:
			return "id changed: a Save gave the session another ID", st
		case op.kind == "save" && !changed && want[userCanon] == "" && !(op.reseal && maps.Equal(want, se.vals)):
			return "unchanged rewritten: a Save wrote a session it did not change", st
		case op.kind == "regen" && (res.id == op.id || st.sess[res.id].vals != nil):
			return "id reused: a new ID was issued before", st
		}
		next := written(res.id, want)
		if op.kind == "regen" {
			se.alive = false
			next = next.with(op.id, se)
		}
		return "", next
	}
	return "harness: unknown operation " + op.kind, st
}

var modelSpec = porcupine.Model{
	Init: func() any { return mState{} },
	Step: func(state, in, out any) (bool, any) {
		why, next := state.(mState).step(in.(mOp), out.(mRes))
		return why == "", next
	},
	Equal: func(a, b any) bool { return a.(mState).equal(b.(mState)) },
}

// The run.

// modelRun is one schedule.
type modelRun struct {
	t        *testing.T
	tg       *target
	layout   modelLayout
	seed     uint64
	rng      *rand.Rand // what the requests do; the scheduler has its own
	sched    *scheduler
	stores   []*Store // the same store, renewing as configured and on every Save
	browsers []*mBrowser
	frozen   int64 // miniredis: the server's clock, which only the run moves
	maxAges  []int
	users    []string

	mu    sync.Mutex
	hist  []porcupine.Operation
	fails []string
	notes []string // what happened, for a failure's report
}

// mBrowser is one browser: a cookie jar shared by its tabs, and every
// session cookie it was ever given.
type mBrowser struct {
	jar    *http.Cookie
	ids    []string          // in the order they were issued
	cookie map[string]string // ID -> cookie value
}

// outcomeRec receives a Save's outcome from the store's Observer.
type outcomeRec struct{ outcome Outcome }

type recKey struct{}

func newModelRun(t *testing.T, tg *target, layout modelLayout, seed uint64) *modelRun {
	t.Helper()
	run := &modelRun{t: t, tg: tg, layout: layout, seed: seed,
		rng: rand.New(rand.NewPCG(seed, 0xd1ce)), sched: newScheduler(seed),
		users: []string{"alice", "bob", "carol"}}
	userKey := "user"
	if layout.noUserKey {
		userKey = ""
	}
	cfg := Config{
		Client: schedClient{tg.client}, Mode: layout.mode, FieldTTL: layout.fieldTTL,
		Serializer: layout.serializer, UserKey: userKey,
		// A request waits for its turn inside its calls: on a loaded
		// machine, longer than the suite's usual bound.
		Timeout: time.Minute,
		Observer: ObserverFunc(func(ctx context.Context, e Event) {
			if rec, ok := ctx.Value(recKey{}).(*outcomeRec); ok && e.Op == OpSave {
				rec.outcome = e.Outcome
			}
		}),
	}
	if layout.sealed {
		cfg.EncryptionKeys = [][]byte{testSealKeys[0], testSealKeys[1]}
	}
	run.stores = append(run.stores, newStore(t, tg, cfg))
	cfg.TouchInterval = -1
	if layout.sealed {
		cfg.EncryptionKeys = [][]byte{testSealKeys[1], testSealKeys[0]}
	}
	run.stores = append(run.stores, newStore(t, tg, cfg))
	if tg.mini != nil {
		run.frozen = tg.now().Unix()
		run.maxAges = []int{0, 90, 600, 3600}
	} else {
		run.maxAges = []int{0, 3600, 7200}
	}
	for range 1 + run.rng.IntN(2) {
		run.browsers = append(run.browsers, &mBrowser{cookie: map[string]string{}})
	}
	return run
}

// serverNow is the server's clock in Unix seconds: miniredis's stands still
// unless the run moves it; a real server's is this machine's.
func (run *modelRun) serverNow() int64 {
	if run.tg.mini != nil {
		return run.frozen
	}
	return time.Now().Unix()
}

func (run *modelRun) fail(format string, args ...any) {
	run.mu.Lock()
	defer run.mu.Unlock()
	run.fails = append(run.fails, fmt.Sprintf(format, args...))
}

func (run *modelRun) record(client int, op mOp, res mRes, call, ret int64) {
	run.mu.Lock()
	defer run.mu.Unlock()
	run.hist = append(run.hist, porcupine.Operation{ClientId: client, Input: op, Call: call, Output: res, Return: ret})
}

func (run *modelRun) ttl(maxAge int) int64 {
	if maxAge == 0 {
		return int64(DefaultBrowserSessionTTL / time.Second)
	}
	return int64(maxAge)
}

// schedule runs the schedule: rounds of concurrent requests, each followed
// by the checks between rounds; then the history's check.
func (run *modelRun) schedule() {
	rounds := 3 + run.rng.IntN(4)
	for round := range rounds {
		plans := make([]reqPlan, 2+run.rng.IntN(4))
		for i := range plans {
			plans[i] = run.plan()
		}
		fns := make([]func(context.Context), len(plans))
		for i, p := range plans {
			fns[i] = func(ctx context.Context) { run.request(ctx, 10*round+i, p) }
		}
		if err := run.sched.run(fns); err != nil {
			run.fail("panic: %v", err)
		}
		if len(run.fails) > 0 {
			break
		}
		run.between(round == rounds-1)
		if len(run.fails) > 0 {
			break
		}
	}
	run.checkHistory()
	if *modelVerbose {
		run.report()
	}
}

// action is one thing a request does to its session.
type action struct {
	kind string // set, del, flash, read, user, unuser, nil, maxage
	key  string
	val  any
	age  int
}

// reqPlan is what a request does, drawn before the round runs so that a
// seed replays it.
type reqPlan struct {
	b, store int
	old      int // the cookie: -1 the jar's; else the old cookie with this index (modulo)
	// derive: the request value the handler saves with: 0 the one it
	// loaded with; 1 one derived (r.WithContext, as routers and
	// http.TimeoutHandler do) after a middleware loaded another session;
	// 2 one derived after the load.
	derive int
	first  []action
	end    string   // save, save2, regen, clear, logout, logoutsave, none, delete
	second []action // save2: before the second Save; logoutsave: after the logout
}

func (run *modelRun) plan() reqPlan {
	rng := run.rng
	p := reqPlan{b: rng.IntN(len(run.browsers)), store: rng.IntN(len(run.stores)), old: -1, derive: max(rng.IntN(6)-3, 0)}
	if rng.IntN(6) == 0 {
		p.old = rng.IntN(1 << 20)
	}
	p.first = run.actions(rng.IntN(4))
	ends := []string{"save", "save", "save", "save2", "save2", "regen", "clear", "logout", "logoutsave", "logoutsave", "none", "delete"}
	p.end = ends[rng.IntN(len(ends))]
	switch p.end {
	case "save2":
		p.second = run.actions(rng.IntN(3))
	case "logoutsave":
		// After the logout: MaxAge set again or left at -1, a flash or
		// nothing (a middleware's Save).
		if rng.IntN(2) == 0 {
			p.second = append(p.second, action{kind: "maxage", age: run.maxAges[rng.IntN(len(run.maxAges))]})
		}
		if rng.IntN(4) != 0 {
			p.second = append(p.second, action{kind: "flash", val: fmt.Sprintf("bye%d", rng.IntN(100))})
		}
	}
	return p
}

func (run *modelRun) actions(n int) []action {
	rng := run.rng
	var out []action
	for i := range n {
		keys := []string{"a", "b", "c"}
		var a action
		switch p := rng.IntN(100); {
		case p < 30:
			a = action{kind: "set", key: keys[rng.IntN(len(keys))], val: run.value()}
		case p < 45:
			a = action{kind: "del", key: keys[rng.IntN(len(keys))]}
		case p < 57:
			a = action{kind: "flash", val: fmt.Sprintf("m%d", rng.IntN(100))}
		case p < 67:
			a = action{kind: "read"}
		case p < 82:
			a = action{kind: "user", val: run.users[rng.IntN(len(run.users))]}
		case p < 88:
			a = action{kind: "unuser"}
		case p < 93:
			if i != n-1 {
				continue // an application sets Values to nil last, if at all
			}
			a = action{kind: "nil"}
		default:
			a = action{kind: "maxage", age: run.maxAges[rng.IntN(len(run.maxAges))]}
		}
		out = append(out, a)
	}
	return out
}

// value draws a value for a session key: the same small values again and
// again (so that requests set what another set), NaN, nested maps, and an
// application type holding a map.
func (run *modelRun) value() any {
	rng := run.rng
	switch rng.IntN(8) {
	case 0, 1:
		return rng.IntN(3)
	case 2:
		return fmt.Sprintf("s%d", rng.IntN(3))
	case 3:
		return math.NaN()
	case 4:
		return map[string]any{"n": rng.IntN(2), "in": map[string]any{"x": "y", "z": 1.5}}
	case 5:
		return modelThing{Name: "t", Tags: map[string]int{"a": rng.IntN(2), "b": 1, "c": 2, "d": 3}}
	case 6:
		return []any{rng.IntN(2), "x"}
	}
	if run.layout.serializer == nil {
		return nil // gob cannot encode a nil in Values
	}
	return "nil"
}

// reqState is what a request knows of its session, as the README says
// the store treats it: the ID it holds and what it loaded or last saved.
type reqState struct {
	id     string
	snap   mVals
	maxAge int // Options.MaxAge as loaded or last saved
}

// request runs one request of a tab.
func (run *modelRun) request(ctx context.Context, tab int, p reqPlan) {
	br := run.browsers[p.b]
	s := run.stores[p.store]
	cookie := br.jar
	if p.old >= 0 && len(br.ids) > 0 {
		id := br.ids[p.old%len(br.ids)]
		cookie = &http.Cookie{Name: "sid", Value: br.cookie[id]}
	}
	if p.end == "delete" {
		run.adminDelete(ctx, tab, p, br)
		return
	}
	rec := &outcomeRec{}
	r := httptest.NewRequest("GET", "http://example.test/", nil).WithContext(context.WithValue(ctx, recKey{}, rec))
	id := ""
	if cookie != nil {
		r.AddCookie(cookie)
		var err error
		if id, err = s.SessionID("sid", cookie.Value); err != nil {
			run.fail("harness: a cookie the store issued does not decode: %v", err)
			return
		}
	}
	if p.derive == 1 {
		if _, err := s.Get(r, "prefs"); err != nil {
			run.fail("unexpected error: Get: %v", err)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), derivedKey{}, 1))
	}
	call, at := run.sched.now(), run.serverNow()
	sess, err := s.Get(r, "sid")
	if err != nil {
		run.fail("unexpected error: Get: %v", err)
		return
	}
	if p.derive == 2 {
		r = r.WithContext(context.WithValue(r.Context(), derivedKey{}, 2))
	}
	if id != "" {
		run.record(tab, mOp{b: p.b, tab: tab, kind: "get", id: id, at: at},
			mRes{found: !sess.IsNew, vals: canonValues(sess.Values), at: run.serverNow()}, call, run.sched.now())
	}
	rq := &reqState{id: sess.ID, snap: canonValues(sess.Values), maxAge: sess.Options.MaxAge}
	var jar []*http.Cookie
	run.act(sess, p.first)
	switch p.end {
	case "save", "regen", "clear":
		jar = append(jar, run.save(r, s, sess, rq, p, tab, p.end)...)
	case "save2":
		jar = append(jar, run.save(r, s, sess, rq, p, tab, "save")...)
		run.act(sess, p.second)
		jar = append(jar, run.save(r, s, sess, rq, p, tab, "save")...)
	case "logout", "logoutsave":
		jar = append(jar, run.logout(r, s, sess, rq, p, tab)...)
		if p.end == "logoutsave" {
			run.act(sess, p.second)
			switch {
			case len(sess.Values) == 0 && sess.Options.MaxAge < 0:
				// Nothing set since the logout: it writes nothing.
				jar = append(jar, run.logout(r, s, sess, rq, p, tab)...)
			case len(sess.Values) == 0:
				// The same with MaxAge set again: no cookie either.
				w := httptest.NewRecorder()
				if err := s.Save(r, w, sess); err != nil || sess.ID != "" || len(w.Result().Cookies()) != 0 {
					run.fail("a Save with nothing set after a logout: error %v, an ID %v, cookies %v; want nothing written", err, sess.ID != "", w.Result().Cookies())
				}
			default:
				jar = append(jar, run.save(r, s, sess, rq, p, tab, "save")...)
			}
		}
	}
	run.mu.Lock()
	defer run.mu.Unlock()
	for _, c := range jar {
		if c.MaxAge < 0 {
			br.jar = nil
		} else {
			br.jar = c
		}
	}
}

// derivedKey marks a request value derived by a router.
type derivedKey struct{}

// act does what a request does to its session.
func (run *modelRun) act(sess *sessions.Session, acts []action) {
	for _, a := range acts {
		if sess.Values == nil {
			sess.Values = map[any]any{}
		}
		switch a.kind {
		case "set":
			sess.Values[a.key] = a.val
		case "del":
			delete(sess.Values, a.key)
		case "flash":
			sess.AddFlash(a.val)
		case "read":
			sess.Flashes()
		case "user":
			sess.Values["user"] = a.val
		case "unuser":
			delete(sess.Values, "user")
		case "nil":
			sess.Values = nil
		case "maxage":
			sess.Options.MaxAge = a.age
		}
	}
}

// save runs Save (how: save), RegenerateID (regen) or Save with a cleared
// ID (clear), records it, checks its cookie and returns it.
func (run *modelRun) save(r *http.Request, s *Store, sess *sessions.Session, rq *reqState, p reqPlan, tab int, how string) []*http.Cookie {
	cur := canonValues(sess.Values)
	maxAge := sess.Options.MaxAge
	if maxAge < 0 {
		// Values set after a logout, MaxAge left at its -1: a new
		// session's lifetime (see the README).
		maxAge = max(s.Options.MaxAge, 0)
	}
	op := mOp{b: p.b, tab: tab, kind: "save", id: rq.id, snap: rq.snap, sets: mVals{}, dels: mVals{}, ttl: run.ttl(maxAge), reseal: run.layout.sealed,
		lifetimeSet: maxAge != rq.maxAge}
	for k, v := range cur {
		if was, ok := rq.snap[k]; !ok || was != v {
			op.sets[k] = v
		}
	}
	for k, was := range rq.snap {
		if _, ok := cur[k]; !ok {
			op.dels[k] = was
		}
	}
	flashOf(&op, cur)
	switch {
	case rq.id == "":
		op.kind, op.snap = "create", nil
	case how != "save":
		op.kind = "regen"
	}
	if how == "clear" {
		sess.ID = ""
	}
	rec := r.Context().Value(recKey{}).(*outcomeRec)
	rec.outcome = 0
	w := httptest.NewRecorder()
	call := run.sched.now()
	op.at = run.serverNow()
	var err error
	if how == "regen" {
		err = s.RegenerateID(r, w, sess)
	} else {
		err = s.Save(r, w, sess)
	}
	res := mRes{err: errName(err), outcome: rec.outcome, id: sess.ID, vals: canonValues(sess.Values), at: run.serverNow()}
	run.record(tab, op, res, call, run.sched.now())
	cookies := w.Result().Cookies()
	if err != nil {
		if len(cookies) != 0 {
			run.fail("cookie on failure: a Save that failed (%v) set a cookie", err)
		}
		return nil
	}
	if len(cookies) != 1 || cookies[0].MaxAge < 0 {
		run.fail("bad cookie: a Save set %d cookies (%v)", len(cookies), cookies)
		return nil
	}
	if id, err := s.SessionID("sid", cookies[0].Value); err != nil || id != sess.ID {
		run.fail("bad cookie: a Save's cookie names another session (%v)", err)
		return nil
	}
	run.mu.Lock()
	br := run.browsers[p.b]
	if _, ok := br.cookie[sess.ID]; !ok {
		br.ids = append(br.ids, sess.ID)
	}
	br.cookie[sess.ID] = cookies[0].Value
	run.mu.Unlock()
	rq.id, rq.snap, rq.maxAge = sess.ID, res.vals, sess.Options.MaxAge
	return cookies
}

// logout logs the session out (MaxAge -1 and Save).
func (run *modelRun) logout(r *http.Request, s *Store, sess *sessions.Session, rq *reqState, p reqPlan, tab int) []*http.Cookie {
	sess.Options.MaxAge = -1
	w := httptest.NewRecorder()
	call, at := run.sched.now(), run.serverNow()
	err := s.Save(r, w, sess)
	if rq.id != "" {
		run.record(tab, mOp{b: p.b, tab: tab, kind: "logout", id: rq.id, at: at}, mRes{err: errName(err), at: run.serverNow()}, call, run.sched.now())
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 || cookies[0].MaxAge >= 0 {
		run.fail("bad cookie: a logout set %v", cookies)
	}
	// From here the request holds a new session (see the README).
	rq.id, rq.snap = "", mVals{}
	return cookies
}

// adminDelete ends one of the browser's sessions with Store.Delete.
func (run *modelRun) adminDelete(ctx context.Context, tab int, p reqPlan, br *mBrowser) {
	if len(br.ids) == 0 {
		return
	}
	id := br.ids[(p.old&0xffff)%len(br.ids)]
	call, at := run.sched.now(), run.serverNow()
	err := run.stores[p.store].Delete(ctx, id)
	run.record(tab, mOp{b: p.b, tab: tab, kind: "delete", id: id, at: at}, mRes{err: errName(err), at: run.serverNow()}, call, run.sched.now())
}

func errName(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrEnded):
		return "ended"
	case errors.Is(err, ErrConflict):
		return "conflict"
	}
	return err.Error()
}

// between runs the checks between rounds: every cookie ever issued is
// loaded and looked up, each user's index is compared with the sessions
// holding the user; then users' sessions may be ended, and on miniredis
// the clock may move.
func (run *modelRun) between(last bool) {
	t, s := run.t, run.stores[0]
	ctx := context.Background()
	live := map[string]mVals{} // ID -> values, as loaded now
	owner := map[string]int{}  // ID -> browser
	var exps []int64
	for b, br := range run.browsers {
		for _, id := range br.ids {
			owner[id] = b
			r := httptest.NewRequest("GET", "http://example.test/", nil)
			r.AddCookie(&http.Cookie{Name: "sid", Value: br.cookie[id]})
			call, at := run.sched.tick(), run.serverNow()
			sess, err := s.Get(r, "sid")
			if err != nil {
				run.fail("unexpected error: Get: %v", err)
				return
			}
			vals := canonValues(sess.Values)
			run.record(100, mOp{b: b, kind: "get", id: id, at: at}, mRes{found: !sess.IsNew, vals: vals, at: run.serverNow()}, call, run.sched.tick())
			if !sess.IsNew {
				live[id] = vals
			}
			call, at = run.sched.tick(), run.serverNow()
			info, err := s.Lookup(ctx, id)
			if err != nil {
				run.fail("unexpected error: Lookup: %v", err)
				return
			}
			found := info.Found && !info.Expired
			run.record(100, mOp{b: b, kind: "lookup", id: id, at: at}, mRes{found: found, expires: info.Expires.Unix(), at: run.serverNow()}, call, run.sched.tick())
			if found {
				exps = append(exps, info.Expires.Unix())
			}
		}
	}
	if run.layout.noUserKey {
		if !last && run.tg.mini != nil && run.rng.IntN(3) == 0 {
			run.advance([]int64{5, 40, 100, 700, 4000}[run.rng.IntN(5)], exps)
		}
		return
	}
	ofUser := map[string][]string{} // user -> IDs of the live sessions holding it
	for id, vals := range live {
		for _, u := range run.users {
			if vals[userCanon] == canon(u) {
				ofUser[u] = append(ofUser[u], id)
			}
		}
	}
	for _, u := range run.users {
		list, err := s.UserSessions(ctx, u)
		if err != nil {
			run.fail("unexpected error: UserSessions: %v", err)
			return
		}
		var got, want []string
		for _, us := range list {
			got = append(got, us.Handle)
		}
		for _, id := range ofUser[u] {
			want = append(want, handleOf(id))
		}
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			run.fail("index: UserSessions(%s) lists %d session(s), %d live session(s) hold the user (missing %v, extra %v)",
				u, len(got), len(want), minus(want, got), minus(got, want))
		}
	}
	if last {
		return
	}
	switch p := run.rng.IntN(100); {
	case p < 12:
		u := run.users[run.rng.IntN(len(run.users))]
		n, err := s.DeleteUserSessions(ctx, u)
		if err != nil || n != len(ofUser[u]) {
			run.fail("index: DeleteUserSessions(%s) ended %d (err %v), %d live session(s) held the user", u, n, err, len(ofUser[u]))
		}
		run.endUser(u, "", "")
	case p < 24:
		u := run.users[run.rng.IntN(len(run.users))]
		ids := ofUser[u]
		if len(ids) == 0 {
			break
		}
		slices.Sort(ids)
		id := ids[run.rng.IntN(len(ids))]
		if run.rng.IntN(2) == 0 {
			noErr(t, s.DeleteUserSession(ctx, u, handleOf(id)))
			run.endUser(u, "", id)
		} else {
			n, err := s.DeleteUserSessions(ctx, u, handleOf(id))
			if err != nil || n != len(ids)-1 {
				run.fail("index: DeleteUserSessions(%s, keep one) ended %d (err %v) of %d", u, n, err, len(ids))
			}
			run.endUser(u, id, "")
		}
	}
	if run.tg.mini != nil && run.rng.IntN(3) == 0 {
		run.advance([]int64{5, 40, 100, 700, 4000}[run.rng.IntN(5)], exps)
	}
}

// endUser records that the sessions of user u ended (but keep; or only
// only).
func (run *modelRun) endUser(u, keep, only string) {
	for b := range run.browsers {
		run.record(100, mOp{b: b, kind: "enduser", user: u, keep: keep, only: only}, mRes{}, run.sched.tick(), run.sched.tick())
	}
}

// advance moves miniredis's clock by about d seconds, keeping clear of the
// expiries in exps so that the model knows which sessions ended: by more
// than a round trip may take on a loaded machine, as the store counts a
// session that may have ended during a round trip as ended (and
// miniredis's clock does not move meanwhile).
func (run *modelRun) advance(d int64, exps []int64) {
	const margin = 10
	to := run.frozen + d
	for clash := true; clash; {
		clash = false
		for _, e := range exps {
			if to >= e-margin && to <= e+margin {
				to, clash = e+margin+1, true
			}
		}
	}
	run.tg.advance(run.t, time.Duration(to-run.frozen)*time.Second)
	run.frozen = to
	for b := range run.browsers {
		run.record(100, mOp{b: b, kind: "advance", at: to}, mRes{}, run.sched.tick(), run.sched.tick())
	}
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// checkHistory checks each browser's history for linearizability, and
// explains a failure: the longest prefix the model accepts, and why each
// operation that could come next breaks it.
func (run *modelRun) checkHistory() {
	for b := range run.browsers {
		var h []porcupine.Operation
		for _, op := range run.hist {
			if op.Input.(mOp).b == b {
				h = append(h, op)
			}
		}
		res, info := porcupine.CheckOperationsVerbose(modelSpec, h, time.Minute)
		if res == porcupine.Ok {
			continue
		}
		if res == porcupine.Unknown {
			run.fail("harness: the linearizability check of browser %d timed out", b)
			continue
		}
		run.explain(b, h, info)
	}
}

func (run *modelRun) explain(b int, h []porcupine.Operation, info porcupine.LinearizationInfo) {
	var best []porcupine.Operation
	for _, part := range info.PartialLinearizationsOperations() {
		for _, lin := range part {
			if len(lin) > len(best) {
				best = lin
			}
		}
	}
	st := mState{}
	done := map[string]bool{}
	key := func(op porcupine.Operation) string { return fmt.Sprintf("%d/%d/%d", op.ClientId, op.Call, op.Return) }
	for _, op := range best {
		_, st = st.step(op.Input.(mOp), op.Output.(mRes))
		done[key(op)] = true
	}
	var reasons []string
	horizon := int64(math.MaxInt64)
	for _, op := range h {
		if !done[key(op)] {
			horizon = min(horizon, op.Return)
		}
	}
	for _, op := range h {
		if done[key(op)] || op.Call > horizon {
			continue
		}
		why, _ := st.step(op.Input.(mOp), op.Output.(mRes))
		if why != "" {
			reasons = append(reasons, fmt.Sprintf("%s\n    in: %s", why, describe(op)))
		}
	}
	if len(reasons) == 0 {
		reasons = append(reasons, "harness: no single operation explains the failure")
	}
	run.fail("%s\n  (browser %d; the model accepts %d of its %d operations first)", strings.Join(reasons, "\n"), b, len(best), len(h))
}

// report logs the history, for a failure or -model-verbose.
func (run *modelRun) report() {
	ops := slices.Clone(run.hist)
	slices.SortStableFunc(ops, func(a, b porcupine.Operation) int { return int(a.Call - b.Call) })
	var lines []string
	for _, op := range ops {
		lines = append(lines, describe(op))
	}
	run.t.Logf("seed %d, %s, %d browser(s), history:\n%s", run.seed, run.layout.name, len(run.browsers), strings.Join(lines, "\n"))
}

func describe(op porcupine.Operation) string {
	in, out := op.Input.(mOp), op.Output.(mRes)
	s := fmt.Sprintf("[%d-%d] b%d tab%d %s", op.Call, op.Return, in.b, op.ClientId, in.kind)
	if in.id != "" {
		s += " " + in.id[:6]
	}
	switch in.kind {
	case "get", "lookup":
		s += fmt.Sprintf(" -> found=%v %v", out.found, out.vals)
		if in.kind == "lookup" {
			s += fmt.Sprintf(" expires=%d", out.expires)
		}
	case "save", "regen", "create":
		s += fmt.Sprintf(" snap=%v sets=%v dels=%v ttl=%d -> %s", in.snap, in.sets, in.dels, in.ttl, out.outcome)
		if f := in.flash; f != nil {
			s += fmt.Sprintf(" flashes read %q added %q", f.consumed, f.added)
		}
		if out.err != "" {
			s += " err=" + out.err
		}
		if out.id != "" {
			s += " id=" + out.id[:6]
		}
		s += fmt.Sprintf(" %v", out.vals)
	case "enduser":
		s += " " + in.user
	case "advance":
		s += fmt.Sprintf(" to %d", in.at)
	default:
		if out.err != "" {
			s += " err=" + out.err
		}
	}
	return s
}
