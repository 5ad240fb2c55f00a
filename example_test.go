package redistore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/rueidis"

	"github.com/redisession/redistore"
)

// Example counts a visitor's requests in a session kept in Redis. An embedded
// miniredis stands in for Redis; with a real server, build the client with
// redistore.NewClient("redis://localhost:6379") instead.
func Example() {
	mr, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	client, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       []string{mr.Addr()},
		DisableCache:      true, // miniredis has no client-side caching
		ForceSingleClient: true, // and answers CLUSTER SLOTS as if it were a cluster
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	store, err := redistore.New(redistore.Config{
		Client:   client,
		KeyPairs: [][]byte{[]byte("a 32-byte hash key, from secrets")},
	})
	if err != nil {
		log.Fatal(err)
	}

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		session, err := store.Get(r, "session")
		if err != nil {
			// A bad cookie or a Redis failure: session is a usable new one.
			log.Printf("session: %v", err)
		}
		n, _ := session.Values["visits"].(int)
		session.Values["visits"] = n + 1
		if err := session.Save(r, w); err != nil {
			http.Error(w, "could not save the session", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "visits: %d", n+1)
	})

	var cookie *http.Cookie
	for i := 0; i < 3; i++ {
		r := httptest.NewRequest("GET", "/", nil)
		if cookie != nil {
			r.AddCookie(cookie)
		}
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		cookie = w.Result().Cookies()[0]
		fmt.Println(w.Body.String())
	}
	// Output:
	// visits: 1
	// visits: 2
	// visits: 3
}

// miniClient connects to a fresh miniredis for the examples below.
func miniClient() (rueidis.Client, *miniredis.Miniredis) {
	mr, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	client, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress: []string{mr.Addr()}, DisableCache: true, ForceSingleClient: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	return client, mr
}

// visit runs one request through the store and returns the cookie it sets.
func visit(store *redistore.Store, cookie *http.Cookie, set map[string]any) *http.Cookie {
	r := httptest.NewRequest("GET", "/", nil)
	if cookie != nil {
		r.AddCookie(cookie)
	}
	session, _ := store.Get(r, "session")
	for k, v := range set {
		session.Values[k] = v
	}
	w := httptest.NewRecorder()
	if err := session.Save(r, w); err != nil {
		log.Fatal(err)
	}
	return w.Result().Cookies()[0]
}

// StringMode keeps each session under its own key, with the key's TTL as its
// expiry.
func ExampleConfig_stringMode() {
	client, mr := miniClient()
	defer mr.Close()
	defer client.Close()

	store, err := redistore.New(redistore.Config{
		Client:    client,
		KeyPairs:  [][]byte{[]byte("a 32-byte hash key, from secrets")},
		Mode:      redistore.StringMode,
		KeyPrefix: "myapp:session:",
	})
	if err != nil {
		log.Fatal(err)
	}
	visit(store, nil, map[string]any{"user": "alice"})

	for _, key := range mr.Keys() {
		fmt.Printf("%s<16 raw bytes> type=%s ttl=%v\n",
			key[:len("myapp:session:")], mr.Type(key), mr.TTL(key))
	}
	// Output:
	// myapp:session:<16 raw bytes> type=string ttl=720h0m0s
}

