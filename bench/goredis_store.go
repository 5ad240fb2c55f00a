package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/gob"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"github.com/redis/go-redis/v9"
)

// goRedisStore is a plain sessions.Store over go-redis v9 with the design of
// github.com/rbcervilla/redisstore: keys "session:" + ID, an ID of 32 random
// bytes in base32, GET and SET EX of the gob of Values, and a cookie holding
// securecookie.EncodeMulti of the ID. It stands for the many small go-redis
// stores that look like it.
type goRedisStore struct {
	client  redis.UniversalClient
	codecs  []securecookie.Codec
	options sessions.Options
	prefix  string
}

var _ sessions.Store = (*goRedisStore)(nil)

func newGoRedisStore(ctx context.Context, client redis.UniversalClient, keyPairs ...[]byte) (*goRedisStore, error) {
	s := &goRedisStore{
		client:  client,
		codecs:  securecookie.CodecsFromPairs(keyPairs...),
		options: sessions.Options{Path: "/", MaxAge: 86400 * 30},
		prefix:  "session:",
	}
	return s, client.Ping(ctx).Err()
}

func (s *goRedisStore) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(s, name)
}

func (s *goRedisStore) New(r *http.Request, name string) (*sessions.Session, error) {
	session := sessions.NewSession(s, name)
	opts := s.options
	session.Options = &opts
	session.IsNew = true
	c, err := r.Cookie(name)
	if err != nil {
		return session, nil
	}
	if err := securecookie.DecodeMulti(name, c.Value, &session.ID, s.codecs...); err != nil {
		return session, err
	}
	b, err := s.client.Get(r.Context(), s.prefix+session.ID).Bytes()
	if errors.Is(err, redis.Nil) {
		return session, nil
	}
	if err != nil {
		return session, err
	}
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&session.Values); err != nil {
		return session, err
	}
	session.IsNew = false
	return session, nil
}

func (s *goRedisStore) Save(r *http.Request, w http.ResponseWriter, session *sessions.Session) error {
	if session.Options.MaxAge <= 0 {
		if err := s.client.Del(r.Context(), s.prefix+session.ID).Err(); err != nil {
			return err
		}
		http.SetCookie(w, sessions.NewCookie(session.Name(), "", session.Options))
		return nil
	}
	if session.ID == "" {
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return err
		}
		session.ID = strings.TrimRight(base32.StdEncoding.EncodeToString(k), "=")
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(session.Values); err != nil {
		return err
	}
	ttl := time.Duration(session.Options.MaxAge) * time.Second
	if err := s.client.Set(r.Context(), s.prefix+session.ID, buf.Bytes(), ttl).Err(); err != nil {
		return err
	}
	encoded, err := securecookie.EncodeMulti(session.Name(), session.ID, s.codecs...)
	if err != nil {
		return err
	}
	http.SetCookie(w, sessions.NewCookie(session.Name(), encoded, session.Options))
	return nil
}
