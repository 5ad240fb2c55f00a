// Command quickstart is the README's Quick start: a net/http application
// whose sessions live in Redis, with a login that gives the session a new
// ID and a logout.
//
//	REDIS_URL=redis://localhost:6379 SESSION_KEY=$(openssl rand -hex 32) go run ./examples/quickstart
package main

import (
	"encoding/hex"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/redisession/redistore"
)

func main() {
	// The URL a go-redis application already has works as it is.
	client, err := redistore.NewClient(os.Getenv("REDIS_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	key, err := hex.DecodeString(os.Getenv("SESSION_KEY")) // 32 random bytes, from a secret store
	if err != nil {
		log.Fatal("SESSION_KEY: 64 hex digits, from openssl rand -hex 32")
	}
	store, err := redistore.New(redistore.Config{Client: client, KeyPairs: [][]byte{key}, UserKey: "user"})
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.ListenAndServe("localhost:8080", routes(store)))
}

func routes(store *redistore.Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		session, err := store.Get(r, "session")
		if err != nil {
			// A bad cookie or a Redis failure: session is a usable new one.
			log.Printf("session: %v", err)
		}
		user, _ := session.Values["user"].(string)
		n, _ := session.Values["visits"].(int)
		session.Values["visits"] = n + 1
		if err := session.Save(r, w); err != nil {
			http.Error(w, "could not save the session", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "user %q, visit %d\n", user, n+1)
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		session, _ := store.Get(r, "session")
		session.Values["user"] = r.FormValue("user") // once the password checked out
		// A new ID at login: an ID planted or seen before is worth nothing.
		if err := store.RegenerateID(r, w, session); err != nil {
			http.Error(w, "could not sign in", http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		session, _ := store.Get(r, "session")
		session.Options.MaxAge = -1 // deleted in Redis; the cookie expires
		if err := session.Save(r, w); err != nil {
			http.Error(w, "could not sign out", http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	// Refuses cross-site POSTs (CSRF) by the browser's Sec-Fetch-Site header.
	return http.NewCrossOriginProtection().Handler(mux)
}
