// Command redistore is the operators' tool for a redistore session store:
// it sweeps expired sessions (the cron job), reports what the store holds,
// checks the Redis server's configuration for sessions, shows one
// session for support, ends users' sessions, and re-seals sessions with a
// new encryption key.
//
//	redistore sweep    [--sample N] [--progress auto|always|never] [--json]
//	redistore stats    [--sample N] [--json]
//	redistore doctor   [--sample N] [--json]
//	redistore inspect  [--cookie NAME] [--json] <session-id-or-cookie-value>
//	redistore sessions --user USER [--user-key KEY] [--json]
//	redistore sessions --all [--user-key KEY] [--progress auto|always|never] [--json]
//	redistore revoke   --user USER [--handle HANDLE] [--user-key KEY] [--json]
//	redistore rekey    [--unseal] [--progress auto|always|never] [--json]
//
// With --json a command prints one indented JSON document on stdout instead
// of text: the fields of a struct documented beside the command (statsJSON,
// sweepJSON, doctorJSON, inspectJSON, sessionsJSON, allSessionsJSON,
// revokeJSON), named in snake_case, with times in RFC 3339 and empty lists
// as [], never null.
// Those names are the interface: fields are added, never renamed. The
// document is written whole or not at all; a failure is still one line on
// stderr and exit status 1, after the document where the text would have
// printed what was done (an interrupted sweep, doctor's failed checks).
//
// Every command takes --url (default $REDIS_URL), --mode hash|string,
// --prefix and --timeout (each Redis call's bound, 5s by default); --mode and
// --prefix must match the application's Config. Cookie keys come only from
// the environment (REDISTORE_KEYS: Config.KeyPairs in order, hex-encoded,
// comma-separated, an empty item for a nil block key), never from a flag, so
// that they stay out of shell history and process listings; only inspect
// with a cookie value needs them. REDISTORE_ENCRYPTION_KEYS holds
// Config.EncryptionKeys the same way: every command opens sealed sessions
// with them, and rekey seals with the first.
//
// The exit status is 0 on success, 1 on failure (with one "redistore: ..."
// line on stderr) and 2 on a usage error. A sweep from cron, where Redis has
// no hash-field expiry (before 7.4):
//
//	17 * * * *  REDIS_URL=redis://sessions.internal:6379/1 redistore sweep
//
// SIGINT or SIGTERM stops a sweep between buckets; it prints what it did and
// exits 1.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redis/rueidis"

	"github.com/redisession/redistore"
)

// defaultTimeout bounds each Redis call of the command: longer than the
// library's default, since an operator's command may run against a busy
// server from afar.
const defaultTimeout = 5 * time.Second

// Environment variables the command reads.
const (
	envURL  = "REDIS_URL"
	envKeys = "REDISTORE_KEYS"
	// envSealKeys holds Config.EncryptionKeys: what opens sealed values
	// (inspect, sessions) and what rekey seals with.
	envSealKeys = "REDISTORE_ENCRYPTION_KEYS"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills at once
	}()
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand. setup registers the command's flags and returns
// the function that runs it with the positional arguments.
type command struct {
	name    string
	args    string // synopsis of the positional arguments, after a space
	summary string
	setup   func(fs *flag.FlagSet, o *options) func(ctx context.Context, e *env, args []string) error
}

var commands = []*command{sweepCommand, statsCommand, doctorCommand, inspectCommand, sessionsCommand, revokeCommand, rekeyCommand}

func lookupCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// run is the whole command, with its environment passed in so that tests
// drive it in-process. It returns the exit status: 0 success, 1 failure, 2
// usage error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, version())
		return 0
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			c := lookupCommand(args[1])
			if c == nil {
				fmt.Fprintf(stderr, "redistore: unknown command %q\n", args[1])
				usage(stderr)
				return 2
			}
			fs, o := newFlagSet(c, stdout)
			c.setup(fs, o)
			fs.Usage()
			return 0
		}
		usage(stdout)
		return 0
	}
	c := lookupCommand(args[0])
	if c == nil && strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "redistore: flags go after the command: redistore <command> %s ... (see redistore help)\n", args[0])
		return 2
	}
	if c == nil {
		fmt.Fprintf(stderr, "redistore: unknown command %q (see redistore help)\n", args[0])
		return 2
	}
	var flagErrors strings.Builder
	fs, o := newFlagSet(c, &flagErrors)
	runner := c.setup(fs, o)
	positional, err := parseInterleaved(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return 0
	}
	if err != nil {
		// The flag package's own line, without the whole usage after it.
		fmt.Fprintf(stderr, "redistore %s: %s (see redistore help %s)\n", c.name, err, c.name)
		return 2
	}
	e := &env{getenv: getenv, stdout: stdout, stderr: stderr, opts: o}
	err = runner(ctx, e, positional)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "redistore %s: %s (see redistore help %s)\n", c.name, ue.msg, c.name)
		return 2
	default:
		// Wrapped library errors each start with "redistore: ": say it once.
		msg := strings.ReplaceAll(err.Error(), ": redistore: ", ": ")
		msg = strings.Join(strings.Fields(msg), " ") // one line, always
		fmt.Fprintln(stderr, "redistore: "+strings.TrimPrefix(msg, "redistore: "))
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `redistore: operate a redistore session store in Redis

usage: redistore <command> [flags] [arguments]

commands:
`)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	fmt.Fprintf(tw, "  help\tthis text; redistore help <command> shows the command's flags\n")
	fmt.Fprintf(tw, "  version\tthe command's version and the Go version it was built with\n")
	tw.Flush()
	fmt.Fprintf(w, `
Every command takes:
  --url URL          the Redis server (redis://, rediss://, unix://, Sentinel); default $%s
  --mode hash|string the store's Config.Mode (default hash)
  --prefix PREFIX    the store's Config.KeyPrefix (default %q)
  --legacy-prefix P  the store's Config.Legacy.KeyPrefix, while moving from boj/redistore
  --timeout D        bound on each Redis call, with a unit (default %v)
  --tls-ca FILE      CA certificates (PEM) to verify a rediss:// server with
  --tls-cert FILE, --tls-key FILE   a client certificate and its key (PEM)

%s holds the cookie keys, for inspect with a cookie value only: the
Config.KeyPairs in order, hex-encoded, comma-separated; an empty item is a nil
block key. %s holds Config.EncryptionKeys the same way (32 bytes
each), to read sealed sessions and for rekey. Keys are never taken from a flag.

--json makes any command print one JSON document on stdout instead of text.

Exit status: 0 success, 1 failure (one "redistore: ..." line on stderr),
2 usage error.
`, envURL, redistore.DefaultKeyPrefix, defaultTimeout, envKeys, envSealKeys)
}

// options are the flags every command shares: the Redis URL and the
// store's Config.
type options struct {
	url     string
	mode    string
	prefix  string
	legacy  string
	buckets int
	timeout time.Duration
	tlsCA   string
	tlsCert string
	tlsKey  string
}

func newFlagSet(c *command, output io.Writer) (*flag.FlagSet, *options) {
	fs := flag.NewFlagSet("redistore "+c.name, flag.ContinueOnError)
	fs.SetOutput(output)
	o := &options{}
	// No default for --url: the usage text must never show a password.
	fs.StringVar(&o.url, "url", "", "Redis `URL` (default $"+envURL+")")
	fs.StringVar(&o.mode, "mode", "hash", "the store's layout: hash or string")
	fs.StringVar(&o.prefix, "prefix", redistore.DefaultKeyPrefix, "the store's key `prefix`")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "`PEM file` of the CA certificates that sign a rediss:// server's certificate (default: the system's)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "`PEM file` of a client certificate, for servers with tls-auth-clients (with --tls-key)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "`PEM file` of the client certificate's private key")
	fs.IntVar(&o.buckets, "buckets", redistore.DefaultBuckets, "the store's Config.Buckets (HashMode)")
	fs.StringVar(&o.legacy, "legacy-prefix", "", "the store's Config.Legacy.KeyPrefix, while sessions move from boj/redistore (e.g. session_)")
	o.timeout = defaultTimeout
	fs.Var((*durationFlag)(&o.timeout), "timeout", "the `duration` each Redis call may take, with a unit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: redistore %s [flags]%s\n\n%s\n\nflags:\n", c.name, c.args, c.summary)
		fs.PrintDefaults()
	}
	return fs, o
}

// durationFlag is a time.Duration flag whose error says what to type.
type durationFlag time.Duration

func (d *durationFlag) String() string { return time.Duration(*d).String() }

func (d *durationFlag) Set(v string) error {
	p, err := time.ParseDuration(v)
	if err != nil {
		if _, nerr := strconv.ParseFloat(v, 64); nerr == nil {
			return fmt.Errorf("use a unit, e.g. %ss", v)
		}
		return errors.New("use a duration with a unit, e.g. 5s or 500ms")
	}
	*d = durationFlag(p)
	return nil
}

// parseInterleaved parses flags that may come before or after the
// positional arguments, as in "inspect ID --cookie sid".
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(positional, rest...), nil // "--" ends the flags
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// usageError is a mistake in the command line or the environment: nothing
// was sent to Redis. It exits with status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// env is what a running command works with.
type env struct {
	getenv         func(string) string
	stdout, stderr io.Writer
	opts           *options
}

// jsonFlag defines --json, which every command takes.
func jsonFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("json", false, "print a JSON document instead of text")
}

