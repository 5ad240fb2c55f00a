package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"time"

	bojstore "github.com/boj/redistore"
	"github.com/gorilla/sessions"
	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/redisession/redistore"
)

// cookieName is the session cookie of every contender.
const cookieName = "sid"

// userValueKey is the Values key the -users contenders index sessions by
// (Config.UserKey): one of the payload's int values.
const userValueKey = "k2"

// contenderNames lists every contender, in report order. boj is the baseline.
var contenderNames = []string{"hash", "string", "hash-users", "string-users", "hash-sealed", "string-sealed", "hash-plain", "hash-zstd", "hash-zstd-better", "boj", "goredis", "raw"}

const baseline = "boj"

// contenderLabels are the names the report uses.
var contenderLabels = map[string]string{
	"hash":   "redistore HashMode",
	"string": "redistore StringMode",
	// With Config.UserKey: every session is indexed under its user.
	"hash-users":   "redistore HashMode, UserKey",
	"string-users": "redistore StringMode, UserKey",
	// With Config.EncryptionKeys: values sealed at rest.
	"hash-sealed":   "redistore HashMode, sealed",
	"string-sealed": "redistore StringMode, sealed",
	// Compressors: none, and zstd at two levels, beside "hash" (LZ4).
	"hash-plain":       "redistore HashMode, no compression",
	"hash-zstd":        "redistore HashMode, zstd fastest",
	"hash-zstd-better": "redistore HashMode, zstd better",
	"boj":              "boj/redistore v1.4.1",
	"goredis":          "go-redis v9 store",
	"raw":              "raw rueidis GET+SET",
}

// contender is one way of serving a session request: a sessions.Store, or
// (raw) a bare GET and SET EX of the same bytes with no session layer.
type contender struct {
	name  string
	label string
	store sessions.Store // nil for raw
	raw   rueidis.Client // raw only
	close func()
}

// contenderConfig is what building the contenders needs.
type contenderConfig struct {
	addr     string   // Redis host:port
	keyPairs [][]byte // cookie keys, the same for every store
	bojPool  int      // boj/redistore's pool size (redigo MaxIdle)
	fieldTTL redistore.FieldTTL
}

func newContender(ctx context.Context, name string, cfg contenderConfig) (*contender, error) {
	c := &contender{name: name, label: contenderLabels[name]}
	switch name {
	case "hash", "string", "hash-users", "string-users", "hash-sealed", "string-sealed", "hash-plain", "hash-zstd", "hash-zstd-better":
		client, err := redistore.NewClient("redis://" + cfg.addr)
		if err != nil {
			return nil, err
		}
		mode := redistore.HashMode
		if name == "string" || name == "string-users" || name == "string-sealed" {
			mode = redistore.StringMode
		}
		userKey := ""
		if name == "hash-users" || name == "string-users" {
			userKey = userValueKey
		}
		// Timeout: the report measures throughput, not the deadline; a loaded
		// machine stalls a write of a million past the default second.
		rc := redistore.Config{Client: client, KeyPairs: cfg.keyPairs, Mode: mode, FieldTTL: cfg.fieldTTL, UserKey: userKey, Timeout: 10 * time.Second}
		switch name {
		case "hash-sealed", "string-sealed":
			rc.EncryptionKeys = [][]byte{benchSealKey}
		case "hash-plain":
			rc.CompressMinLength = -1
		case "hash-zstd", "hash-zstd-better":
			level := redistore.ZstdFastest
			if name == "hash-zstd-better" {
				level = redistore.ZstdBetter
			}
			if rc.Compressor, err = redistore.Zstd(level); err != nil {
				client.Close()
				return nil, err
			}
		}
		st, err := redistore.New(rc)
		if err != nil {
			client.Close()
			return nil, err
		}
		c.store, c.close = st, client.Close
	case "boj":
		st, err := bojstore.NewRediStore(cfg.bojPool, "tcp", cfg.addr, "", "", cfg.keyPairs...)
		if err != nil {
			if st != nil {
				st.Close()
			}
			return nil, fmt.Errorf("boj/redistore: %w", err)
		}
		// Its default limit, 4096 bytes, refuses the 8 KB sessions; use the
		// limit the other stores have (64 KiB).
		st.SetMaxLength(64 << 10)
		c.store, c.close = st, func() { st.Close() }
	case "goredis":
		client := redis.NewClient(&redis.Options{Addr: cfg.addr})
		st, err := newGoRedisStore(ctx, client, cfg.keyPairs...)
		if err != nil {
			client.Close()
			return nil, fmt.Errorf("go-redis: %w", err)
		}
		c.store, c.close = st, func() { client.Close() }
	case "raw":
		client, err := redistore.NewClient("redis://" + cfg.addr)
		if err != nil {
			return nil, err
		}
		c.raw, c.close = client, client.Close
	default:
		return nil, fmt.Errorf("unknown contender %q: use one of %v", name, contenderNames)
	}
	return c, nil
}

// rawPrefix namespaces the raw contender's keys.
const rawPrefix = "raw:"

// rawTTL is the expiry of raw keys, the stores' default.
const rawTTL = 86400 * 30

// errSessionLost is a request that found no session behind its cookie.
var errSessionLost = errors.New("the cookie's session was not found")

