package redistore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// saveValue saves one session with values through s, as a new browser.
func saveValue(t testing.TB, s *Store, values map[any]any) *browser {
	t.Helper()
	b := newBrowser()
	sess, r := b.get(t, s, "sid")
	for k, v := range values {
		sess.Values[k] = v
	}
	b.save(t, s, r, sess)
	return b
}

// Rekey seals with the first key every session in clear or sealed by
// another key, keeps each one's TTL, leaves what no key opens, and a second
// pass finds nothing to do; then a ring of the new key alone reads every
// session, and Stats says so.
func TestRekeyResealsEverySession(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		k1, k2, k3 := testSealKeys[0], testSealKeys[1], testSealKeys[2]
		plain := newStore(t, tg, Config{Mode: mode})
		old := newStore(t, tg, Config{Mode: mode, EncryptionKeys: [][]byte{k1}})
		foreign := newStore(t, tg, Config{Mode: mode, EncryptionKeys: [][]byte{k3}})
		rotating := newStore(t, tg, Config{Mode: mode, EncryptionKeys: [][]byte{k2, k1}})
		rotated := newStore(t, tg, Config{Mode: mode, EncryptionKeys: [][]byte{k2}})
		old.Options.MaxAge = 7200

		var browsers []*browser
		for i := range 12 {
			s := old
			if i%4 == 0 {
				s = plain
			}
			browsers = append(browsers, saveValue(t, s, map[any]any{"n": i, "secret": sealMarker}))
		}
		saveValue(t, foreign, map[any]any{"x": 1})
		st, err := rotating.Stats(context.Background(), 100)
		noErr(t, err)
		equal(t, "sealed by k1 before", st.SealedBy[keyID(t, k1)], 9)
		equal(t, "in clear before", st.SealedBy["clear"], 3)
		equal(t, "sealed by a key not in the ring", st.SealedBy[keyID(t, k3)], 1)
		if w := strings.Join(st.Warnings, "\n"); !strings.Contains(w, "not in EncryptionKeys") || !strings.Contains(w, "redistore rekey") || !strings.Contains(w, "in clear") {
			t.Errorf("Stats warnings: %q", w)
		}
		if got := st.String(); !strings.Contains(got, keyID(t, k1)+" 9 (key 2)") {
			t.Errorf("Stats text: %q", got)
		}
		// A store without keys (the command without REDISTORE_ENCRYPTION_KEYS)
		// counts the keys, and raises no alarm it cannot back.
		st, err = plain.Stats(context.Background(), 100)
		noErr(t, err)
		equal(t, "sealed by k1, counted without keys", st.SealedBy[keyID(t, k1)], 9)
		if w := strings.Join(st.Warnings, "\n"); strings.Contains(w, "EncryptionKeys") {
			t.Errorf("Stats without keys warns: %q", w)
		}
		if got := st.String(); strings.Contains(got, "not in the ring") || !strings.Contains(got, "no EncryptionKeys given") {
			t.Errorf("Stats text without keys: %q", got)
		}
		sess, _ := browsers[1].get(t, old, "sid")
		_, before := rawAt(t, old, sess.ID)

		var calls int
		rs, err := rotating.Rekey(context.Background(), func(RekeyStats) { calls++ })
		noErr(t, err)
		equal(t, "re-sealed", rs.Resealed, 12)
		equal(t, "unreadable", rs.Unreadable, 1)
		equal(t, "current", rs.Current, 0)
		equal(t, "sessions", rs.Sessions, 13)
		if calls == 0 {
			t.Error("progress was never called")
		}
		_, after := rawAt(t, old, sess.ID)
		if d := after.left - before.left; d > 2*time.Second || d < -2*time.Second || after.left < time.Hour {
			t.Errorf("TTL before %v, after %v: Rekey does not keep it", before.left, after.left)
		}
		for i, b := range browsers {
			sess, _ := b.get(t, rotated, "sid")
			equal(t, "n after rekey", sess.Values["n"], any(i))
		}
		rs, err = rotating.Rekey(context.Background(), nil)
		noErr(t, err)
		equal(t, "re-sealed by a second pass", rs.Resealed, 0)
		equal(t, "current on a second pass", rs.Current, 12)
		st, err = rotated.Stats(context.Background(), 100)
		noErr(t, err)
		equal(t, "sealed by k2 after", st.SealedBy[keyID(t, k2)], 12)
		equal(t, "in clear after", st.SealedBy["clear"], 0)

		if _, err := plain.Rekey(context.Background(), nil); !errors.Is(err, ErrNoEncryptionKeys) {
			t.Errorf("Rekey without keys: %v", err)
		}
	})
}

