package redistore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redisession/redistore/internal/envelope"
)

// SessionInfo is what Lookup finds for a session ID.
type SessionInfo struct {
	// Key and Field say where the session lives (Field only in HashMode).
	Key, Field string
	// Found reports whether Redis holds a value there, expired or not.
	Found bool
	// Expired reports that the value's expiry has passed (HashMode values
	// can outlive their expiry until a write or Sweep removes them).
	Expired bool
	// Expires is when the session ends, and Now the time when it was read,
	// both by the server's clock.
	Expires, Now time.Time
	// Codec names the serializer that wrote it: "compact", "gob", "json" or
	// "application".
	Codec string
	// Compressed reports compression (see Compressor); StoredBytes is the value's size
	// in Redis, SerializedBytes the size of the serialized Values.
	Compressed  bool
	StoredBytes int
	// Compressor names the compressor that wrote it ("lz4", "zstd", ...;
	// "none" when stored plain).
	Compressor      string
	SerializedBytes int
	// Started is when the session began, where the store records it
	// (Config.MaxLifetime or Config.UserKey set when it was written).
	Started time.Time
	// Values are the session's values, when they could be decoded.
	Values map[any]any
	// Handle names the session without being a credential, as in
	// UserSession (Sessions only; "" with a custom KeyGenerator, which
	// hides the ID).
	Handle string
	// User is Values[Config.UserKey] as the user index names it (Sessions
	// only; "" without UserKey, or when the values do not decode).
	User string
}

var codecNames = map[byte]string{envelope.CodecCompact: "compact", envelope.CodecGob: "gob", envelope.CodecJSON: "json", envelope.CodecCustom: "application"}

// Lookup reads what the store holds for a session ID without changing
// anything, for support and admin tools: where it lives, when it expires,
// how it is stored, and its values. A session that does not exist gives
// Found false and no error; one that cannot be decoded gives what could be
// learned and the error.
func (s *Store) Lookup(ctx context.Context, id string) (SessionInfo, error) {
	loc, err := s.locate(id)
	if err != nil {
		return SessionInfo{}, err
	}
	info := SessionInfo{Key: loc.key, Field: loc.field}
	ctx, cancel := s.callContext(ctx)
	defer cancel()
	p, err := s.layout.peek(ctx, loc)
	if err != nil {
		return info, redisError("looking up session", err)
	}
	if !p.found {
		return info, nil
	}
	return info, s.describe(&info, loc, p.value, p.now, p.expires)
}

// describe fills in what a stored value v (expiry in front), read at loc at
// the server's time now, says of its session, which ends at expires: for
// Lookup and Sessions.
func (s *Store) describe(info *SessionInfo, loc location, v string, now, expires time.Time) error {
	info.Found, info.Now, info.StoredBytes, info.Expires = true, now, len(v), expires
	if len(v) < expiryLen {
		return fmt.Errorf("%w: %d-byte value has no expiry", ErrCorrupt, len(v))
	}
	env := v[expiryLen:]
	info.Expired = !info.Expires.IsZero() && !info.Expires.After(now)
	values, o, err := s.openValues(env, nil, loc)
	if o.Codec != 0 {
		info.Codec = codecNames[o.Codec]
		info.Compressed = env[0]&envelope.FlagCompressed != 0
		info.Compressor = s.compressorName(v)
		info.SerializedBytes = len(o.Payload)
	}
	if o.Meta.Start != 0 {
		info.Started = time.Unix(o.Meta.Start, 0)
	}
	info.Values = values
	return err
}

// Delete ends one session by its ID, for support and admin tools: it is
// removed from Redis, its cookie opens nothing any more, and a request that
// had loaded it before cannot save it back (its Save returns ErrEnded). A
// malformed ID is ErrInvalidID; an ID the store does not hold (never
// issued, ended already) is not an error.
func (s *Store) Delete(ctx context.Context, id string) error {
	start := s.began()
	err := s.delete(ctx, id)
	s.observe(ctx, OpDelete, start, opInfo{outcome: OutcomeDeleted}, err, nil)
	return err
}

func (s *Store) delete(ctx context.Context, id string) error {
	loc, err := s.locate(id)
	if err != nil {
		return err
	}
	ctx, cancel := s.callContext(ctx)
	defer cancel()
	user := ""
	if s.userKey != "" {
		// Whose it was, to take it off that user's list as well.
		got, err := s.layout.load(ctx, loc)
		if err != nil {
			if err = redisError("loading session", err); !errors.Is(err, ErrCorrupt) {
				return err
			}
			// What is there is not a session (garbage, a key of another type):
			// delete it all the same, with no user to tell.
		}
		if err == nil && got.found {
			_, user, _ = s.ownerOf(got.envelope, loc)
		}
	}
	if err := s.layout.remove(ctx, loc); err != nil {
		return redisError("deleting session", err)
	}
	if user != "" {
		s.dropEntries(ctx, []indexEntry{{s.indexKeyOf(user), rawField(id)}})
	}
	return nil
}

// SessionID returns the session ID in a cookie value the store issued under
// the given cookie name, checked as New checks it. It lets support tools go
// from a cookie to a session without loading it.
func (s *Store) SessionID(name, cookieValue string) (string, error) {
	id, _, err := s.decodeCookie(name, cookieValue)
	if err != nil {
		return "", fmt.Errorf("%w %q: %w", ErrInvalidCookie, name, err)
	}
	if !ValidID(id) {
		return "", ErrInvalidID
	}
	return id, nil
}
