package redistore

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redisession/redistore/internal/envelope"
	"github.com/redisession/redistore/internal/seal"
)

// sealMarker is a value no byte string of which may appear in Redis when
// sessions are sealed.
const sealMarker = "SEALMARKER-7f3a9c"

// dump returns every key under the test's prefix and every byte stored
// there, as redis-cli would read them, from every primary.
func (tg *target) dump(t testing.TB) []byte {
	t.Helper()
	var out bytes.Buffer
	for _, c := range tg.primaries(t) {
		cursor := uint64(0)
		for {
			e, err := c.Do(context.Background(), c.B().Scan().Cursor(cursor).Match(tg.prefix+"*").Count(1000).Build()).AsScanEntry()
			noErr(t, err)
			for _, key := range e.Elements {
				out.WriteString(key)
				kind, err := c.Do(context.Background(), c.B().Type().Key(key).Build()).ToString()
				noErr(t, err)
				switch kind {
				case "string":
					v, err := c.Do(context.Background(), c.B().Get().Key(key).Build()).ToString()
					noErr(t, err)
					out.WriteString(v)
				case "hash":
					m, err := c.Do(context.Background(), c.B().Hgetall().Key(key).Build()).AsStrMap()
					noErr(t, err)
					for f, v := range m {
						out.WriteString(f)
						out.WriteString(v)
					}
				default:
					t.Fatalf("key of type %s under the prefix", kind)
				}
			}
			if cursor = e.Cursor; cursor == 0 {
				break
			}
		}
	}
	return out.Bytes()
}

// rawAt returns the value stored for a session, as the layout reads it.
func rawAt(t testing.TB, s *Store, id string) (location, stored) {
	t.Helper()
	loc, err := s.locate(id)
	noErr(t, err)
	got, err := s.layout.load(context.Background(), loc)
	noErr(t, err)
	if !got.found {
		t.Fatal("the session is not stored")
	}
	return loc, got
}

// putRaw stores raw as the value at loc, keeping the key's TTL.
func putRaw(t testing.TB, tg *target, loc location, raw string) {
	t.Helper()
	if loc.field != "" {
		noErr(t, tg.do(t, "HSET", loc.key, loc.field, raw).Error())
		return
	}
	noErr(t, tg.do(t, "SET", loc.key, raw, "KEEPTTL").Error())
}

// sealedBy returns the fingerprint (hex) of the key that sealed the value
// of a session, "" when it is stored in clear.
func sealedBy(t testing.TB, got stored) string {
	t.Helper()
	h, err := envelope.ReadHeader(got.envelope)
	noErr(t, err)
	return hex.EncodeToString([]byte(h.KeyID()))
}

func keyID(t testing.TB, key []byte) string {
	t.Helper()
	r, err := seal.NewRing([][]byte{key})
	noErr(t, err)
	return r.ID(0)
}

// With EncryptionKeys, what Redis holds of a session (every key and value
// under the prefix, the user index included) contains no byte string of its
// values, small or compressed, and the session reads back.
func TestSealedSessionsHoldNothingInClear(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode, UserKey: "user", EncryptionKeys: testSealKeys[:1],
			ClientIP: func(*http.Request) string { return "198.51.100.23" }})
		b := newBrowser()
		r := b.request()
		r.Header.Set("User-Agent", "Browser/1.0 (UAMARKER-5e1d)")
		sess, err := s.Get(r, "sid")
		noErr(t, err)
		sess.Values["secret"] = sealMarker
		sess.Values["user"] = "alice-" + sealMarker
		sess.Values["cart"] = []string{sealMarker, sealMarker + "-2"}
		sess.Values["notes"] = strings.Repeat(sealMarker+" ", 200) // compressed, then sealed
		b.save(t, s, r, sess)
		_, got := rawAt(t, s, sess.ID)
		equal(t, "sealed by", sealedBy(t, got), keyID(t, testSealKeys[0]))
		if len(got.envelope) > 2000 {
			t.Errorf("a sealed session of 3.6 KB compressible values is %d bytes: sealed before compression?", len(got.envelope))
		}
		dump := tg.dump(t)
		for _, part := range []string{sealMarker, "SEALMARKER", "7f3a9c", "alice", "UAMARKER", "198.51.100.23"} {
			if bytes.Contains(dump, []byte(part)) {
				t.Fatalf("Redis holds %q in clear", part)
			}
		}
		again, _ := b.get(t, s, "sid")
		equal(t, "secret", again.Values["secret"], any(sealMarker))
		equal(t, "notes", again.Values["notes"], any(strings.Repeat(sealMarker+" ", 200)))
		us, err := s.UserSessions(context.Background(), "alice-"+sealMarker)
		noErr(t, err)
		equal(t, "sessions of the user", len(us), 1)
		equal(t, "the device's User-Agent, sealed in the index", us[0].UserAgent, "Browser/1.0 (UAMARKER-5e1d)")
		equal(t, "the device's address, sealed in the index", us[0].IP, "198.51.100.23")
		// The walk over every session opens them too.
		seen := 0
		for info, err := range s.Sessions(context.Background()) {
			noErr(t, err)
			seen++
			equal(t, "secret, from Sessions", info.Values["secret"], any(sealMarker))
			equal(t, "user, from Sessions", info.User, "alice-"+sealMarker)
		}
		equal(t, "sessions walked", seen, 1)
	})
}

