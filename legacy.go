package redistore

import (
	"bytes"
	"context"
	"encoding/gob"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/sessions"

	"github.com/redis/rueidis"
)

// Legacy lets a Store read the sessions of github.com/boj/redistore, so that
// an application can switch stores without logging anyone out. With the same
// KeyPairs and cookie name, a request carrying a boj/redistore cookie gets
// its session, under a new ID; the next Save writes it in this store's
// layout and deletes the legacy key in the same step (in Redis Cluster:
// writes, then deletes). Sessions nobody comes back for expire as
// boj/redistore set them to.
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

// newFromLegacy loads the boj/redistore session with ID lid into session,
// under a new ID that the next Save stores.
func (s *Store) newFromLegacy(r *http.Request, session *sessions.Session, lid string) (*sessions.Session, error) {
	key := s.legacy.KeyPrefix + lid
	ctx, cancel := s.callContext(r.Context())
	payload, left, found, err := s.loadLegacy(ctx, key)
	cancel()
	if err != nil {
		return session, redisError("loading a boj/redistore session", err)
	}
	if !found {
		return session, nil
	}
	if len(payload) > s.maxLength {
		return session, fmt.Errorf("%w: boj/redistore session is %d bytes, over MaxLength %d", ErrTooLarge, len(payload), s.maxLength)
	}
	if b, ok := s.legacy.Serializer.(builtin); ok {
		err = b.decodeString(payload, session.Values)
	} else if err = s.legacy.Serializer.Decode(stringBytes(payload), session.Values); err != nil {
		err = fmt.Errorf("%w: Legacy.Serializer: %w", ErrCorrupt, err)
	}
	if err != nil {
		clear(session.Values)
		return session, err
	}
	session.ID = newID()
	session.IsNew = false
	s.states.set(session, &sessionState{phase: phaseLoaded, id: session.ID, legacyKey: key, legacyRaw: payload, snap: snapshot{stored: stored{left: left}}, maxAge: session.Options.MaxAge})
	return session, nil
}
