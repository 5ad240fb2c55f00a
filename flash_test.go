package redistore

import (
	"encoding/gob"
	"net/http/httptest"
	"testing"
)

// flashMessage is an application type kept in flashes, as gorilla's and
// boj/redistore's examples do; gob needs it registered.
type flashMessage struct {
	Type    int
	Message string
}

func init() { gob.Register(&flashMessage{}) }

// TestFlashes: gorilla's flash messages (AddFlash, then Flashes, which
// reads and clears them) survive a round trip through every target, mode
// and serializer, strings and an application's registered type alike, and
// once read they are gone.
func TestFlashes(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		for _, ser := range []struct {
			name    string
			s       Serializer
			structs bool
		}{
			{"compact", nil, true},
			{"gob", GobSerializer{}, true},
			{"json", JSONSerializer{}, false},
		} {
			t.Run(ser.name, func(t *testing.T) {
				s := newStore(t, tg, Config{Mode: mode, Serializer: ser.s})
				b := newBrowser()
				sess, r := b.get(t, s, "sid")
				sess.AddFlash("foo")
				sess.AddFlash("bar")
				sess.AddFlash("baz", "custom_key")
				if ser.structs {
					sess.AddFlash(&flashMessage{Type: 42, Message: "foo"}, "typed")
				}
				b.save(t, s, r, sess)

				sess, r = b.get(t, s, "sid")
				flashes := sess.Flashes()
				if len(flashes) != 2 || flashes[0] != "foo" || flashes[1] != "bar" {
					t.Fatalf("flashes %#v, want foo and bar", flashes)
				}
				if f := sess.Flashes("custom_key"); len(f) != 1 || f[0] != "baz" {
					t.Fatalf("custom_key flashes %#v, want baz", f)
				}
				if ser.structs {
					f := sess.Flashes("typed")
					if len(f) != 1 {
						t.Fatalf("typed flashes %#v, want one", f)
					}
					if m, ok := f[0].(*flashMessage); !ok || m.Type != 42 || m.Message != "foo" {
						t.Fatalf("typed flash %#v, want {42 foo}", f[0])
					}
				}
				w := httptest.NewRecorder()
				noErr(t, s.Save(r, w, sess))
				b.keep(t, w)

				sess, _ = b.get(t, s, "sid")
				if f := sess.Flashes(); len(f) != 0 {
					t.Fatalf("flashes after they were read: %#v", f)
				}
				if f := sess.Flashes("custom_key"); len(f) != 0 {
					t.Fatalf("custom_key flashes after they were read: %#v", f)
				}
			})
		}
	})
}