// Keys rotate without logging anyone out, through the documented steps:
// the new key deployed second (it opens, seals nothing), then first; the
// instances of either step read what the others write, an unchanged Save
// rewrites nothing (no ping-pong between the two orders), a changed one
// seals with the store's first key; once Rekey has re-sealed everything,
// the old key can go. A store without the key that sealed a value, or
// without keys at all, reads ErrCorrupt and a new, empty session.
func TestSealedSessionsRotate(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		k1, k2, k3 := testSealKeys[0], testSealKeys[1], testSealKeys[2]
		old := newStore(t, tg, Config{Mode: mode, EncryptionKeys: [][]byte{k1}})
		step1 := newStore(t, tg, Config{Mode: mode, EncryptionKeys: [][]byte{k1, k2}})
		step2 := newStore(t, tg, Config{Mode: mode, EncryptionKeys: [][]byte{k2, k1}})
		rotated := newStore(t, tg, Config{Mode: mode, EncryptionKeys: [][]byte{k2}})
		other := newStore(t, tg, Config{Mode: mode, EncryptionKeys: [][]byte{k3}})
		clear := newStore(t, tg, Config{Mode: mode})

		b := saveValue(t, old, map[any]any{"v": 0})
		sess, _ := b.get(t, old, "sid")
		id := sess.ID
		sealedWith := func(what string, key []byte) {
			t.Helper()
			_, got := rawAt(t, old, id)
			equal(t, what, sealedBy(t, got), keyID(t, key))
		}
		sealedWith("sealed by", k1)
		for _, s := range []*Store{rotated, other, clear} {
			sess, err := s.Get(b.request(), "sid")
			if !errors.Is(err, ErrCorrupt) || !sess.IsNew || len(sess.Values) != 0 {
				t.Fatalf("a store without the sealing key read it: new %v, values %v, err %v", sess.IsNew, sess.Values, err)
			}
		}
		// Step 1 rolling out beside the old instances, then step 2 beside
		// step 1: each reads what the other writes; unchanged Saves write
		// nothing, changes seal with the writer's first key.
		for i, s := range []*Store{old, step1, old, step1, step2, step1, step2, step2, step1} {
			_, before := rawAt(t, old, id)
			sess, r := b.get(t, s, "sid")
			equal(t, "v", sess.Values["v"], any(i/2))
			if i%2 == 1 {
				sess.Values["v"] = i/2 + 1
			}
			b.save(t, s, r, sess)
			_, after := rawAt(t, old, id)
			if changed := after.raw != before.raw; changed != (i%2 == 1) {
				t.Fatalf("Save %d (changed %v) rewrote the value: %v", i, i%2 == 1, changed)
			}
		}
		sealedWith("after a change by step 2", k2)
		sess, r := b.get(t, step1, "sid")
		sess.Values["v"] = "by step 1"
		b.save(t, step1, r, sess)
		sealedWith("after a change by step 1", k1)
		rs, err := step2.Rekey(context.Background(), nil)
		noErr(t, err)
		equal(t, "re-sealed by Rekey", rs.Resealed, 1)
		sealedWith("after Rekey", k2)
		sess, _ = b.get(t, rotated, "sid")
		equal(t, "v after rotation", sess.Values["v"], any("by step 1"))
	})
}

