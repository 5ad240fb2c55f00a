package redistore

import (
	"math"
	"reflect"
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
}

// changesOf returns the changes of values since the request's snapshot.
func (s *Store) changesOf(st *sessionState, values map[any]any) (changes, error) {
	loaded := map[any]any{}
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
	return ch
}

// merge applies a request's changes to what another request stored
// meanwhile (current), so that concurrent requests keep each other's
// changes:
//   - a key set or changed takes this request's value;
//   - a key deleted is deleted only if it still holds what the snapshot
//     held: when another request set or changed it meanwhile, that value
//     stands (so a flash added meanwhile survives this request's reading
//     its own flashes: it may be shown twice, never lost);
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
