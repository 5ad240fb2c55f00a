package redistore

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/gob"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/securecookie"
)

// bojSession writes a session the way boj/redistore v1.4 does (key
// "session_" + base32 ID, gob or JSON Values, SETEX) and returns its cookie,
// encoded as boj/redistore encodes it (securecookie with its default gob
// serializer).
func bojSession(t testing.TB, tg *target, prefix string, asJSON bool, values map[any]any) (id string, cookie *http.Cookie) {
	t.Helper()
	id = strings.TrimRight(base32.StdEncoding.EncodeToString(securecookie.GenerateRandomKey(32)), "=")
	var data []byte
	if asJSON {
		m := map[string]any{}
		for k, v := range values {
			m[k.(string)] = v
		}
		data, _ = json.Marshal(m)
	} else {
		var buf bytes.Buffer
		noErr(t, gob.NewEncoder(&buf).Encode(values))
		data = buf.Bytes()
	}
	tg.do(t, "SETEX", prefix+id, "1200", string(data))
	v, err := securecookie.EncodeMulti("sid", id, securecookie.CodecsFromPairs(testKeys...)...)
	noErr(t, err)
	return id, &http.Cookie{Name: "sid", Value: v}
}

func TestLegacySessionsMoveOnSave(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		for _, asJSON := range []bool{false, true} {
			name := "gob"
			var ser Serializer
			if asJSON {
				name, ser = "json", JSONSerializer{}
			}
			t.Run(name, func(t *testing.T) {
				legacyPrefix := "legacy_" + tg.prefix
				cc := &countingClient{Client: tg.client}
				s := newStore(t, tg, Config{Mode: mode, Client: cc, Legacy: &Legacy{KeyPrefix: legacyPrefix, Serializer: ser}})
				// Move one session first, to load the script.
				_, warm := bojSession(t, tg, legacyPrefix, asJSON, map[any]any{})
				wb := newBrowser()
				wb.cookies["sid"] = warm
				ws, wr := wb.get(t, s, "sid")
				wb.save(t, s, wr, ws)

				lid, cookie := bojSession(t, tg, legacyPrefix, asJSON, map[any]any{"user": "alice"})
				b := newBrowser()
				b.cookies["sid"] = cookie
				sess, r := b.get(t, s, "sid")
				if sess.IsNew || sess.Values["user"] != "alice" || !ValidID(sess.ID) {
					t.Fatalf("legacy session not served: %+v", sess)
				}
				// Until a Save, the legacy session stays where it is.
				equal(t, "legacy key", tg.do(t, "EXISTS", legacyPrefix+lid).IntMust(t), 1)

				cc.reset()
				b.save(t, s, r, sess)
				// One atomic script; in a cluster the two keys are on
				// different nodes: write, then delete.
				equal(t, "round trips to move it", cc.reset(), tg.roundTripsToMove(s))
				equal(t, "legacy key after Save", tg.do(t, "EXISTS", legacyPrefix+lid).IntMust(t), 0)
				got, _ := b.get(t, s, "sid")
				equal(t, "user", got.Values["user"], any("alice"))
				equal(t, "new ID", got.ID, sess.ID)
			})
		}

		t.Run("logging out deletes the legacy session", func(t *testing.T) {
			legacyPrefix := "legacy_" + tg.prefix
			s := newStore(t, tg, Config{Mode: mode, Legacy: &Legacy{KeyPrefix: legacyPrefix}})
			lid, cookie := bojSession(t, tg, legacyPrefix, false, map[any]any{"user": "bob"})
			b := newBrowser()
			b.cookies["sid"] = cookie
			sess, r := b.get(t, s, "sid")
			sess.Options.MaxAge = -1
			noErr(t, s.Save(r, httptest.NewRecorder(), sess))
			equal(t, "legacy key", tg.do(t, "EXISTS", legacyPrefix+lid).IntMust(t), 0)
		})

		t.Run("a legacy cookie whose session is gone gets a new session", func(t *testing.T) {
			legacyPrefix := "legacy_" + tg.prefix
			s := newStore(t, tg, Config{Mode: mode, Legacy: &Legacy{KeyPrefix: legacyPrefix}})
			lid, cookie := bojSession(t, tg, legacyPrefix, false, map[any]any{"user": "bob"})
			tg.do(t, "DEL", legacyPrefix+lid)
			r := httptest.NewRequest("GET", "/", nil)
			r.AddCookie(cookie)
			sess, err := s.Get(r, "sid")
			noErr(t, err)
			equal(t, "IsNew", sess.IsNew, true)
		})

		t.Run("without Legacy a boj/redistore cookie is an invalid ID", func(t *testing.T) {
			s := newStore(t, tg, Config{Mode: mode})
			_, cookie := bojSession(t, tg, tg.prefix+"legacy_", false, map[any]any{"user": "bob"})
			r := httptest.NewRequest("GET", "/", nil)
			r.AddCookie(cookie)
			sess, err := s.Get(r, "sid")
			if !errors.Is(err, ErrInvalidID) || !sess.IsNew {
				t.Fatalf("Get: %v", err)
			}
		})
	})
}