// Turning sealing on across instances, and back: WriteUnsealed stores open
// sealed values and write in clear, so that they can run beside stores
// that seal (first step) and, with Rekey, write every session in clear
// again before the keys go (the way back).
func TestWriteUnsealedStagesSealing(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		staged := newStore(t, tg, Config{Mode: mode, EncryptionKeys: testSealKeys[:1], WriteUnsealed: true})
		sealing := newStore(t, tg, Config{Mode: mode, EncryptionKeys: testSealKeys[:1]})
		b := saveValue(t, staged, map[any]any{"secret": sealMarker})
		if !bytes.Contains(tg.dump(t), []byte(sealMarker)) {
			t.Fatal("WriteUnsealed sealed the value")
		}
		sess, r := b.get(t, sealing, "sid")
		b.save(t, sealing, r, sess) // unchanged, in clear: sealed now
		if bytes.Contains(tg.dump(t), []byte(sealMarker)) {
			t.Fatal("the sealing store left the value in clear")
		}
		// The staged store reads it, and an unchanged Save leaves it sealed.
		sess, r = b.get(t, staged, "sid")
		equal(t, "secret through the staged store", sess.Values["secret"], any(sealMarker))
		b.save(t, staged, r, sess)
		if bytes.Contains(tg.dump(t), []byte(sealMarker)) {
			t.Fatal("an unchanged Save of a WriteUnsealed store unsealed the value")
		}
		// The way back: Rekey of a WriteUnsealed store writes it in clear.
		rs, err := staged.Rekey(context.Background(), nil)
		noErr(t, err)
		equal(t, "written in clear by Rekey", rs.Resealed, 1)
		if !bytes.Contains(tg.dump(t), []byte(sealMarker)) {
			t.Fatal("Rekey with WriteUnsealed left the value sealed")
		}
		sess, _ = b.get(t, newStore(t, tg, Config{Mode: mode}), "sid")
		equal(t, "secret through a store without keys", sess.Values["secret"], any(sealMarker))
		if _, err := New(Config{Client: tg.client, KeyPairs: testKeys, WriteUnsealed: true}); err == nil || !strings.Contains(err.Error(), "WriteUnsealed") {
			t.Errorf("WriteUnsealed without keys: %v", err)
		}
	})
}

// Values written in clear before EncryptionKeys was set stay readable, and
// are sealed at their next Save, changed or not.
func TestValuesInClearAreSealedAtTheirNextSave(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		plain := newStore(t, tg, Config{Mode: mode})
		sealed := newStore(t, tg, Config{Mode: mode, EncryptionKeys: testSealKeys[:1]})
		b := newBrowser()
		sess, r := b.get(t, plain, "sid")
		sess.Values["secret"] = sealMarker
		b.save(t, plain, r, sess)
		if !bytes.Contains(tg.dump(t), []byte(sealMarker)) {
			t.Fatal("the store without keys did not write in clear: the test proves nothing")
		}
		sess, r = b.get(t, sealed, "sid")
		equal(t, "secret", sess.Values["secret"], any(sealMarker))
		b.save(t, sealed, r, sess)
		_, got := rawAt(t, sealed, sess.ID)
		equal(t, "sealed by", sealedBy(t, got), keyID(t, testSealKeys[0]))
		if bytes.Contains(tg.dump(t), []byte(sealMarker)) {
			t.Fatal("still in clear after a Save")
		}
	})
}

// A sealed value tampered with, or copied to another session's place,
// opens nothing: ErrCorrupt and a new, empty session, never the values of
// the session it was copied from.
func TestSealedValuesRefuseTamperingAndMoves(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		// With a user and a lifetime, the clear front has a metadata block
		// (start, index deadline, the user's digest) to tamper with.
		s := newStore(t, tg, Config{Mode: mode, UserKey: "owner", MaxLifetime: time.Hour, EncryptionKeys: testSealKeys[:2]})
		alice, bob := newBrowser(), newBrowser()
		for _, b := range []*browser{alice, bob} {
			sess, r := b.get(t, s, "sid")
			sess.Values["owner"] = map[*browser]string{alice: "alice", bob: "bob"}[b]
			b.save(t, s, r, sess)
		}
		as, _ := alice.get(t, s, "sid")
		bs, _ := bob.get(t, s, "sid")
		aloc, agot := rawAt(t, s, as.ID)
		bloc, bgot := rawAt(t, s, bs.ID)

		// Alice's value in Bob's place.
		putRaw(t, tg, bloc, agot.raw)
		sess, err := s.Get(bob.request(), "sid")
		if !errors.Is(err, ErrCorrupt) || !sess.IsNew || len(sess.Values) != 0 {
			t.Fatalf("a value moved to another session opened: values %v, err %v", sess.Values, err)
		}
		putRaw(t, tg, bloc, bgot.raw)
		sess, _ = bob.get(t, s, "sid")
		equal(t, "owner", sess.Values["owner"], any("bob"))

		// Every byte after the expiry (which the layouts' scripts rewrite)
		// flipped, one at a time: the clear header and metadata too.
		start := len(agot.raw) - len(agot.envelope)
		h, err := envelope.ReadHeader(agot.envelope)
		noErr(t, err)
		if !h.Meta.HasUser || h.Meta.Start == 0 {
			t.Fatalf("no metadata block to tamper with: %+v", h.Meta)
		}
		for i := start; i < len(agot.raw); i++ {
			v := []byte(agot.raw)
			v[i] ^= 0x20
			putRaw(t, tg, aloc, string(v))
			sess, err := s.Get(alice.request(), "sid")
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnknownFormat) || !sess.IsNew || len(sess.Values) != 0 {
				t.Fatalf("byte %d flipped: values %v, err %v", i, sess.Values, err)
			}
			if tg.cluster != nil && i > start+40 {
				break // the rest is covered on one server: a cluster adds nothing per byte
			}
		}
		// Put back, the session is whole, and still the user's: nothing of
		// the above ended it or took it off the index.
		putRaw(t, tg, aloc, agot.raw)
		sess, _ = alice.get(t, s, "sid")
		equal(t, "owner after the tampering", sess.Values["owner"], any("alice"))
		n, err := s.DeleteUserSessions(context.Background(), "alice")
		noErr(t, err)
		equal(t, "sessions of alice ended", n, 1)
	})
}

