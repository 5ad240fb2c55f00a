// Command webapp is a small web site whose sessions live in Redis through
// redistore: a visit counter and a name-only login.
//
//	go run ./examples/webapp                  # embedded miniredis, http://127.0.0.1:8080/
//	REDIS_URL=redis://localhost:6379/0 go run ./examples/webapp -mode string
//
// Flags: -addr (default 127.0.0.1:8080), -mode hash|string (default hash)
// and -metrics none|stdout|prometheus (default none): the store's
// OpenTelemetry metrics, printed every 10 seconds or served at /metrics.
// Environment: REDIS_URL selects a Redis server instead of the embedded
// miniredis; SESSION_KEYS (hex, comma-separated: hash key, block key, ...)
// keeps cookies valid across restarts. Stop it with Ctrl-C.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/rueidis"

	"github.com/redisession/redistore"
)

// shutdownTimeout is how long requests in flight get to finish on shutdown.
const shutdownTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "webapp:", err)
		stop()
		os.Exit(1)
	}
}

// run serves the demo until ctx is done, then shuts down gracefully. args
// are the command-line flags, getenv reads the environment, and stdout gets
// the startup banner and the log.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("webapp", flag.ContinueOnError)
	fs.SetOutput(stdout)
	addr := fs.String("addr", "127.0.0.1:8080", "`host:port` to listen on")
	modeName := fs.String("mode", "hash", "session layout in Redis: hash or string")
	metricsKind := fs.String("metrics", "none", "the store's OpenTelemetry metrics: none, stdout (every 10 s) or prometheus (at /metrics)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: use -addr, -mode and -metrics", fs.Arg(0))
	}
	var mode redistore.Mode
	switch *modeName {
	case "hash":
		mode = redistore.HashMode
	case "string":
		mode = redistore.StringMode
	default:
		return fmt.Errorf("-mode %q: use hash or string", *modeName)
	}

	keys, persistent, err := sessionKeys(getenv("SESSION_KEYS"))
	if err != nil {
		return err
	}

	client, where, closeRedis, err := connect(getenv("REDIS_URL"))
	if err != nil {
		return err
	}
	defer closeRedis()

	observer, metricsHandler, stopMetrics, err := metrics(*metricsKind, stdout)
	if err != nil {
		return err
	}
	defer stopMetrics(context.Background())

	logger := slog.New(slog.NewTextHandler(stdout, nil))
	store, err := newStore(client, keys, mode, logger, observer)
	if err != nil {
		return err
	}
	handler := newApp(store, logger, where)
	if metricsHandler != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metricsHandler)
		mux.Handle("/", handler)
		handler = mux
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelError),
	}

	fmt.Fprintf(stdout, "Listening on %s\n", browseURL(ln.Addr()))
	fmt.Fprintf(stdout, "Redis: %s\n", where)
	fmt.Fprintf(stdout, "Session layout: %s mode\n", mode)
	switch *metricsKind {
	case "stdout":
		fmt.Fprintf(stdout, "Metrics: printed every %v\n", stdoutInterval)
	case "prometheus":
		fmt.Fprintf(stdout, "Metrics: %smetrics\n", browseURL(ln.Addr()))
	}
	if !persistent {
		fmt.Fprintln(stdout, "SESSION_KEYS is not set: using random cookie keys, so sessions do not survive a restart.")
		fmt.Fprintln(stdout, "  To keep them: SESSION_KEYS=$(openssl rand -hex 32),$(openssl rand -hex 32)")
	}
	fmt.Fprintln(stdout, "Press Ctrl-C to stop.")

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(stdout, "Shutting down.")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// sessionKeys decodes SESSION_KEYS: hex keys separated by commas, in
// redistore's KeyPairs order (hash key, block key, hash key, ...); an empty
// item is a missing block key. Unset, it returns a fresh random hash key and
// block key, and persistent is false. Errors never quote the keys.
func sessionKeys(env string) (keys [][]byte, persistent bool, err error) {
	if strings.TrimSpace(env) == "" {
		hashKey, blockKey := make([]byte, 32), make([]byte, 32)
		rand.Read(hashKey) // never returns an error (see crypto/rand.Read)
		rand.Read(blockKey)
		return [][]byte{hashKey, blockKey}, false, nil
	}
	for i, item := range strings.Split(env, ",") {
		k, err := hex.DecodeString(strings.TrimSpace(item))
		if err != nil {
			return nil, false, fmt.Errorf("SESSION_KEYS item %d is not hexadecimal: give comma-separated hex keys, e.g. from openssl rand -hex 32", i+1)
		}
		if i == 0 && len(k) < redistore.MinHashKeyLength { // later pairs may be older, shorter keys
			return nil, false, fmt.Errorf("SESSION_KEYS item %d is a %d-byte hash key: use at least %d random bytes, e.g. from openssl rand -hex 32", i+1, len(k), redistore.MinHashKeyLength)
		}
		keys = append(keys, k)
	}
	return keys, true, nil
}

// connect returns a Redis client: to the server at redisURL, or, when it
// is empty, to a miniredis started here. where describes the server without
// its password; closeRedis releases the client and the miniredis.
func connect(redisURL string) (client rueidis.Client, where string, closeRedis func(), err error) {
	if redisURL != "" {
		// Parsed here first: url.Parse's error quotes the whole URL,
		// password included, and redistore.NewClient passes it on.
		u, err := neturl.Parse(redisURL)
		if err != nil {
			return nil, "", nil, errors.New("REDIS_URL is not a valid URL: use redis://[user:password@]host:port[/db]")
		}
		c, err := redistore.NewClient(redisURL)
		if err != nil {
			return nil, "", nil, err
		}
		return c, u.Redacted(), c.Close, nil
	}
	m, err := miniredis.Run()
	if err != nil {
		return nil, "", nil, fmt.Errorf("starting miniredis: %w", err)
	}
	// Expire sessions on the wall clock, as Redis does.
	m.ClockTTL(true)
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       []string{m.Addr()},
		DisableCache:      true, // miniredis has no CLIENT TRACKING
		ForceSingleClient: true, // miniredis answers CLUSTER SLOTS
	})
	if err != nil {
		m.Close()
		return nil, "", nil, fmt.Errorf("connecting to miniredis: %w", err)
	}
	closeBoth := func() {
		c.Close()
		m.Close()
	}
	return c, "embedded miniredis at " + m.Addr() + " (its data is lost on exit)", closeBoth, nil
}

// browseURL returns a URL a browser can open for a listening address.
func browseURL(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String() + "/"
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// newStore returns the demo's session store.
func newStore(client rueidis.Client, keys [][]byte, mode redistore.Mode, logger *slog.Logger, observer redistore.Observer) (*redistore.Store, error) {
	return redistore.New(redistore.Config{
		Client:   client,
		KeyPairs: keys,
		Mode:     mode,
		Logger:   logger,
		UserKey:  keyUser,  // lists a user's devices, and signs them out
		ClientIP: clientIP, // the address a devices page shows
		Observer: observer,
	})
}