// A field TTL (HashMode where the server has them) survives Rekey.
func TestRekeyKeepsFieldTTLs(t *testing.T) {
	t.Parallel()
	forEachTarget(t, func(t *testing.T, tg *target) {
		if !tg.fieldTTLs() {
			t.Skip("no hash-field TTLs on this server")
		}
		tg.prefix = randomPrefix()
		old := newStore(t, tg, Config{FieldTTL: FieldTTLOn, EncryptionKeys: testSealKeys[:1]})
		rotating := newStore(t, tg, Config{FieldTTL: FieldTTLOn, EncryptionKeys: [][]byte{testSealKeys[1], testSealKeys[0]}})
		b := saveValue(t, old, map[any]any{"a": 1})
		sess, _ := b.get(t, old, "sid")
		loc, _ := rawAt(t, old, sess.ID)
		ttl := func() int64 {
			v, err := tg.do(t, "HPTTL", loc.key, "FIELDS", "1", loc.field).ToArray()
			noErr(t, err)
			n, err := v[0].AsInt64()
			noErr(t, err)
			return n
		}
		was := ttl()
		if was <= 0 {
			t.Fatalf("the field has no TTL (%d): the test proves nothing", was)
		}
		rs, err := rotating.Rekey(context.Background(), nil)
		noErr(t, err)
		equal(t, "re-sealed", rs.Resealed, 1)
		if now := ttl(); now <= 0 || now > was {
			t.Fatalf("field TTL %d ms before Rekey, %d after", was, now)
		}
	})
}

// Rekey under concurrent writes loses nothing: requests of instances that
// still seal with the old key increment counters while Rekey passes
// re-seal them; every increment lands, and a final pass leaves every
// session sealed by the new key.
func TestRekeyUnderConcurrentWritesLosesNothing(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		k1, k2 := testSealKeys[0], testSealKeys[1]
		old := newStore(t, tg, Config{Mode: mode, EncryptionKeys: [][]byte{k1, k2}})
		rotating := newStore(t, tg, Config{Mode: mode, EncryptionKeys: [][]byte{k2, k1}})
		rotated := newStore(t, tg, Config{Mode: mode, EncryptionKeys: [][]byte{k2}})
		const clients, increments = 8, 15
		browsers := make([]*browser, clients)
		for i := range browsers {
			browsers[i] = saveValue(t, old, map[any]any{"count": 0})
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		passes := make(chan int, 1)
		go func() {
			n := 0
			defer func() { passes <- n }()
			for ctx.Err() == nil {
				if _, err := rotating.Rekey(ctx, nil); err != nil && ctx.Err() == nil {
					t.Errorf("Rekey: %v", err)
					return
				}
				n++
			}
		}()
		var wg sync.WaitGroup
		for _, b := range browsers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range increments {
					r := b.request()
					sess, err := old.Get(r, "sid")
					if err != nil {
						t.Errorf("Get: %v", err)
						return
					}
					sess.Values["count"] = sess.Values["count"].(int) + 1
					w := httptest.NewRecorder()
					if err := old.Save(r, w, sess); err != nil {
						t.Errorf("Save: %v", err)
						return
					}
				}
			}()
		}
		wg.Wait()
		cancel()
		if n := <-passes; n == 0 {
			t.Log("no Rekey pass completed while the writes ran")
		}
		rs, err := rotating.Rekey(context.Background(), nil)
		noErr(t, err)
		equal(t, "unreadable", rs.Unreadable, 0)
		for _, b := range browsers {
			sess, _ := b.get(t, rotated, "sid")
			equal(t, "count", sess.Values["count"], any(increments))
		}
	})
}