// A request that loaded a sealed session and another that changed it
// meanwhile merge as they do in clear, each store sealing with its own
// first key (the middle of a rotation).
func TestSealedSessionsMerge(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		a := newStore(t, tg, Config{Mode: mode, EncryptionKeys: [][]byte{testSealKeys[0], testSealKeys[1]}})
		c := newStore(t, tg, Config{Mode: mode, EncryptionKeys: [][]byte{testSealKeys[1], testSealKeys[0]}})
		b := newBrowser()
		sess, r := b.get(t, a, "sid")
		sess.Values["n"] = 0
		b.save(t, a, r, sess)

		s1, r1 := b.get(t, a, "sid")
		s2, r2 := b.get(t, c, "sid")
		s1.Values["from-a"] = "a"
		s2.Values["from-c"] = "c"
		delete(s2.Values, "n")
		b.save(t, c, r2, s2)
		b.save(t, a, r1, s1)
		sess, _ = b.get(t, c, "sid")
		equal(t, "from-a", sess.Values["from-a"], any("a"))
		equal(t, "from-c", sess.Values["from-c"], any("c"))
		if _, ok := sess.Values["n"]; ok {
			t.Fatal("the key another request deleted is back")
		}
	})
}

func TestEncryptionKeysAreChecked(t *testing.T) {
	c := newMiniTarget(t).client
	for _, tt := range []struct {
		name string
		keys [][]byte
		want string
	}{
		{"empty ring", [][]byte{}, "no keys"},
		{"short key", [][]byte{[]byte("short")}, "key 0 is 5 bytes"},
		{"duplicate", [][]byte{testSealKeys[0], testSealKeys[0]}, "same fingerprint"},
	} {
		_, err := New(Config{Client: c, KeyPairs: testKeys, EncryptionKeys: tt.keys})
		if err == nil || !strings.Contains(err.Error(), "Config.EncryptionKeys") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

// What stays in clear is reported even when the value does not open:
// Sessions gives the start and compressor of a session sealed by a key it
// lacks, and skips one past MaxLifetime, as UserSessions does.
func TestSealedValuesThatDoNotOpenStillTellTheirClearFront(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	for _, mode := range []Mode{HashMode, StringMode} {
		t.Run(mode.String(), func(t *testing.T) {
			tg.prefix = randomPrefix()
			other := newStore(t, tg, Config{Mode: mode, MaxLifetime: time.Hour, EncryptionKeys: testSealKeys[2:3]})
			saveValue(t, other, map[any]any{"x": strings.Repeat("compressible ", 100)})
			s := newStore(t, tg, Config{Mode: mode, MaxLifetime: time.Hour, EncryptionKeys: testSealKeys[:1]})
			n := 0
			for info, err := range s.Sessions(context.Background()) {
				n++
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("a session sealed by a key not in the ring: %v", err)
				}
				if info.Started.IsZero() || info.Compressor != "lz4" || info.Codec != "compact" {
					t.Fatalf("what is in clear is lost: started %v, compressor %q, codec %q", info.Started, info.Compressor, info.Codec)
				}
			}
			equal(t, "sessions walked", n, 1)
			// Two hours on, by the application's clock: past MaxLifetime.
			later := newStore(t, tg, Config{Mode: mode, MaxLifetime: time.Hour, EncryptionKeys: testSealKeys[:1]})
			later.wall = func() time.Time { return time.Now().Add(2 * time.Hour) }
			for info, err := range later.Sessions(context.Background()) {
				t.Fatalf("a session past MaxLifetime was yielded: %+v, %v", info, err)
			}
		})
	}
}