// printJSON writes v on stdout as the command's JSON document. It is
// encoded whole before anything is written, so that a failure never leaves
// half a document for a script to read.
func (e *env) printJSON(v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := e.stdout.Write(buf.Bytes())
	return err
}

// jsonTime is a time for a JSON document: RFC 3339 in UTC, or nil (null)
// for the zero time, which stands for "unknown" or "never".
func jsonTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

// config checks the shared flags and returns the store's Config without a
// Client. With needKeys, KeyPairs come from REDISTORE_KEYS; otherwise a
// throwaway random key stands in (New requires one; commands that never
// touch a cookie do not need the real ones).
func (e *env) config(needKeys bool) (redistore.Config, error) {
	cfg := redistore.Config{KeyPrefix: e.opts.prefix, Timeout: e.opts.timeout}
	if e.opts.legacy != "" {
		cfg.Legacy = &redistore.Legacy{KeyPrefix: e.opts.legacy}
	}
	switch e.opts.mode {
	case "hash":
		cfg.Mode = redistore.HashMode
		cfg.Buckets = e.opts.buckets
	case "string":
		cfg.Mode = redistore.StringMode
	default:
		return cfg, usageErrorf("--mode %q: use hash or string", e.opts.mode)
	}
	if e.opts.prefix == "" {
		return cfg, usageErrorf("--prefix is empty: give the store's Config.KeyPrefix (default %q)", redistore.DefaultKeyPrefix)
	}
	if e.opts.timeout <= 0 {
		return cfg, usageErrorf("--timeout %v: use a positive duration", e.opts.timeout)
	}
	if raw := e.getenv(envSealKeys); strings.TrimSpace(raw) != "" {
		keys, err := parseSealKeys(raw)
		if err != nil {
			return cfg, err
		}
		cfg.EncryptionKeys = keys
	}
	if !needKeys {
		key := make([]byte, 32)
		rand.Read(key)
		cfg.KeyPairs = [][]byte{key}
		return cfg, nil
	}
	raw := e.getenv(envKeys)
	if strings.TrimSpace(raw) == "" {
		return cfg, usageErrorf("%s is not set: it must hold the store's Config.KeyPairs, hex-encoded and comma-separated", envKeys)
	}
	pairs, err := parseKeyPairs(raw)
	if err != nil {
		return cfg, err
	}
	cfg.KeyPairs = pairs
	return cfg, nil
}

// parseSealKeys decodes REDISTORE_ENCRYPTION_KEYS: Config.EncryptionKeys
// in order, hex-encoded, comma-separated. Its errors never quote a key.
func parseSealKeys(raw string) ([][]byte, error) {
	items := strings.Split(raw, ",")
	keys := make([][]byte, len(items))
	for i, item := range items {
		b, err := hex.DecodeString(strings.TrimSpace(item))
		if err != nil {
			return nil, usageErrorf("%s item %d (of %d) is not hexadecimal: encode each key with hex", envSealKeys, i+1, len(items))
		}
		if len(b) != 32 {
			return nil, usageErrorf("%s item %d (of %d) is %d bytes: each encryption key is 32 random bytes (make one with openssl rand -hex 32)", envSealKeys, i+1, len(items), len(b))
		}
		keys[i] = b
	}
	return keys, nil
}

// parseKeyPairs decodes REDISTORE_KEYS. Its errors never quote a key.
func parseKeyPairs(raw string) ([][]byte, error) {
	items := strings.Split(raw, ",")
	pairs := make([][]byte, len(items))
	for i, item := range items {
		item = strings.TrimSpace(item)
		if item == "" {
			continue // a nil block key
		}
		b, err := hex.DecodeString(item)
		if err != nil {
			return nil, usageErrorf("%s item %d (of %d) is not hexadecimal: encode each key with hex", envKeys, i+1, len(items))
		}
		if i == 0 && len(b) < redistore.MinHashKeyLength { // later pairs may be older, shorter keys
			return nil, usageErrorf("%s item %d (of %d) is a %d-byte hash key: the store's hash keys are at least %d random bytes (make one with openssl rand -hex 32)", envKeys, i+1, len(items), len(b), redistore.MinHashKeyLength)
		}
		pairs[i] = b
	}
	return pairs, nil
}

// connect opens the client named by --url or REDIS_URL. Every call through
// it is bounded by --timeout, SCANs and ROLEs made inside the library
// included.
func (e *env) connect() (rueidis.Client, error) {
	raw := e.opts.url
	if raw == "" {
		raw = e.getenv(envURL)
	}
	if raw == "" {
		return nil, usageErrorf("no Redis URL: pass --url or set %s", envURL)
	}
	if err := checkScheme(raw); err != nil {
		return nil, err
	}
	withTLS, err := e.tlsOptions(raw)
	if err != nil {
		return nil, err
	}
	withTimeout := withDialTimeout(raw, e.opts.timeout)
	c, err := redistore.NewClient(withTimeout, withTLS)
	if err != nil {
		// NewClient redacts the password; name the URL as the user gave it.
		return nil, authHint(renamed{err, redactedURL(withTimeout), redactedURL(raw)})
	}
	// The store bounds its own calls; doctor sends commands of its own.
	return redistore.TimeoutClient(c, e.opts.timeout), nil
}

