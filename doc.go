// Package redistore keeps gorilla/sessions sessions in Redis, through the
// rueidis client.
//
// # Using it
//
// A Store is a sessions.Store: an application that uses gorilla/sessions
// (directly, or through Echo's, Gin's or Buffalo's session support) changes
// the line that builds its store and nothing else.
//
//	client, err := redistore.NewClient("redis://localhost:6379")
//	...
//	store, err := redistore.New(redistore.Config{
//		Client:   client,
//		KeyPairs: [][]byte{hashKey, blockKey}, // as sessions.NewCookieStore
//	})
//	...
//	session, err := store.Get(r, "session")
//	session.Values["user"] = "alice"
//	err = session.Save(r, w)
//
// The cookie holds only the session's ID: 128 random bits, signed with the
// hash key and, when a block key is given, encrypted. The session's values
// stay in Redis. When a user logs in, call Store.RegenerateID instead of Save
// (or RegenerateOnSave, where a framework saves the session), so that an ID
// known before login is worth nothing after it. To log out, set
// session.Options.MaxAge to -1 and save: the session is deleted in Redis,
// and, as with Django's flush, the *sessions.Session becomes a new, empty
// session for the rest of the request (ID cleared, Values emptied: read
// what you need before logging out). The logout consumes MaxAge -1: a later
// Save in the same request with values set since (a flash saying "you are
// logged out", a sign-in as someone else) stores them under a new ID with
// the store's Options.MaxAge, unless the request set another; a later Save
// with nothing set writes nothing. The old ID opens nothing, ever.
//
// Get follows gorilla's contract: it always returns a usable session. A
// request without a cookie, or whose session has expired, gets a new session
// and no error; a cookie that does not decode (ErrInvalidCookie), a malformed
// ID (ErrInvalidID), an unreadable value in Redis (ErrCorrupt,
// ErrUnknownFormat, ErrTooLarge) or a Redis failure (ErrUnavailable) gets a
// new session and an error, which a handler may log and otherwise ignore.
// A new session gets a fresh ID when it is first saved; the store never takes
// an ID from a cookie whose session it does not hold.
//
// # Layouts
//
// In HashMode, the default, sessions are fields of Config.Buckets Redis
// hashes ("buckets", 65536 by default), chosen by the top bits of the ID. Many small sessions
// then share the per-key overhead of Redis, which saves memory as long as the
// hashes keep Redis's compact listpack encoding: raise hash-max-listpack-value
// above your largest session (the default, 64 bytes, is smaller than most
// sessions). Redis cannot expire a field before version 7.4, so each value
// starts with its expiry, checked on every read against the Redis server's
// clock, and each bucket's own TTL outlasts every session in it.
//
// Expired sessions are therefore removed by the writes into their bucket (a bucket remembers a time at or before its
// earliest expiry, and a write that finds it passed cleans the bucket, or one
// bounded chunk of a large one, in the same atomic step), by
// Redis itself where it has field TTLs (HEXPIRE), and by Store.Sweep, an
// optional full pass. The redistore command (cmd/redistore) sweeps, reports
// Stats, checks the server's configuration, inspects one session, lists and
// ends users' sessions or every session, and re-seals sessions with a new
// key.
//
// In StringMode each session is a key of its own and Redis expires it.
//
// # Expiry
//
// The server decides when a session ends: Options.MaxAge seconds after its
// last write (BrowserSessionTTL when MaxAge is 0, for cookies that last as
// long as the browser session). The cookie codec has no age limit of its own,
// so changing MaxAge never makes valid cookies fail to decode. Save does not
// rewrite a session that did not change; it renews the expiry once it has
// slipped by Config.TouchInterval (at most a tenth of MaxAge).
//
// # Concurrent requests and ended sessions
//
// What a request holds for its session is one small state: new, loaded,
// written by this request, or ended. A Save of a loaded or written session
// writes only if that session is still stored as the request last saw it
// (as it loaded it, or as its own previous Save wrote it), checked by the
// server in the same step as the write. If another request changed it
// meanwhile, Save merges this request's changes into what is stored now
// and tries again, up to MaxMergeAttempts times, then returns ErrConflict:
// a key this request set or changed takes its value; a key it deleted is
// deleted only if it still holds what the request had, so a value another
// request set meanwhile stands; the flashes under gorilla's default key
// are a queue, so a flash another request added meanwhile is never lost,
// whatever this one read or added; every other key keeps what is stored. Values compare by content, a NaN equal to a NaN. So a second
// Save in the same request (a handler's, then gorilla's sessions.Save in a
// middleware) writes only what changed since the first. A renewal of an
// unchanged session is conditional in the same way. If the session ended
// meanwhile (logged out, given a new ID, revoked, expired), Save writes
// nothing, sets no cookie and returns ErrEnded, and so does every later
// Save of that request: a request in flight cannot bring an ended session
// back.
//
// # Users' sessions and lifetime
//
// With Config.UserKey naming the Values key that holds the signed-in user's
// ID, Save keeps an index of each user's sessions: UserSessions lists the
// live ones (by Handle, a name that is not a credential), DeleteUserSession
// signs out one, and DeleteUserSessions all but the handles given ("log out
// everywhere" with none). Each session listed tells the User-Agent (and,
// with Config.ClientIP, the address) of the request that signed it in, and
// when it was last seen. The index is written with the session, before it,
// so it never misses a live session, and it expires by itself. With
// Config.MaxLifetime, a session ends that long after it began however
// active it is; RegenerateID keeps its start.
//
// For an admin page, Sessions walks every session of the store (a Go
// iterator: range over it, break to stop), each with its handle and user,
// and DeleteSessions ends those a function picks, each only if it is still
// what the function was shown.
//
// # Values
//
// CompactSerializer, the default, stores the common types (strings, numbers,
// bools, []byte, time.Time, and slices and maps of them) in a compact binary
// form and anything else through encoding/gob, so the usual gob.Register rule
// applies to custom types. GobSerializer and JSONSerializer are provided;
// values written by any of the three stay readable when Config.Serializer
// changes. Serialized sessions of CompressMinLength bytes or more are
// compressed when that makes them shorter: with LZ4 unless Config.Compressor
// names zstd (Zstd) or an application's Compressor. With
// Config.EncryptionKeys, they are then sealed (XChaCha20-Poly1305, bound to
// where they are stored), so that what Redis holds, its backups and
// replicas say nothing of them; Store.Rekey re-seals every session with a
// new key.
//
// # Moving from boj/redistore
//
// With Config.Legacy set, a Store also reads the sessions boj/redistore wrote
// (same key pairs, same cookie name) and moves each one into its own layout
// the next time it is saved, so switching stores logs nobody out.
//
// # Failures
//
// Every Redis call is bounded by Config.Timeout inside the request's context
// (each attempt of a Save that merges is a call of its own): with Redis down
// or stalled, Get and Save return ErrUnavailable within it.
//
// # Further reading
//
// The README is the front page; each topic has a page of its own beside it:
// [Storage layout and expiry], [Concurrent requests and security],
// [Users' sessions], [Operations] (the redistore command),
// [Redis Cluster and Sentinel], [Servers] (what the store uses on Redis 6 to
// 8 and Valkey 8 and 9), [Compression], [Metrics and tracing],
// [Sealed values], [Performance], [Scaling] (100 million sessions), [Frameworks],
// [Moving from boj/redistore] and [Testing].
//
// [Storage layout and expiry]: https://github.com/redisession/redistore/blob/main/docs/layout-and-expiry.md
// [Concurrent requests and security]: https://github.com/redisession/redistore/blob/main/docs/concurrency-and-security.md
// [Users' sessions]: https://github.com/redisession/redistore/blob/main/docs/users.md
// [Operations]: https://github.com/redisession/redistore/blob/main/docs/operations.md
// [Redis Cluster and Sentinel]: https://github.com/redisession/redistore/blob/main/docs/cluster-and-sentinel.md
// [Servers]: https://github.com/redisession/redistore/blob/main/docs/servers.md
// [Sealed values]: https://github.com/redisession/redistore/blob/main/docs/sealing.md
// [Compression]: https://github.com/redisession/redistore/blob/main/docs/compression.md
// [Metrics and tracing]: https://github.com/redisession/redistore/blob/main/docs/metrics.md
// [Performance]: https://github.com/redisession/redistore/blob/main/docs/performance.md
// [Scaling]: https://github.com/redisession/redistore/blob/main/docs/scaling.md
// [Frameworks]: https://github.com/redisession/redistore/blob/main/docs/frameworks.md
// [Moving from boj/redistore]: https://github.com/redisession/redistore/blob/main/docs/migration.md
// [Testing]: https://github.com/redisession/redistore/blob/main/docs/testing.md
package redistore
