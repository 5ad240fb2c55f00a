package redistore

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/sessions"

	"github.com/redis/rueidis"
	"github.com/redisession/redistore/internal/strbytes"
)

// Legacy lets a Store read the sessions of github.com/boj/redistore, so that
// an application can switch stores without logging anyone out. With the same
// KeyPairs and cookie name, a request carrying a boj/redistore cookie gets
// its session, under the ID it moves to (derived from the legacy ID with the
// current hash key, so that concurrent requests of a browser move it to one
// place and merge there); the next Save writes it in this store's layout
// and deletes the legacy key in the same step (in Redis Cluster: writes,
// then deletes). Sessions nobody comes back for expire as boj/redistore set
// them to.
type Legacy struct {
	// KeyPrefix is boj/redistore's key prefix (SetKeyPrefix). Zero means
	// DefaultLegacyKeyPrefix.
	KeyPrefix string
	// Serializer is the one boj/redistore wrote with: GobSerializer (its
	// default, and the zero value here) or JSONSerializer (its
	// JSONSerializer).
	Serializer Serializer
}

// DefaultLegacyKeyPrefix is boj/redistore's default key prefix.
const DefaultLegacyKeyPrefix = "session_"

// legacyIDLength is the length of a boj/redistore ID: 32 random bytes in
// unpadded standard base32.
const legacyIDLength = 52

// validLegacyID reports whether id has the shape of a boj/redistore ID.
func validLegacyID(id string) bool {
	if len(id) != legacyIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < 'A' || c > 'Z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// legacyID returns the ID in a boj/redistore cookie payload: the gob
// encoding of a string (securecookie's default serializer).
func legacyID(raw string) (string, bool) {
	var id string
	if err := gob.NewDecoder(bytes.NewReader([]byte(raw))).Decode(&id); err != nil {
		return "", false
	}
	return id, validLegacyID(id)
}

// loadLegacy reads a boj/redistore session: its serialized Values and how
// long the server keeps it.
func (s *Store) loadLegacy(ctx context.Context, key string) (payload string, left time.Duration, found bool, err error) {
	res := s.client.DoMulti(ctx, s.client.B().Get().Key(key).Build(), s.client.B().Pttl().Key(key).Build())
	v, err := res[0].ToString()
	if rueidis.IsRedisNil(err) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, err
	}
	ms, _ := res[1].AsInt64()
	return v, time.Duration(max(ms, 0)) * time.Millisecond, true, nil
}

// movedID is the ID a boj/redistore session moves to: named by the legacy
// ID and the current hash key, so that concurrent requests of one browser,
// each moving the session, move it to one place (and merge there), and a
// request that comes with the legacy cookie after the move finds the
// session where it went. Nobody without the hash key can tell it from the
// legacy ID.
func (s *Store) movedID(lid string) string {
	m := hmac.New(sha256.New, s.moveKey)
	m.Write([]byte("redistore legacy move\x00" + lid))
	return hex.EncodeToString(m.Sum(nil)[:idBytes])
}

// newFromLegacy loads the boj/redistore session with ID lid into session,
// under the ID it moves to (movedID), which the next Save stores. When
// another request moved it already, it loads it from there.
func (s *Store) newFromLegacy(r *http.Request, session *sessions.Session, lid string) (*sessions.Session, opInfo, error) {
	info := opInfo{outcome: OutcomeMiss}
	key := s.legacy.KeyPrefix + lid
	id := s.movedID(lid)
	loc, err := s.locate(id)
	if err != nil {
		return session, info, err
	}
	ctx, cancel := s.callContext(r.Context())
	payload, left, found, err := s.loadLegacy(ctx, key)
	cancel()
	if err != nil {
		err = redisError("loading a boj/redistore session", err)
		if errors.Is(err, ErrUnavailable) {
			// It may be alive, here or moved (see phaseUnread); a logout
			// deletes both.
			s.states.set(session, &sessionState{phase: phaseUnread, id: id, loc: loc, legacyKey: key})
		} else {
			// A key of another type, which is not a session: a logout
			// deletes it.
			s.states.set(session, &sessionState{unopened: &unopenedSession{id: id, loc: loc, legacyKey: key}})
		}
		return session, info, err
	}
	if !found {
		ctx, cancel := s.callContext(r.Context())
		got, err := s.layout.load(ctx, loc)
		cancel()
		switch {
		case err != nil:
			err = s.loadFailed(session, id, loc, err)
			return session, info, err
		case !got.found:
			return session, info, nil
		}
		return s.loaded(r, session, id, loc, got, "")
	}
	unopened := func() {
		clear(session.Values)
		s.states.set(session, &sessionState{unopened: &unopenedSession{id: id, loc: loc, legacyKey: key}})
	}
	if len(payload) > s.maxLength {
		unopened()
		return session, info, fmt.Errorf("%w: boj/redistore session is %d bytes, over MaxLength %d", ErrTooLarge, len(payload), s.maxLength)
	}
	if err := s.decodeLegacy(payload, session.Values); err != nil {
		unopened()
		return session, info, err
	}
	session.ID = id
	session.IsNew = false
	s.states.set(session, &sessionState{phase: phaseLoaded, id: session.ID, legacyKey: key, legacyRaw: payload, snap: snapshot{stored: stored{left: left}}, maxAge: session.Options.MaxAge})
	info.outcome = OutcomeHit
	return session, info, nil
}

// decodeLegacy decodes a boj/redistore session's values.
func (s *Store) decodeLegacy(payload string, values map[any]any) error {
	if b, ok := s.legacy.Serializer.(builtin); ok {
		return b.decodeString(payload, values)
	}
	if err := s.legacy.Serializer.Decode(strbytes.Bytes(payload), values); err != nil {
		return fmt.Errorf("%w: Legacy.Serializer: %w", ErrCorrupt, err)
	}
	return nil
}

// legacyUser returns the digest of the user of the boj/redistore session
// st loaded, "" when none or its values do not decode.
func (s *Store) legacyUser(st *sessionState) string {
	values := map[any]any{}
	if err := s.decodeLegacy(st.legacyRaw, values); err != nil {
		return ""
	}
	if u, err := s.userOf(values); err == nil && u != "" {
		return userDigest(u)
	}
	return ""
}

// legacyChanges returns what a request did to the values of the
// boj/redistore session it loaded.
func (s *Store) legacyChanges(st *sessionState, values map[any]any) (changes, error) {
	loaded := map[any]any{}
	if err := s.decodeLegacy(st.legacyRaw, loaded); err != nil {
		return changes{}, err
	}
	return diffValues(loaded, values), nil
}