// Devices in users' indexes follow the keys: Rekey seals the devices
// recorded in clear before sealing was turned on, re-seals those of an old
// key so that the ring without it still shows them, and with WriteUnsealed
// writes them in clear again, so that a store without keys shows them.
func TestRekeyResealsDevices(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		k1, k2 := testSealKeys[0], testSealKeys[1]
		ip := func(*http.Request) string { return "198.51.100.7" }
		store := func(keys [][]byte, unsealed bool) *Store {
			return newStore(t, tg, Config{Mode: mode, UserKey: "user", EncryptionKeys: keys, WriteUnsealed: unsealed, ClientIP: ip})
		}
		plain, first, rotating, rotated := store(nil, false), store([][]byte{k1}, false), store([][]byte{k2, k1}, false), store([][]byte{k2}, false)
		b := newBrowser()
		sess, r := b.get(t, plain, "sid")
		sess.Values["user"] = "alice"
		saveFrom(t, plain, b, r, sess, firefoxUA, "1.2.3.4:5")
		if !bytes.Contains(tg.dump(t), []byte("Firefox/133.0")) {
			t.Fatal("the device is not in clear before sealing: the test proves nothing")
		}

		rs, err := first.Rekey(context.Background(), nil)
		noErr(t, err)
		equal(t, "devices sealed", rs.Devices, 1)
		if d := tg.dump(t); bytes.Contains(d, []byte("Firefox/133.0")) || bytes.Contains(d, []byte("198.51.100.7")) {
			t.Fatal("the device is in clear after Rekey")
		}
		sameDevice(t, "sealed by k1", onlySession(t, first, "alice"), firefoxUA, "198.51.100.7")

		rs, err = rotating.Rekey(context.Background(), nil)
		noErr(t, err)
		equal(t, "devices re-sealed", rs.Devices, 1)
		sameDevice(t, "after rotation, without the old key", onlySession(t, rotated, "alice"), firefoxUA, "198.51.100.7")
		rs, err = rotating.Rekey(context.Background(), nil)
		noErr(t, err)
		equal(t, "devices re-sealed by a second pass", rs.Devices, 0)

		rs, err = store([][]byte{k2}, true).Rekey(context.Background(), nil)
		noErr(t, err)
		equal(t, "devices written in clear", rs.Devices, 1)
		sameDevice(t, "unsealed, without keys", onlySession(t, plain, "alice"), firefoxUA, "198.51.100.7")
	})
}

// renewingClient renews the session a Rekey swap is about to replace, as an
// unchanged Save's renewal does (only the expiry in front moves), just
// before each swap reaches the server.
type renewingClient struct {
	rueidis.Client
	n int
}

func (c *renewingClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	a := cmd.Commands()
	if (strings.EqualFold(a[0], "EVALSHA") || strings.EqualFold(a[0], "EVAL")) && a[2] == "1" && (len(a) == 8 || len(a) == 7) {
		key := a[3]
		var get rueidis.Completed
		if len(a) == 8 { // the hash script: KEYS[1] bucket, ARGV field, old, new, n
			get = c.B().Hget().Key(key).Field(a[4]).Build()
		} else {
			get = c.B().Get().Key(key).Build()
		}
		if v, err := c.Client.Do(ctx, get).ToString(); err == nil && len(v) > expiryLen {
			var b [expiryLen]byte
			binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32([]byte(v[:expiryLen]))+1)
			if len(a) == 8 {
				c.Client.Do(ctx, c.B().Hset().Key(key).FieldValue().FieldValue(a[4], string(b[:])+v[expiryLen:]).Build())
			} else {
				c.Client.Do(ctx, c.B().Setrange().Key(key).Offset(0).Value(string(b[:])).Build())
			}
			c.n++
		}
	}
	return c.Client.Do(ctx, cmd)
}

