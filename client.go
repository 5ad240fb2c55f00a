package redistore

import (
	"errors"
	"fmt"
	neturl "net/url"
	"runtime"
	"time"

	"github.com/redis/rueidis"
)

// DefaultMaxFlushDelay is the rueidis MaxFlushDelay NewClient sets.
const DefaultMaxFlushDelay = 100 * time.Microsecond

// DefaultSentinelRefresh is how often a client NewClient builds for Sentinel
// asks the sentinels which server is the primary (rueidis's
// Sentinel.TopologyRefreshInterval).
const DefaultSentinelRefresh = time.Second

// NewClient connects to Redis at a URL, as rueidis.ParseURL reads it:
//
//	redis://[user:password@]host:port[/db]       plain TCP
//	rediss://[user:password@]host:port[/db]      TLS
//	unix:///path/to/redis.sock?db=N              Unix socket
//	redis://s1:26379?addr=s2:26379&master_set=M  Sentinel
//
// with rueidis's query options (protocol=2, dial_timeout, client_name, ...).
// Three options differ from rueidis's defaults. Client-side caching is off: the
// store does not use it, and some servers (and Redis-compatible proxies)
// refuse CLIENT TRACKING. MaxFlushDelay is DefaultMaxFlushDelay: when several
// requests are in flight, rueidis waits up to that long after each write to
// the socket to gather more commands into the next one, which under load
// saves most of its system calls (a single request in flight is never
// delayed). On two cores (GOMAXPROCS 2) it sends everything through one
// connection to each server, where rueidis would open two (rueidis itself
// opens one on one core, and one per node in a cluster): the commands of
// concurrent requests then share fewer, larger writes and reads, which cost
// the client and Redis less CPU per request (measured with the comparison
// program in bench/ on two cores: about 5 us less per read-modify-write,
// 5-10% more of them a second). With Sentinel, the client also asks the
// sentinels for the primary every DefaultSentinelRefresh: rueidis otherwise
// follows a failover only by the +switch-master message of the one sentinel
// it listens to, and a client that misses it keeps writing to the old
// primary, or to nothing, until it is restarted. Each of adjust, if any, may then change the options, e.g. to set
// ForceSingleClient for miniredis, a TLS configuration, or MaxFlushDelay 0.
// The caller owns the client and closes it.
func NewClient(url string, adjust ...func(*rueidis.ClientOption)) (rueidis.Client, error) {
	if url == "" {
		return nil, errors.New("redistore: the Redis URL is empty: give NewClient one such as redis://localhost:6379 (is REDIS_URL set?)")
	}
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		// The parser's message quotes the URL, password and all.
		return nil, fmt.Errorf("redistore: %q is not a Redis URL that rueidis.ParseURL accepts", redactURL(url))
	}
	opt.DisableCache = true
	opt.MaxFlushDelay = DefaultMaxFlushDelay
	opt.PipelineMultiplex = pipelineMultiplex(runtime.GOMAXPROCS(0))
	if opt.Sentinel.MasterSet != "" {
		opt.Sentinel.TopologyRefreshInterval = DefaultSentinelRefresh
	}
	for _, f := range adjust {
		f(&opt)
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("redistore: connecting to %s: %w", redactURL(url), err)
	}
	return c, nil
}

// pipelineMultiplex is the rueidis PipelineMultiplex NewClient sets for a
// process of procs cores: -1 (one connection) for two or fewer, else 0
// (rueidis's default: for a single server or Sentinel, two connections on
// three cores, four on four or more; one per node in a cluster).
func pipelineMultiplex(procs int) int {
	if procs <= 2 {
		return -1
	}
	return 0
}

// redactURL hides the password in a Redis URL.
func redactURL(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil {
		return "the Redis URL (unparsable, not shown)"
	}
	return u.Redacted()
}