// Custom key generators decide where a session lives. They receive only valid
// IDs (32 lowercase hex digits) and must return keys under KeyPrefix; here,
// readable keys and 4096 buckets instead of the default 65536.
func ExampleConfig_keyGenerators() {
	client, mr := miniClient()
	defer mr.Close()
	defer client.Close()

	store, err := redistore.New(redistore.Config{
		Client:    client,
		KeyPairs:  [][]byte{[]byte("a 32-byte hash key, from secrets")},
		KeyPrefix: "s:",
		HashKeyGenerator: func(id string) (string, error) {
			return "s:" + id[:3], nil // 16^3 = 4096 buckets
		},
		KeyGenerator: func(id string) (string, error) {
			return id, nil // the field: the ID as it is
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	visit(store, nil, map[string]any{"user": "alice"})

	for _, key := range mr.Keys() {
		fields, _ := mr.HKeys(key)
		fmt.Printf("bucket %d bytes, %d field of %d bytes\n", len(key), len(fields), len(fields[0]))
	}
	// Output:
	// bucket 5 bytes, 1 field of 32 bytes
}

// JSONSerializer stores Values as JSON, readable by other languages. Keys must
// be strings, and numbers come back as float64.
func ExampleJSONSerializer() {
	client, mr := miniClient()
	defer mr.Close()
	defer client.Close()

	store, err := redistore.New(redistore.Config{
		Client:     client,
		KeyPairs:   [][]byte{[]byte("a 32-byte hash key, from secrets")},
		Mode:       redistore.StringMode,
		Serializer: redistore.JSONSerializer{},
	})
	if err != nil {
		log.Fatal(err)
	}
	visit(store, nil, map[string]any{"user": "alice", "visits": 1})

	for _, key := range mr.Keys() {
		v, _ := mr.Get(key)
		// The expiry (4 bytes), two header bytes (format version, codec),
		// then the JSON.
		fmt.Printf("% x | %s\n", v[4:6], strings.TrimSpace(v[6:]))
	}
	// Output:
	// 10 03 | {"user":"alice","visits":1}
}

// A negative CompressMinLength turns LZ4 compression off, for sessions known
// to be small or incompressible.
func ExampleConfig_compressionOff() {
	client, mr := miniClient()
	defer mr.Close()
	defer client.Close()

	store, err := redistore.New(redistore.Config{
		Client:            client,
		KeyPairs:          [][]byte{[]byte("a 32-byte hash key, from secrets")},
		Mode:              redistore.StringMode,
		CompressMinLength: -1,
	})
	if err != nil {
		log.Fatal(err)
	}
	visit(store, nil, map[string]any{"note": strings.Repeat("compressible ", 100)})

	for _, key := range mr.Keys() {
		v, _ := mr.Get(key)
		fmt.Printf("compressed: %v, %d bytes\n", v[4]&1 == 1, len(v))
	}
	// Output:
	// compressed: false, 1316 bytes
}

// NewClient connects from a URL, as the SERVER setting of other session
// stores does: redis://, rediss:// (TLS), unix:// and the Sentinel form.
func ExampleNewClient() {
	mr, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	client, err := redistore.NewClient("redis://" + mr.Addr() + "/0")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	store, err := redistore.New(redistore.Config{
		Client:   client,
		KeyPairs: [][]byte{[]byte("a 32-byte hash key, from secrets")},
	})
	if err != nil {
		log.Fatal(err)
	}
	visit(store, nil, map[string]any{"user": "alice"})
	fmt.Println("sessions stored:", len(mr.Keys()))
	// Output:
	// sessions stored: 1
}

// RegenerateID at login gives the session a new ID and deletes the old one, so
// that a session ID planted or seen before login opens nothing afterwards.
func ExampleStore_RegenerateID() {
	client, mr := miniClient()
	defer mr.Close()
	defer client.Close()
	store, err := redistore.New(redistore.Config{
		Client:   client,
		KeyPairs: [][]byte{[]byte("a 32-byte hash key, from secrets")},
	})
	if err != nil {
		log.Fatal(err)
	}
	before := visit(store, nil, map[string]any{"cart": 3})

	login := httptest.NewRequest("POST", "/login", nil)
	login.AddCookie(before)
	session, _ := store.Get(login, "session")
	session.Values["user"] = "alice"
	w := httptest.NewRecorder()
	if err := store.RegenerateID(login, w, session); err != nil {
		log.Fatal(err)
	}
	after := w.Result().Cookies()[0]

	for _, c := range []*http.Cookie{before, after} {
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(c)
		s, _ := store.Get(r, "session")
		fmt.Printf("new=%v user=%v cart=%v\n", s.IsNew, s.Values["user"], s.Values["cart"])
	}
	// Output:
	// new=true user=<nil> cart=<nil>
	// new=false user=alice cart=3
}

// A support tool ends one session by its ID; a request that had loaded the
// session before cannot save it back.
func ExampleStore_Delete() {
	client, mr := miniClient()
	defer mr.Close()
	defer client.Close()
	store, err := redistore.New(redistore.Config{
		Client:   client,
		KeyPairs: [][]byte{[]byte("a 32-byte hash key, from secrets")},
	})
	if err != nil {
		log.Fatal(err)
	}
	cookie := visit(store, nil, map[string]any{"user": "alice"})
	id, err := store.SessionID("session", cookie.Value)
	if err != nil {
		log.Fatal(err)
	}

	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(cookie)
	inFlight, _ := store.Get(r, "session") // loaded before the Delete

	if err := store.Delete(context.Background(), id); err != nil {
		log.Fatal(err)
	}
	inFlight.Values["user"] = "mallory"
	err = store.Save(r, httptest.NewRecorder(), inFlight)
	fmt.Println("late save ended:", errors.Is(err, redistore.ErrEnded))

	r = httptest.NewRequest("GET", "/", nil)
	r.AddCookie(cookie)
	s, _ := store.Get(r, "session")
	fmt.Printf("new=%v user=%v\n", s.IsNew, s.Values["user"])
	// Output:
	// late save ended: true
	// new=true user=<nil>
}

// A user signed in on two devices signs out the other one, then, after a
// password change, every device.
func ExampleStore_DeleteUserSessions() {
	client, mr := miniClient()
	defer mr.Close()
	defer client.Close()
	store, err := redistore.New(redistore.Config{
		Client:   client,
		KeyPairs: [][]byte{[]byte("a 32-byte hash key, from secrets")},
		UserKey:  "user", // Values["user"] holds the signed-in user's ID
	})
	if err != nil {
		log.Fatal(err)
	}
	laptop := visit(store, nil, map[string]any{"user": "alice"})
	visit(store, nil, map[string]any{"user": "alice"}) // her phone
	visit(store, nil, map[string]any{"user": "bob"})

	ctx := context.Background()
	list, _ := store.UserSessions(ctx, "alice")
	fmt.Println("alice's devices:", len(list))

	// On the laptop: "sign out all other devices".
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(laptop)
	session, _ := store.Get(r, "session")
	n, _ := store.DeleteUserSessions(ctx, "alice", store.Handle(session))
	list, _ = store.UserSessions(ctx, "alice")
	fmt.Println("signed out:", n, "left:", len(list), "this one:", list[0].Handle == store.Handle(session))

	// After a password change: everywhere.
	n, _ = store.DeleteUserSessions(ctx, "alice")
	bobs, _ := store.UserSessions(ctx, "bob")
	fmt.Println("signed out:", n, "bob's devices:", len(bobs))
	// Output:
	// alice's devices: 2
	// signed out: 1 left: 1 this one: true
	// signed out: 1 bob's devices: 1
}

// An admin page counts who is signed in, then ends every session of one
// tenant's users.
func ExampleStore_Sessions() {
	client, mr := miniClient()
	defer mr.Close()
	defer client.Close()
	store, err := redistore.New(redistore.Config{
		Client:   client,
		KeyPairs: [][]byte{[]byte("a 32-byte hash key, from secrets")},
		UserKey:  "user",
	})
	if err != nil {
		log.Fatal(err)
	}
	visit(store, nil, map[string]any{"user": "acme:alice"})
	visit(store, nil, map[string]any{"user": "acme:bob"})
	visit(store, nil, map[string]any{"user": "initech:carol"})
	visit(store, nil, map[string]any{"cart": 2}) // not signed in

	ctx := context.Background()
	signedIn, anonymous := 0, 0
	for info, err := range store.Sessions(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		if info.User != "" {
			signedIn++
		} else {
			anonymous++
		}
	}
	fmt.Println("signed in:", signedIn, "anonymous:", anonymous)

	n, err := store.DeleteSessions(ctx, func(info redistore.SessionInfo) bool {
		return strings.HasPrefix(info.User, "acme:")
	})
	if err != nil {
		log.Fatal(err)
	}
	carol, _ := store.UserSessions(ctx, "initech:carol")
	fmt.Println("ended:", n, "carol's sessions:", len(carol))
	// Output:
	// signed in: 3 anonymous: 1
	// ended: 2 carol's sessions: 1
}

// A "your devices" page: each session with the browser and the address
// that signed it in (Config.ClientIP, here the host part of RemoteAddr)
// and when it was last active.
func ExampleStore_UserSessions() {
	client, mr := miniClient()
	defer mr.Close()
	defer client.Close()
	store, err := redistore.New(redistore.Config{
		Client:   client,
		KeyPairs: [][]byte{[]byte("a 32-byte hash key, from secrets")},
		UserKey:  "user",
		ClientIP: func(r *http.Request) string {
			host, _, _ := net.SplitHostPort(r.RemoteAddr) // no proxy in front
			return host
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/login", nil)
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")
	r.RemoteAddr = "192.0.2.7:51234"
	session, _ := store.Get(r, "session")
	session.Values["user"] = "alice"
	if err := session.Save(r, httptest.NewRecorder()); err != nil {
		log.Fatal(err)
	}

	list, _ := store.UserSessions(context.Background(), "alice")
	for _, us := range list {
		fmt.Println(us.UserAgent)
		fmt.Println(us.IP, "this device:", us.Handle == store.Handle(session), "seen:", !us.LastSeen.IsZero())
	}
	// Output:
	// Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0
	// 192.0.2.7 this device: true seen: true
}
