package redistore

import (
	"reflect"

	"github.com/gorilla/sessions"
)

// merge applies this request's changes to what another request stored
// meanwhile (current), so that concurrent requests keep each other's
// changes. The changes are what session.Values holds relative to what this
// request loaded, key by key: a key set or changed here takes this
// request's value, a key deleted here is deleted, and every other key keeps
// the value stored now. session.Values becomes the merged values, and
// current becomes what the next attempt expects to find.
func (s *Store) merge(st *sessionState, session *sessions.Session, current stored) error {
	loaded := map[any]any{}
	if err := s.decode(st.codec, st.payload, loaded); err != nil {
		return err
	}
	now, o, err := s.openValues(current.envelope, nil)
	if err != nil {
		return err
	}
	for k, v := range session.Values {
		if was, ok := loaded[k]; !ok || !reflect.DeepEqual(was, v) {
			now[k] = v
		}
	}
	for k := range loaded {
		if _, ok := session.Values[k]; !ok {
			delete(now, k)
		}
	}
	clear(session.Values)
	for k, v := range now {
		session.Values[k] = v
	}
	start := st.meta.start
	st.opened(o)
	if start != 0 && (st.meta.start == 0 || start < st.meta.start) {
		st.meta.start = start // the session began when it began, whoever wrote last
	}
	st.user, _ = s.userOf(now)
	st.loaded = current
	return nil
}
