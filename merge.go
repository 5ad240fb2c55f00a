package redistore

import (
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/gorilla/sessions"
)

// changes are what a request did to a session's values since its
// snapshot (what it loaded or last wrote), key by key: the keys it set or
// changed, with its values, and the keys it deleted, with the values the
// snapshot held. Values are compared with sameValue, so a NaN or a map the
// request never touched is not a change.
type changes struct {
	set, deleted map[any]any
	// flashes: what the request did to the flashes under gorilla's
	// default key (a queue: see flashChange); nil: nothing, or not a
	// []any there.
	flashes *flashChange
}

// flashesKey is the key of gorilla's AddFlash and Flashes without a key
// of their own (and so of gin's, Echo's and Buffalo's flashes).
const flashesKey = "_flash"

// flashChange is what a request did to the flash queue: read the flashes
// it loaded (Flashes takes them all), and added others (AddFlash), in
// either order. Another request's flashes stand whatever this one did:
// a flash is shown at least once.
type flashChange struct {
	consumed []any // the flashes read, as loaded; nil: none read
	kept     []any // the flashes loaded and left in place, when none were read
	added    []any
}

// changesOf returns the changes of values since the request's snapshot.
func (s *Store) changesOf(st *sessionState, values map[any]any) (changes, error) {
	loaded := map[any]any{}
	if st.phase == phaseNew {
		return diffValues(loaded, values), nil // nothing stored: every key is set
	}
	if _, err := s.decode(st.snap.codec, st.snap.payload, loaded); err != nil {
		return changes{}, err
	}
	return diffValues(loaded, values), nil
}

// diffValues returns the changes that make loaded values.
func diffValues(loaded, values map[any]any) changes {
	ch := changes{set: map[any]any{}, deleted: map[any]any{}}
	for k, v := range values {
		if was, ok := loaded[k]; !ok || !sameValue(was, v) {
			ch.set[k] = v
		}
	}
	for k, was := range loaded {
		if _, ok := values[k]; !ok {
			ch.deleted[k] = was
		}
	}
	if fc, ok := flashDiff(loaded, values); ok {
		delete(ch.set, flashesKey)
		delete(ch.deleted, flashesKey)
		ch.flashes = &fc
	}
	return ch
}

// containsRun reports whether q holds run, in order and together.
func containsRun(q, run []any) bool {
	if len(run) == 0 {
		return false
	}
	for i := 0; i+len(run) <= len(q); i++ {
		if sameValue(q[i:i+len(run):i+len(run)], run) {
			return true
		}
	}
	return false
}

// flashDiff returns what a request did to the flash queue, if it changed
// it and both what it loaded and what it holds are flash lists ([]any, or
// none). A queue that still begins with the loaded flashes had flashes
// added; any other was read (and perhaps had flashes added after).
func flashDiff(loaded, values map[any]any) (flashChange, bool) {
	lv, lok := loaded[flashesKey]
	nv, nok := values[flashesKey]
	l, lq := lv.([]any)
	n, nq := nv.([]any)
	switch {
	case !lok && !nok, lok && !lq, nok && !nq:
		return flashChange{}, false
	case lok && nok && sameValue(lv, nv):
		return flashChange{}, false
	case len(l) <= len(n) && sameValue(n[:len(l):len(l)], l):
		return flashChange{kept: l, added: n[len(l):]}, true
	}
	return flashChange{consumed: l, added: n}, true
}

