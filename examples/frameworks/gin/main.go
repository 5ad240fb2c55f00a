// Command gin keeps a Gin application's sessions in Redis through
// gin-contrib/sessions and the ginstore adapter: a visit counter, a name-only
// login that gives the session a new ID, a logout, and cookies that last a
// week instead of redistore's default 30 days.
//
//	go run ./gin                           # embedded miniredis
//	REDIS_URL=redis://localhost:6379 go run ./gin -addr 127.0.0.1:8081
package main

import (
	"flag"
	"log"
	"net/http"
	"strings"

	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/examples/frameworks/internal/demo"
	"github.com/redisession/redistore/ginstore"
)

const sessionName = "session"

// sessionOptions are the app's cookie options. MaxAge is also how long Redis
// keeps an idle session.
var sessionOptions = sessions.Options{
	Path:     "/",
	MaxAge:   7 * 24 * 3600, // a week
	HttpOnly: true,
	SameSite: http.SameSiteLaxMode,
	// Secure: true, when served over HTTPS.
}

// newApp serves GET / (count a visit), POST /login (username=...) and POST
// /logout from sessions in rs, whose cookie options it sets to
// sessionOptions.
func newApp(rs *redistore.Store) *gin.Engine {
	store := ginstore.New(rs)
	store.Options(sessionOptions)

	r := gin.Default()
	// Session cookies ride along with cross-site requests: refuse those that
	// would change state (Go 1.25).
	cop := http.NewCrossOriginProtection()
	r.Use(func(c *gin.Context) {
		if err := cop.Check(c.Request); err != nil {
			c.AbortWithStatus(http.StatusForbidden)
		}
	})
	r.Use(sessions.Sessions(sessionName, store))

	r.GET("/", func(c *gin.Context) {
		session := sessions.Default(c) // load errors are logged by gin-contrib
		n, _ := session.Get("visits").(int)
		session.Set("visits", n+1)
		if err := session.Save(); err != nil {
			c.String(http.StatusInternalServerError, "could not save the session")
			return
		}
		user, _ := session.Get("user").(string)
		c.String(http.StatusOK, "visits: %d, user: %q\n", n+1, user)
	})
	r.POST("/login", func(c *gin.Context) {
		name := strings.TrimSpace(c.PostForm("username"))
		if name == "" || len(name) > 64 {
			c.String(http.StatusBadRequest, "a username is 1 to 64 bytes")
			return
		}
		session := sessions.Default(c)
		session.Set("user", name)
		// gin-contrib's Session cannot change its ID; the store can, on
		// the very session sessions.Default(c) wraps.
		if err := store.RegenerateID(c, session); err != nil {
			c.String(http.StatusInternalServerError, "could not save the session")
			return
		}
		c.Redirect(http.StatusSeeOther, "/")
	})
	r.POST("/logout", func(c *gin.Context) {
		session := sessions.Default(c)
		// Session.Options replaces every option: keep them all (the Path, or
		// the browser is told to expire a cookie of another path; HttpOnly,
		// SameSite and Secure, which the expiring cookie carries too) and
		// change only MaxAge.
		logout := sessionOptions
		logout.MaxAge = -1
		session.Options(logout)
		if err := session.Save(); err != nil {
			c.String(http.StatusInternalServerError, "could not delete the session")
			return
		}
		c.Redirect(http.StatusSeeOther, "/")
	})
	return r
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "`host:port` to listen on")
	flag.Parse()
	client, where, closeRedis, err := demo.Redis()
	if err != nil {
		log.Fatal(err)
	}
	defer closeRedis()

	rs, err := redistore.New(redistore.Config{
		Client:   client,
		KeyPairs: [][]byte{demo.RandomKey()}, // in production: fixed keys from your secrets
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(demo.Serve("gin", *addr, where, newApp(rs)))
}