func TestLegacyIDs(t *testing.T) {
	t.Parallel()
	good := strings.TrimRight(base32.StdEncoding.EncodeToString(make([]byte, 32)), "=")
	equal(t, "valid", validLegacyID(good), true)
	for _, bad := range []string{"", good[:51], good + "A", strings.ToLower(good), good[:51] + "1", good[:51] + "="} {
		equal(t, "valid("+bad+")", validLegacyID(bad), false)
	}
}

func TestStatsCountsLegacySessions(t *testing.T) {
	t.Parallel()
	forEachTarget(t, func(t *testing.T, tg *target) {
		legacyPrefix := "legacy_" + tg.prefix
		s := newStore(t, tg, Config{Legacy: &Legacy{KeyPrefix: legacyPrefix}})
		cookies := []*http.Cookie{}
		for i := 0; i < 5; i++ {
			_, c := bojSession(t, tg, legacyPrefix, false, map[any]any{"i": i})
			cookies = append(cookies, c)
		}
		// Two users come back and their sessions move.
		for _, c := range cookies[:2] {
			b := newBrowser()
			b.cookies["sid"] = c
			sess, r := b.get(t, s, "sid")
			b.save(t, s, r, sess)
		}
		st, err := s.Stats(context.Background(), 10)
		noErr(t, err)
		equal(t, "legacy keys", st.LegacyKeys, 3)
		equal(t, "sessions", st.Sessions, 2)
	})
}

func TestLegacyPrefixMustNotOverlap(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	for _, p := range []string{"session:", "session:old:", "sess"} {
		if _, err := New(Config{Client: tg.client, KeyPairs: testKeys, KeyPrefix: "session:", Legacy: &Legacy{KeyPrefix: p}}); err == nil {
			t.Errorf("Legacy.KeyPrefix %q accepted beside KeyPrefix \"session:\"", p)
		}
	}
}

