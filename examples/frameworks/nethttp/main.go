// Command nethttp keeps its sessions in Redis with gorilla/sessions' own API
// and net/http: a visit counter, and a name-only login that gives the session
// a new ID.
//
//	go run ./nethttp                       # embedded miniredis
//	REDIS_URL=redis://localhost:6379 go run ./nethttp -addr 127.0.0.1:8081
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"strings"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/examples/frameworks/internal/demo"
)

const sessionName = "session"

// newApp serves GET / (count a visit), POST /login (username=...) and POST
// /logout from sessions in store.
func newApp(store *redistore.Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		session, err := store.Get(r, sessionName)
		if err != nil {
			log.Printf("session: %v", err) // session is a usable new one
		}
		n, _ := session.Values["visits"].(int)
		session.Values["visits"] = n + 1
		if err := session.Save(r, w); err != nil {
			http.Error(w, "could not save the session", http.StatusInternalServerError)
			return
		}
		user, _ := session.Values["user"].(string)
		fmt.Fprintf(w, "visits: %d, user: %q\n", n+1, user)
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimSpace(r.PostFormValue("username"))
		if name == "" || len(name) > 64 {
			http.Error(w, "a username is 1 to 64 bytes", http.StatusBadRequest)
			return
		}
		session, _ := store.Get(r, sessionName)
		session.Values["user"] = name
		// A new ID at login: an ID planted or seen before it opens nothing now.
		if err := store.RegenerateID(r, w, session); err != nil {
			http.Error(w, "could not save the session", http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		session, _ := store.Get(r, sessionName)
		session.Options.MaxAge = -1 // delete it from Redis, expire the cookie
		if err := session.Save(r, w); err != nil {
			http.Error(w, "could not delete the session", http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	// Session cookies ride along with cross-site requests: refuse those that
	// would change state (Go 1.25).
	return http.NewCrossOriginProtection().Handler(mux)
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
	log.Fatal(demo.Serve("nethttp", *addr, where, newApp(store)))
}