// open connects and builds the store the shared flags describe; adjust, if
// not nil, may change its Config first. The caller closes the client.
func (e *env) open(needKeys bool, adjust func(*redistore.Config)) (*redistore.Store, rueidis.Client, error) {
	cfg, err := e.config(needKeys)
	if err != nil {
		return nil, nil, err
	}
	client, err := e.connect()
	if err != nil {
		return nil, nil, err
	}
	cfg.Client = client
	if adjust != nil {
		adjust(&cfg)
	}
	store, err := redistore.New(cfg)
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	return store, client, nil
}

// tlsOptions returns what the TLS flags add to the client's options:
// the CA certificates to trust and a client certificate.
func (e *env) tlsOptions(raw string) (func(*rueidis.ClientOption), error) {
	o := e.opts
	none := func(*rueidis.ClientOption) {}
	if o.tlsCA == "" && o.tlsCert == "" && o.tlsKey == "" {
		return none, nil
	}
	if l := strings.ToLower(raw); !strings.HasPrefix(l, "rediss://") && !strings.HasPrefix(l, "valkeys://") {
		return nil, usageErrorf("--tls-ca, --tls-cert and --tls-key are for TLS: use a rediss:// URL")
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return nil, usageErrorf("--tls-cert and --tls-key go together: a client certificate and its private key")
	}
	var pool *x509.CertPool
	if o.tlsCA != "" {
		pem, err := os.ReadFile(o.tlsCA)
		if err != nil {
			return nil, usageErrorf("--tls-ca: %v", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usageErrorf("--tls-ca %s holds no PEM certificate", o.tlsCA)
		}
	}
	var certs []tls.Certificate
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return nil, usageErrorf("--tls-cert/--tls-key: %v", err)
		}
		certs = []tls.Certificate{cert}
	}
	return func(opt *rueidis.ClientOption) {
		if opt.TLSConfig == nil {
			opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if pool != nil {
			opt.TLSConfig.RootCAs = pool
		}
		opt.TLSConfig.Certificates = certs
	}, nil
}

// schemes are the URL schemes rueidis.ParseURL accepts.
var schemes = []string{"redis://", "rediss://", "unix://", "valkey://", "valkeys://"}

// checkScheme refuses a URL of another scheme before anything is sent.
func checkScheme(raw string) error {
	for _, s := range schemes {
		if strings.HasPrefix(strings.ToLower(raw), s) {
			return nil
		}
	}
	scheme, _, ok := strings.Cut(raw, "://")
	what := "a URL with no scheme"
	if ok {
		what = "a " + scheme + ":// URL"
	}
	return usageErrorf("the Redis URL is %s: use redis://[user:password@]host:port[/db], rediss:// for TLS, unix:///path/to/socket, or redis://host:port?master_set=NAME for Sentinel", what)
}

// authHint explains the server's refusals of a connection without (or with
// a wrong) password.
func authHint(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "NOAUTH"):
		return fmt.Errorf("%w (the server asks for a password: put it in the URL, redis://:PASSWORD@host:port, or in %s)", err, envURL)
	case strings.Contains(msg, "WRONGPASS"):
		return fmt.Errorf("%w (the user name or password in the URL is wrong)", err)
	}
	return err
}

// withDialTimeout bounds the connection as well, unless the URL already
// says how long to wait (rueidis would wait 5 seconds).
func withDialTimeout(raw string, d time.Duration) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw // NewClient reports it, redacted
	}
	q := u.Query()
	if q.Has("dial_timeout") {
		return raw
	}
	q.Set("dial_timeout", d.String())
	u.RawQuery = q.Encode()
	return u.String()
}

// redactedURL is a URL fit for a message: without its password.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the Redis URL"
	}
	return u.Redacted()
}

// renamed is err with one string of its message replaced.
type renamed struct {
	err      error
	old, new string
}

func (r renamed) Error() string { return strings.ReplaceAll(r.err.Error(), r.old, r.new) }
func (r renamed) Unwrap() error { return r.err }

// isTerminal reports whether w is a terminal. The standard library has no
// isatty; a character device that is not /dev/null is one in practice.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}

// shortID shows enough of a session ID to tell sessions apart in a
// conversation, and not enough to use it.
func shortID(id string) string {
	if len(id) <= 4 {
		return "…"
	}
	return id[:4] + "…"
}