// create saves a new session holding p's Values and returns its cookie, as
// a browser's first request would get it.
func (c *contender) create(p *payload) (*http.Cookie, error) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	w := httptest.NewRecorder()
	if c.store == nil {
		var b [16]byte
		rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		cmd := c.raw.B().Set().Key(rawPrefix + id).Value(rueidis.BinaryString(p.gob)).ExSeconds(rawTTL).Build()
		if err := c.raw.Do(ctx, cmd).Error(); err != nil {
			return nil, err
		}
		return &http.Cookie{Name: cookieName, Value: id}, nil
	}
	s, err := c.store.Get(r, cookieName)
	if err != nil {
		return nil, err
	}
	s.Values = p.copyValues()
	if strings.HasSuffix(c.name, "-users") {
		// A user of its own per session, in place of an int of the same
		// size: the index then holds one entry per user, as on a site.
		s.Values[userValueKey] = mrand.IntN(1 << 30)
	}
	if err := c.store.Save(r, w, s); err != nil {
		return nil, err
	}
	ck := setCookie(w)
	if ck == nil || ck.Value == "" {
		return nil, errors.New("Save set no session cookie")
	}
	return ck, nil
}

// request serves one request carrying the cookie *ck: load the session,
// check it holds want values (raw: want bytes), and for read-modify-write
// set the counter to n and save. *ck becomes the cookie the response sets,
// as a browser's jar would.
func (c *contender) request(ck **http.Cookie, rmw bool, n, want int) error {
	r := newRequest(*ck)
	w := httptest.NewRecorder()
	if c.store == nil {
		return c.rawRequest(r, w, ck, rmw, n, want)
	}
	s, err := c.store.Get(r, cookieName)
	if err != nil {
		return err
	}
	if s.IsNew {
		return errSessionLost
	}
	if len(s.Values) != want {
		return fmt.Errorf("session holds %d values, want %d", len(s.Values), want)
	}
	if !rmw {
		return nil
	}
	s.Values[counterKey] = n
	if err := c.store.Save(r, w, s); err != nil {
		return err
	}
	if nc := setCookie(w); nc != nil {
		*ck = nc
		return nil
	}
	return errors.New("Save set no session cookie")
}

func (c *contender) rawRequest(r *http.Request, w http.ResponseWriter, ck **http.Cookie, rmw bool, n, want int) error {
	cookie, err := r.Cookie(cookieName)
	if err != nil {
		return err
	}
	key := rawPrefix + cookie.Value
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	b, err := c.raw.Do(ctx, c.raw.B().Get().Key(key).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return errSessionLost
	}
	if err != nil {
		return err
	}
	if len(b) != want {
		return fmt.Errorf("value is %d bytes, want %d", len(b), want)
	}
	if !rmw {
		return nil
	}
	b[len(b)-1] = byte(n)
	cmd := c.raw.B().Set().Key(key).Value(rueidis.BinaryString(b)).ExSeconds(rawTTL).Build()
	if err := c.raw.Do(ctx, cmd).Error(); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: cookie.Value, Path: "/", MaxAge: rawTTL,
		HttpOnly: true, SameSite: http.SameSiteLaxMode})
	*ck = setCookie(w)
	return nil
}

// remove deletes the session behind ck the way an application logs a user
// out: MaxAge -1 and Save.
func (c *contender) remove(ck *http.Cookie) error {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(ck)
	w := httptest.NewRecorder()
	if c.store == nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		return c.raw.Do(ctx, c.raw.B().Del().Key(rawPrefix+ck.Value).Build()).Error()
	}
	s, err := c.store.Get(r, cookieName)
	if err != nil {
		return err
	}
	if s.IsNew {
		return errSessionLost
	}
	s.Options.MaxAge = -1
	if err := c.store.Save(r, w, s); err != nil {
		return err
	}
	if nc := setCookie(w); nc == nil || nc.MaxAge >= 0 {
		return errors.New("deleting Save did not expire the cookie")
	}
	return nil
}

// setCookie returns the session cookie a response sets, as a browser reads
// it, or nil.
// requestURL is the URL of every request: read-only, so shared.
var requestURL = &url.URL{Path: "/"}

// newRequest is a request as net/http's server hands it to a handler, with
// the browser's session cookie. It is built directly: httptest.NewRequest
// parses request text with a fresh 4 KB reader each time, a cost no real
// server pays per request and one that would weigh on every contender alike.
func newRequest(ck *http.Cookie) *http.Request {
	return &http.Request{
		Method: http.MethodGet, URL: requestURL, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:     http.Header{"Cookie": {ck.Name + "=" + ck.Value}},
		Host:       "bench.test",
		RemoteAddr: "192.0.2.1:1234",
		RequestURI: "/",
	}
}

func setCookie(w http.ResponseWriter) *http.Cookie {
	for _, line := range w.Header().Values("Set-Cookie") {
		ck, err := http.ParseSetCookie(line)
		if err == nil && ck.Name == cookieName {
			return &http.Cookie{Name: ck.Name, Value: ck.Value, MaxAge: ck.MaxAge}
		}
	}
	return nil
}

// wantOf is what request checks a loaded session against.
func (c *contender) wantOf(p *payload) int {
	if c.store == nil {
		return len(p.gob)
	}
	return len(p.values)
}

func itoa(n int) string { return strconv.Itoa(n) }

// benchSealKey seals the sealed contenders' values: a fixed key, as the
// figures do not depend on it.
var benchSealKey = []byte("redistore benchmark sealing key.")
