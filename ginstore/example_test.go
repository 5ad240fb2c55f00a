package ginstore_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/alicebob/miniredis/v2"
	"github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
	"github.com/redis/rueidis"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/ginstore"
)

// Example counts a visitor's requests in a Gin application. An embedded
// miniredis stands in for Redis; with a real server, build the client with
// redistore.NewClient("redis://localhost:6379") instead.
func Example() {
	mr, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	client, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress: []string{mr.Addr()}, DisableCache: true, ForceSingleClient: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	rs, err := redistore.New(redistore.Config{
		Client:   client,
		KeyPairs: [][]byte{[]byte("a 32-byte hash key, from secrets")},
	})
	if err != nil {
		log.Fatal(err)
	}
	store := ginstore.New(rs)
	store.Options(sessions.Options{Path: "/", MaxAge: 3600, HttpOnly: true, SameSite: http.SameSiteLaxMode})

	r := gin.New()
	r.Use(sessions.Sessions("session", store))
	r.GET("/", func(c *gin.Context) {
		session := sessions.Default(c)
		n, _ := session.Get("visits").(int)
		session.Set("visits", n+1)
		if err := session.Save(); err != nil {
			c.String(http.StatusInternalServerError, "could not save the session")
			return
		}
		c.String(http.StatusOK, "visits: %d", n+1)
	})

	var cookie *http.Cookie
	for i := 0; i < 3; i++ {
		req := httptest.NewRequest("GET", "/", nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		cookie = w.Result().Cookies()[0]
		fmt.Printf("%s (cookie Max-Age %d)\n", w.Body, cookie.MaxAge)
	}
	// Output:
	// visits: 1 (cookie Max-Age 3600)
	// visits: 2 (cookie Max-Age 3600)
	// visits: 3 (cookie Max-Age 3600)
}
