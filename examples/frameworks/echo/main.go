// Command echo keeps an Echo application's sessions in Redis through
// echo-contrib's session middleware: a visit counter, a name-only login that
// gives the session a new ID, and a logout.
//
//	go run ./echo                          # embedded miniredis
//	REDIS_URL=redis://localhost:6379 go run ./echo -addr 127.0.0.1:8081
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"strings"

	"github.com/labstack/echo-contrib/session"
	"github.com/labstack/echo/v4"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/examples/frameworks/internal/demo"
)

const sessionName = "session"

// newApp serves GET / (count a visit), POST /login (username=...) and POST
// /logout from sessions in store.
func newApp(store *redistore.Store) *echo.Echo {
	e := echo.New()
	// Session cookies ride along with cross-site requests: refuse those that
	// would change state (Go 1.25).
	e.Use(echo.WrapMiddleware(http.NewCrossOriginProtection().Handler))
	e.Use(session.Middleware(store))

	e.GET("/", func(c echo.Context) error {
		sess, err := session.Get(sessionName, c)
		if err != nil {
			c.Logger().Warnf("session: %v", err) // sess is a usable new one
		}
		n, _ := sess.Values["visits"].(int)
		sess.Values["visits"] = n + 1
		if err := sess.Save(c.Request(), c.Response()); err != nil {
			return echo.NewHTTPError(http.StatusInternalServerError, "could not save the session").SetInternal(err)
		}
		user, _ := sess.Values["user"].(string)
		return c.String(http.StatusOK, fmt.Sprintf("visits: %d, user: %q\n", n+1, user))
	})
	e.POST("/login", func(c echo.Context) error {
		name := strings.TrimSpace(c.FormValue("username"))
		if name == "" || len(name) > 64 {
			return echo.NewHTTPError(http.StatusBadRequest, "a username is 1 to 64 bytes")
		}
		sess, _ := session.Get(sessionName, c)
		sess.Values["user"] = name
		// A new ID at login: echo-contrib has no word for it, the store has.
		if err := store.RegenerateID(c.Request(), c.Response(), sess); err != nil {
			return echo.NewHTTPError(http.StatusInternalServerError, "could not save the session").SetInternal(err)
		}
		return c.Redirect(http.StatusSeeOther, "/")
	})
	e.POST("/logout", func(c echo.Context) error {
		sess, _ := session.Get(sessionName, c)
		sess.Options.MaxAge = -1 // delete it from Redis, expire the cookie
		if err := sess.Save(c.Request(), c.Response()); err != nil {
			return echo.NewHTTPError(http.StatusInternalServerError, "could not delete the session").SetInternal(err)
		}
		return c.Redirect(http.StatusSeeOther, "/")
	})
	return e
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "`host:port` to listen on")
	flag.Parse()
	client, where, closeRedis, err := demo.Redis()
	if err != nil {
		log.Fatal(err)
	}
	defer closeRedis()

	store, err := redistore.New(redistore.Config{
		Client:   client,
		KeyPairs: [][]byte{demo.RandomKey()}, // in production: fixed keys from your secrets
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(demo.Serve("echo", *addr, where, newApp(store)))
}
