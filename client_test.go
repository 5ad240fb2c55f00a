package redistore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redisession/redistore/internal/redistest"
)

func TestNewClient(t *testing.T) {
	t.Parallel()
	unix := filepath.Join(t.TempDir(), "redis.sock")
	srv := redistest.StartT(t, "--unixsocket", unix, "--requirepass", "s3cret")

	works := []struct{ name, url string }{
		{"redis://", "redis://:s3cret@" + srv.Addr},
		{"redis:// with a database", "redis://:s3cret@" + srv.Addr + "/3"},
		{"unix://", "unix://:s3cret@" + unix + "?db=2"},
		{"RESP2", "redis://:s3cret@" + srv.Addr + "?protocol=2"},
	}
	for _, tt := range works {
		t.Run(tt.name+" connects and serves sessions", func(t *testing.T) {
			c, err := NewClient(tt.url)
			noErr(t, err)
			defer c.Close()
			tg := &target{client: c, prefix: randomPrefix()}
			s := newStore(t, tg, Config{})
			b := newBrowser()
			sess, r := b.get(t, s, "sid")
			sess.Values["n"] = 1
			b.save(t, s, r, sess)
			got, _ := b.get(t, s, "sid")
			equal(t, "n", got.Values["n"], any(1))
		})
	}

	fails := []struct{ name, url string }{
		{"a wrong password", "redis://:wrong-s3cret@" + srv.Addr},
		{"an unparsable URL", "redis://:s3cret@" + srv.Addr + ":badport"},
		{"an unknown scheme", "http://:s3cret@" + srv.Addr},
		{"a closed port", "redis://:s3cret@127.0.0.1:1?dial_timeout=1s"},
	}
	for _, tt := range fails {
		t.Run(tt.name+" fails without showing the password", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				c, err := NewClient(tt.url)
				if err == nil {
					c.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("no error")
				}
				if !strings.HasPrefix(err.Error(), "redistore: ") || strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("error %q", err)
				}
			case <-ctx.Done():
				t.Fatal("NewClient hangs")
			}
		})
	}
}
