// Package demo is what the example apps share that is not about sessions:
// finding Redis, a throwaway cookie key, and serving on a loopback address.
package demo

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/rueidis"

	"github.com/redisession/redistore"
)

// Redis connects to the server named by REDIS_URL or, when it is unset, to
// an embedded miniredis. It returns the client, a description of the server
// without its password, and a function that closes both.
func Redis() (client rueidis.Client, where string, closeAll func(), err error) {
	if raw := os.Getenv("REDIS_URL"); raw != "" {
		client, err := redistore.NewClient(raw)
		if err != nil {
			return nil, "", nil, err
		}
		where := "the Redis at REDIS_URL"
		if u, err := neturl.Parse(raw); err == nil {
			where = "Redis at " + u.Redacted()
		}
		return client, where, client.Close, nil
	}
	mr, err := miniredis.Run()
	if err != nil {
		return nil, "", nil, err
	}
	client, err = rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       []string{mr.Addr()},
		DisableCache:      true, // miniredis has no client-side caching
		ForceSingleClient: true, // and answers CLUSTER SLOTS as if it were a cluster
	})
	if err != nil {
		mr.Close()
		return nil, "", nil, err
	}
	return client, "an embedded miniredis at " + mr.Addr() + " (set REDIS_URL for a real server)",
		func() { client.Close(); mr.Close() }, nil
}

// RandomKey returns a 32-byte hash key for this run only: cookies stop
// decoding when the program restarts. Real applications load fixed keys
// from their secrets.
func RandomKey() []byte {
	key := make([]byte, 32)
	rand.Read(key) // crypto/rand.Read does not fail
	return key
}

// Serve listens on addr, says where, and serves h until the listener fails.
func Serve(name, addr, where string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("%s: listening on http://%s/, sessions in %s\n", name, ln.Addr(), where)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}
