package migrationtest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	boj "github.com/boj/redistore"
	"github.com/redis/rueidis"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/internal/redistest"
)

var keyPairs = [][]byte{[]byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210")}

// writeWithBoj saves n sessions through boj/redistore and returns their
// cookies and values.
func writeWithBoj(t *testing.T, store *boj.RediStore, n int) ([]*http.Cookie, []string) {
	t.Helper()
	var cookies []*http.Cookie
	var users []string
	for i := 0; i < n; i++ {
		r := httptest.NewRequest("GET", "/", nil)
		sess, err := store.Get(r, "sid")
		if err != nil {
			t.Fatal(err)
		}
		user := fmt.Sprintf("user-%d", i)
		sess.Values["user"] = user
		sess.Values["visits"] = i
		w := httptest.NewRecorder()
		if err := store.Save(r, w, sess); err != nil {
			t.Fatal(err)
		}
		cookies = append(cookies, w.Result().Cookies()[0])
		users = append(users, user)
	}
	return cookies, users
}

func count(t *testing.T, c rueidis.Client, pattern string) int {
	t.Helper()
	keys, err := c.Do(context.Background(), c.B().Keys().Pattern(pattern).Build()).AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

func TestSessionsFromBojRedistoreMoveWithoutLoss(t *testing.T) {
	srv := redistest.StartT(t)
	client, err := redistore.NewClient("redis://" + srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	cases := []struct {
		name   string
		prefix string
		json   bool
		mode   redistore.Mode
	}{
		{"gob, hash mode", "", false, redistore.HashMode},
		{"gob, string mode", "", false, redistore.StringMode},
		{"JSON, hash mode", "", true, redistore.HashMode},
		{"custom prefix, JSON, string mode", "app_sess_", true, redistore.StringMode},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Each case in its own database, so that "session_" keys of one
			// case are not another's.
			db := i + 1
			old, err := boj.NewRediStoreWithDB(4, "tcp", srv.Addr, "", "", fmt.Sprint(db), keyPairs...)
			if err != nil {
				t.Fatal(err)
			}
			defer old.Close()
			legacy := &redistore.Legacy{KeyPrefix: tc.prefix}
			if tc.prefix != "" {
				old.SetKeyPrefix(tc.prefix)
			}
			if tc.json {
				old.SetSerializer(boj.JSONSerializer{})
				legacy.Serializer = redistore.JSONSerializer{}
			}
			cookies, users := writeWithBoj(t, old, 40)
			prefix := tc.prefix
			if prefix == "" {
				prefix = "session_"
			}

			c, err := redistore.NewClient(fmt.Sprintf("redis://%s/%d", srv.Addr, db))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			store, err := redistore.New(redistore.Config{Client: c, KeyPairs: keyPairs, Mode: tc.mode, Legacy: legacy})
			if err != nil {
				t.Fatal(err)
			}
			if got := count(t, c, prefix+"*"); got != 40 {
				t.Fatalf("boj/redistore wrote %d sessions, want 40", got)
			}

			// Half the users come back: read-only first, then a saving request.
			for i, cookie := range cookies[:20] {
				r := httptest.NewRequest("GET", "/", nil)
				r.AddCookie(cookie)
				sess, err := store.Get(r, "sid")
				if err != nil || sess.IsNew {
					t.Fatalf("user %d: Get: %v (new %v)", i, err, sess.IsNew)
				}
				want := fmt.Sprint(users[i])
				if fmt.Sprint(sess.Values["user"]) != want {
					t.Fatalf("user %d: values %v", i, sess.Values)
				}
				r = httptest.NewRequest("GET", "/", nil)
				r.AddCookie(cookie)
				sess, _ = store.Get(r, "sid")
				sess.Values["moved"] = true
				w := httptest.NewRecorder()
				if err := store.Save(r, w, sess); err != nil {
					t.Fatalf("user %d: Save: %v", i, err)
				}
				r = httptest.NewRequest("GET", "/", nil)
				r.AddCookie(w.Result().Cookies()[0])
				sess, err = store.Get(r, "sid")
				if err != nil || sess.IsNew || fmt.Sprint(sess.Values["user"]) != want || sess.Values["moved"] != true {
					t.Fatalf("user %d after the move: %v %v", i, err, sess.Values)
				}
			}
			st, err := store.Stats(context.Background(), 10)
			if err != nil {
				t.Fatal(err)
			}
			if st.LegacyKeys != 20 || st.Sessions != 20 {
				t.Fatalf("after 20 moves: %d legacy sessions and %d moved, want 20 and 20", st.LegacyKeys, st.Sessions)
			}
			// The other half still open, with their old cookies.
			for i, cookie := range cookies[20:] {
				r := httptest.NewRequest("GET", "/", nil)
				r.AddCookie(cookie)
				sess, err := store.Get(r, "sid")
				if err != nil || sess.IsNew || fmt.Sprint(sess.Values["user"]) != users[20+i] {
					t.Fatalf("user %d not moved yet: %v %v", 20+i, err, sess.Values)
				}
			}
		})
	}
}