// TestLegacyMoveUnderConcurrentRequests: requests of one browser that
// loaded a boj/redistore session at once (a page and its XHRs, on the
// first visit after the switch) each move it to the one ID it moves to,
// and merge there; a request sent with the legacy cookie after the move
// finds the session where it went, so no response signs the user out.
func TestLegacyMoveUnderConcurrentRequests(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		legacyPrefix := "legacy_" + tg.prefix
		s := newStore(t, tg, Config{Mode: mode, UserKey: "user", Legacy: &Legacy{KeyPrefix: legacyPrefix}})
		_, cookie := bojSession(t, tg, legacyPrefix, false, map[any]any{"user": "alice", "visits": 1, "old": true})
		b := newBrowser()
		b.cookies["sid"] = cookie

		page, rp := b.get(t, s, "sid")
		xhr, rx := b.get(t, s, "sid")
		page.Values["visits"] = 2
		xhr.Values["theme"] = "dark"
		delete(xhr.Values, "old")
		wp := httptest.NewRecorder()
		noErr(t, s.Save(rp, wp, page))
		noErr(t, s.Save(rx, httptest.NewRecorder(), xhr))
		equal(t, "the two moves' IDs", xhr.ID, page.ID)

		late, rl := b.get(t, s, "sid") // sent with the legacy cookie before the page's response came
		if late.IsNew || late.ID != page.ID {
			t.Fatalf("a request with the legacy cookie after the move: IsNew %v, the moved session's ID %v", late.IsNew, late.ID == page.ID)
		}
		late.Values["late"] = true
		wl := httptest.NewRecorder()
		noErr(t, s.Save(rl, wl, late))
		b.keep(t, wp)
		b.keep(t, wl)
		got := valuesOf(t, s, b)
		if got["user"] != "alice" || got["visits"] != 2 || got["theme"] != "dark" || got["late"] != true || got["old"] != nil {
			t.Fatalf("the moved session holds %v", got)
		}
		sameHandles(t, "alice", handles(t, s, "alice"), s.Handle(late))
		equal(t, "boj/redistore keys left", len(scanPrefix(t, tg, legacyPrefix)), 0)
	})
}

// TestMovingFromBojWithItsREADMEKey: an application that used
// boj/redistore with the key its README shows ("secret-key", 10 bytes)
// switches by putting a new 32-byte key first and its old one after it:
// New warns once of the short key (never printing it), existing cookies
// keep working, and each is signed with the new key at its next Save.
func TestMovingFromBojWithItsREADMEKey(t *testing.T) {
	t.Parallel()
	tg := newMiniTarget(t)
	old := []byte("secret-key")
	if _, err := New(Config{Client: tg.client, KeyPairs: [][]byte{old}}); err == nil || !strings.Contains(err.Error(), "put the new key first and the old pair after it") {
		t.Fatalf("New with the short key alone: %v, want the way to migrate", err)
	}
	var logs bytes.Buffer
	fresh := []byte("a new 32-byte hash key, secret!!")
	legacyPrefix := "session_" + tg.prefix
	s := newStore(t, tg, Config{KeyPairs: [][]byte{fresh, nil, old, nil}, Legacy: &Legacy{KeyPrefix: legacyPrefix},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "short hash key") || strings.Contains(logs.String(), string(old)) || strings.Count(logs.String(), "\n") != 1 {
		t.Fatalf("New's log: %q, want one warning that names no key", logs.String())
	}

	id := strings.TrimRight(base32.StdEncoding.EncodeToString(securecookie.GenerateRandomKey(32)), "=")
	var buf bytes.Buffer
	noErr(t, gob.NewEncoder(&buf).Encode(map[any]any{"user": "alice"}))
	tg.do(t, "SETEX", legacyPrefix+id, "1200", buf.String())
	v, err := securecookie.EncodeMulti("sid", id, securecookie.CodecsFromPairs(old)...) // as boj/redistore signs it
	noErr(t, err)
	b := newBrowser()
	b.cookies["sid"] = &http.Cookie{Name: "sid", Value: v}
	sess, r := b.get(t, s, "sid")
	equal(t, "user", sess.Values["user"], any("alice"))
	b.save(t, s, r, sess)
	var got []byte
	if err := securecookie.New(fresh, nil).SetSerializer(securecookie.NopEncoder{}).Decode("sid", b.cookies["sid"].Value, &got); err != nil {
		t.Fatalf("the cookie after the Save is not signed with the new key: %v", err)
	}
	if got := valuesOf(t, s, b); got["user"] != "alice" {
		t.Fatalf("the moved session holds %v", got)
	}
}