// merge applies a request's changes to what another request stored
// meanwhile (current), so that concurrent requests keep each other's
// changes:
//   - a key set or changed takes this request's value;
//   - a key deleted is deleted only if it still holds what the snapshot
//     held: when another request set or changed it meanwhile, that value
//     stands;
//   - the flashes under gorilla's default key are a queue: the flashes
//     this request read leave it (if it still begins with them), those it
//     added go at its end, and those another request added meanwhile stay
//     (a flash may be shown twice, never lost);
//   - every other key keeps the value stored now.
//
// The changes are the same on every attempt of a Save, however many other
// writes it meets. session.Values becomes the merged values, and the
// snapshot what is stored now: the next attempt expects to find it.
func (s *Store) merge(st *sessionState, session *sessions.Session, current stored, ch changes) error {
	now, o, err := s.openValues(current.envelope, nil, st.loc)
	if err != nil {
		return err
	}
	snap := s.snapshotOf(current, o, now)
	for k, v := range ch.set {
		now[k] = v
	}
	for k, was := range ch.deleted {
		if v, ok := now[k]; ok && sameValue(v, was) {
			delete(now, k)
		}
	}
	if fc := ch.flashes; fc != nil {
		// The queue stored now, less the flashes this request read if it
		// still begins with them, then the flashes it added.
		q, _ := now[flashesKey].([]any)
		if n := len(fc.consumed); n > 0 && len(q) >= n && sameValue(q[:n:n], fc.consumed) {
			q = q[n:]
		}
		// Where this request's own write, whose answer was lost, landed,
		// its flashes are there already: after the ones it loaded and
		// left, and perhaps before others added since.
		after := q
		if k := len(fc.kept); k > 0 && len(q) >= k && sameValue(q[:k:k], fc.kept) {
			after = q[k:]
		}
		if landed := st.unanswered && containsRun(after, fc.added); !landed {
			q = append(slices.Clip(q), fc.added...)
		}
		if len(q) == 0 {
			delete(now, flashesKey)
		} else {
			now[flashesKey] = q
		}
	}
	clear(session.Values)
	for k, v := range now {
		session.Values[k] = v
	}
	if start := st.snap.meta.Start; start != 0 && (snap.meta.Start == 0 || start < snap.meta.Start) {
		snap.meta.Start = start // the session began when it began, whoever wrote last
	}
	st.snap = snap
	return nil
}

// sameValues reports whether two sessions' values are the same, key by
// key (sameValue).
func sameValues(a, b map[any]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok || !sameValue(va, vb) {
			return false
		}
	}
	return true
}

// sameValue reports whether a request left a value as it was: deep
// equality as reflect.DeepEqual has it, but reflexive for every value the
// serializers carry, and exact about what they keep. A NaN equals a NaN
// (DeepEqual says a value holding one differs from itself, so an untouched
// NaN would count as a change), -0 differs from 0, and times are equal when
// they are the same instant in the same zone offset (a decoded time.Time
// has a Location of its own).
func sameValue(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if va.Type() != vb.Type() {
		return false
	}
	return deepSame(va, vb, map[visit]bool{}, 0)
}

// visit is a pair of references being compared, so that cycles end.
type visit struct {
	a, b uintptr
	typ  reflect.Type
}

var timeType = reflect.TypeFor[time.Time]()

// deepSame is sameValue on reflect values of one type.
func deepSame(a, b reflect.Value, seen map[visit]bool, depth int) bool {
	if depth > 100 {
		return false // deeper than any session value that encodes
	}
	if a.Type() == timeType && a.CanInterface() && b.CanInterface() {
		ta, tb := a.Interface().(time.Time), b.Interface().(time.Time)
		_, oa := ta.Zone()
		_, ob := tb.Zone()
		return ta.Equal(tb) && oa == ob
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		v := visit{a.Pointer(), b.Pointer(), a.Type()}
		if v.a == v.b && a.Kind() != reflect.Slice {
			return true
		}
		if seen[v] {
			return true
		}
		seen[v] = true
	}
	switch a.Kind() {
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	case reflect.Float32, reflect.Float64:
		return sameFloat(a.Float(), b.Float())
	case reflect.Complex64, reflect.Complex128:
		ca, cb := a.Complex(), b.Complex()
		return sameFloat(real(ca), real(cb)) && sameFloat(imag(ca), imag(cb))
	case reflect.String:
		return a.String() == b.String()
	case reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		ea, eb := a.Elem(), b.Elem()
		return ea.Type() == eb.Type() && deepSame(ea, eb, seen, depth+1)
	case reflect.Pointer:
		return deepSame(a.Elem(), b.Elem(), seen, depth+1)
	case reflect.Array, reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !deepSame(a.Index(i), b.Index(i), seen, depth+1) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for it := a.MapRange(); it.Next(); {
			vb := b.MapIndex(it.Key())
			if !vb.IsValid() || !deepSame(it.Value(), vb, seen, depth+1) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := range a.NumField() {
			if !deepSame(a.Field(i), b.Field(i), seen, depth+1) {
				return false
			}
		}
		return true
	case reflect.Func:
		return a.IsNil() && b.IsNil()
	}
	// Channels and unsafe pointers: the same one.
	return a.Pointer() == b.Pointer()
}

// sameFloat: the same number, as the serializers keep it: a NaN is a NaN,
// and -0 is not 0 (a request that changed one to the other changed it).
func sameFloat(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || math.IsNaN(a) && math.IsNaN(b)
}
