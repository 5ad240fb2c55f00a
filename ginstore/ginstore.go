// Package ginstore keeps the sessions of a Gin application in Redis: it
// adapts a *redistore.Store to the Store interface of
// github.com/gin-contrib/sessions.
//
//	store := ginstore.New(rs) // rs from redistore.New
//	r := gin.Default()
//	r.Use(sessions.Sessions("session", store))
//	r.GET("/", func(c *gin.Context) {
//		session := sessions.Default(c)
//		n, _ := session.Get("visits").(int)
//		session.Set("visits", n+1)
//		if err := session.Save(); err != nil { ... }
//		c.String(http.StatusOK, "visits: %d", n+1)
//	})
//
// Everything else behaves as redistore documents it: the cookie carries only
// the signed session ID, the values stay in Redis, and Store.Options.MaxAge
// is also how long the server keeps a session. It is a module of its own so
// that only Gin applications depend on Gin.
package ginstore

import (
	"errors"
	"net/http"

	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
	gsessions "github.com/gorilla/sessions"

	"github.com/redisession/redistore"
)

// Store is a gin-contrib/sessions Store whose sessions live in a
// *redistore.Store. Get, New and Save are the redistore Store's own; Options
// sets its cookie options. A Store is safe for concurrent use, Options
// excepted.
type Store struct {
	rs *redistore.Store
}

var _ sessions.Store = (*Store)(nil)

// New returns a Store that keeps its sessions in rs. It panics if rs is nil,
// as a misconfigured program should fail at startup, not on the first request.
func New(rs *redistore.Store) *Store {
	if rs == nil {
		panic("ginstore: New(nil): pass the *redistore.Store that redistore.New returned")
	}
	return &Store{rs: rs}
}

// Redistore returns the underlying store, for what gin-contrib/sessions has
// no word for: Sweep, Stats, Lookup, UserSessions. For RegenerateID at
// login, use Store.RegenerateID, and Gorilla for the session a request's
// gin-contrib session wraps.
func (s *Store) Redistore() *redistore.Store { return s.rs }

// RegenerateID gives the session (sessions.Default(c), or
// sessions.DefaultMany(c, name)) a new ID at login, after the user is set
// in it: the session is saved under the new ID, the old ID is deleted in
// the same step, and the cookie is set, as redistore.Store.RegenerateID
// does. It works on the very session gin-contrib holds, whatever
// c.Request is by then (a middleware may have replaced it with a derived
// request, which store.Get(c.Request, name) would load a second copy
// from).
func (s *Store) RegenerateID(c *gin.Context, session sessions.Session) error {
	gs := Gorilla(session)
	if gs == nil {
		return errors.New("ginstore: RegenerateID: the session is not one gin-contrib/sessions made")
	}
	return s.rs.RegenerateID(c.Request, c.Writer, gs)
}

// Gorilla returns the *sessions.Session (gorilla's) that a gin-contrib
// session wraps, loading it if the request has not yet, or nil for a
// Session that gin-contrib/sessions did not make. What redistore asks of
// a session (Handle, for a devices page) takes this one.
func Gorilla(session sessions.Session) *gsessions.Session {
	if gs, ok := session.(interface{ Session() *gsessions.Session }); ok {
		return gs.Session()
	}
	return nil
}

// Get returns the named session of the request, as redistore.Store.Get: a
// usable session always, plus an error when the cookie or the stored session
// could not be read.
func (s *Store) Get(r *http.Request, name string) (*gsessions.Session, error) {
	return s.rs.Get(r, name)
}

// New loads the named session of the request afresh, as redistore.Store.New.
func (s *Store) New(r *http.Request, name string) (*gsessions.Session, error) {
	return s.rs.New(r, name)
}

// Save writes the session to Redis and sets its cookie, as
// redistore.Store.Save; MaxAge < 0 deletes it.
func (s *Store) Save(r *http.Request, w http.ResponseWriter, session *gsessions.Session) error {
	return s.rs.Save(r, w, session)
}

// Options replaces the cookie options of the sessions loaded or created from
// now on (redistore.Store.Options); sessions already in hand keep theirs.
// Every field of o is copied: Path, Domain, MaxAge, Secure, HttpOnly and
// SameSite, so a zero field means its zero value, not "unchanged".
// Partitioned, which gin-contrib's Options does not have, keeps the value set
// on the redistore Store. MaxAge is also how long the server keeps a session
// (Config.BrowserSessionTTL when it is 0); a negative MaxAge here would make
// every Save delete its session: to log one user out, set it on that
// session, with sessions.Default(c).Options.
//
// Call it while setting up, before the Store serves requests: like
// gorilla's stores, it does not synchronise with requests in flight.
func (s *Store) Options(o sessions.Options) {
	var partitioned bool
	if s.rs.Options != nil {
		partitioned = s.rs.Options.Partitioned
	}
	// A new value rather than a change in place, so that nothing holding
	// the old pointer sees it change under it.
	s.rs.Options = &gsessions.Options{
		Path:        o.Path,
		Domain:      o.Domain,
		MaxAge:      o.MaxAge,
		Secure:      o.Secure,
		HttpOnly:    o.HttpOnly,
		SameSite:    o.SameSite,
		Partitioned: partitioned,
	}
}