// A renewal between Rekey's read and its write (it rewrites only the expiry
// in front) does not keep the session from being re-sealed, and the
// renewal's expiry stands.
func TestRekeyReSealsASessionRenewedMeanwhile(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		if tg.cluster != nil {
			t.Skip("the injected renewal goes through the store's client; one node shows it")
		}
		old := newStore(t, tg, Config{Mode: mode, EncryptionKeys: [][]byte{testSealKeys[1]}})
		b := saveValue(t, old, map[any]any{"x": 1})
		sess, _ := b.get(t, old, "sid")
		_, before := rawAt(t, old, sess.ID)
		rc := &renewingClient{Client: tg.client}
		cur := newStore(t, tg, Config{Mode: mode, Client: rc, EncryptionKeys: [][]byte{testSealKeys[0], testSealKeys[1]}})
		st, err := cur.Rekey(context.Background(), nil)
		noErr(t, err)
		if rc.n == 0 {
			t.Fatal("no renewal was injected: the test proves nothing")
		}
		equal(t, "re-sealed", st.Resealed, 1)
		equal(t, "busy", st.Busy, 0)
		_, got := rawAt(t, cur, sess.ID)
		equal(t, "sealed by", sealedBy(t, got), keyID(t, testSealKeys[0]))
		equal(t, "the renewals' expiry", expiryOf(got.raw), expiryOf(before.raw).Add(time.Duration(rc.n)*time.Second))
	})
}

// On a server that runs no scripts (Valkey without Lua), Rekey re-seals
// StringMode sessions with compare-and-set.
func TestRekeyWithoutScripting(t *testing.T) {
	t.Parallel()
	tg := casTarget(t)
	old := newStore(t, tg, Config{Mode: StringMode, EncryptionKeys: testSealKeys[1:2]})
	var browsers []*browser
	for i := range 3 {
		browsers = append(browsers, saveValue(t, old, map[any]any{"n": i}))
	}
	// A store that has not read anything yet: Rekey learns what the server
	// does itself.
	rotating := newStore(t, tg, Config{Mode: StringMode, EncryptionKeys: [][]byte{testSealKeys[0], testSealKeys[1]}})
	st, err := rotating.Rekey(context.Background(), nil)
	noErr(t, err)
	equal(t, "re-sealed", st.Resealed, 3)
	rotated := newStore(t, tg, Config{Mode: StringMode, EncryptionKeys: testSealKeys[:1]})
	for i, b := range browsers {
		sess, _ := b.get(t, rotated, "sid")
		equal(t, "n", sess.Values["n"], any(i))
	}
}

// TestRekeyDoesNotEatARenewal: Rekey re-seals a session between a
// request's Get and its unchanged Save, whose renewal is due: the renewal
// still happens (Rekey kept the expiry; it renewed nothing), so the
// session lives MaxAge from that request, not from the one before.
func TestRekeyDoesNotEatARenewal(t *testing.T) {
	t.Parallel()
	miniAndReal(t, func(t *testing.T, tg *target) {
		for _, mode := range []Mode{HashMode, StringMode} {
			t.Run(mode.String(), func(t *testing.T) {
				tg.prefix = randomPrefix()
				oldKey, newKey := testSealKeys[0], testSealKeys[1]
				before := newStore(t, tg, Config{Mode: mode, EncryptionKeys: [][]byte{oldKey}, TouchInterval: -1})
				app := newStore(t, tg, Config{Mode: mode, EncryptionKeys: [][]byte{newKey, oldKey}, TouchInterval: -1})
				b, _ := newSession(t, before, map[any]any{"cart": "2 items"}, 6)
				tg.advance(t, 3*time.Second)
				sess, r := b.get(t, app, "sid")
				st, err := app.Rekey(context.Background(), nil) // the operator's, meanwhile
				noErr(t, err)
				equal(t, "re-sealed", st.Resealed, 1)
				b.save(t, app, r, sess) // unchanged: a renewal is due (TouchInterval -1)
				tg.advance(t, 4*time.Second)
				if sess, _ := b.get(t, app, "sid"); sess.IsNew {
					t.Fatal("the session ended 4 s after a request that renewed it (MaxAge 6 s): Rekey took the renewal")
				}
			})
		}
	})
}
