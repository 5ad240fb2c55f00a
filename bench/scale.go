package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/internal/redistest"
)

// The scale report measures what docs/scaling.md extrapolates from: bytes
// per session on one server and on a Redis Cluster of three primaries,
// buckets per session count, and how long Store.Stats and Store.Sweep take,
// per mode, with sessions written through Save.

// scaleShortShare is the share of sessions written with a short MaxAge, so
// that the sweep has expired sessions to remove.
const scaleShortShare = 10

// scaleShortAge is their MaxAge, in seconds.
const scaleShortAge = 3

// scaleResult is one row of the scale report.
type scaleResult struct {
	topology   string // "standalone" or "cluster (3 primaries)"
	mode       redistore.Mode
	sessions   int
	keys       int64 // keys in the database(s) after writing
	perSession float64
	valueBytes float64       // the mean stored value in Stats' sample
	writeRate  float64       // sessions written per second
	stats      time.Duration // Store.Stats with the default sample
	sweep      time.Duration // Store.Sweep once the short sessions expired (HashMode)
	removed    int           // sessions the sweep removed
	live       int           // sessions the sweep found live
}

// runScale measures both modes on a standalone server and on a cluster.
func runScale(cfg *config, workDir string) ([]scaleResult, error) {
	p, err := newPayload(cfg.scaleSize, cfg.payloadKind, 7)
	if err != nil {
		return nil, err
	}
	var out []scaleResult
	for _, clustered := range []bool{false, true} {
		for _, mode := range []redistore.Mode{redistore.HashMode, redistore.StringMode} {
			r, err := measureScale(cfg, workDir, clustered, mode, p)
			if err != nil {
				return nil, fmt.Errorf("scale, %s, %v: %w", topologyName(clustered), mode, err)
			}
			fmt.Fprintf(cfg.log, "scale %s %v: %.0f bytes/session, %d keys, stats %v, sweep %v (%d removed, %d live)\n",
				r.topology, r.mode, r.perSession, r.keys, r.stats.Round(time.Millisecond), r.sweep.Round(time.Millisecond), r.removed, r.live)
			out = append(out, r)
		}
	}
	return out, nil
}

func topologyName(clustered bool) string {
	if clustered {
		return "cluster (3 primaries)"
	}
	return "standalone"
}

func measureScale(cfg *config, workDir string, clustered bool, mode redistore.Mode, p *payload) (scaleResult, error) {
	var primaries []string
	if clustered {
		c, err := cfg.install.StartCluster(workDir, 3, 0)
		if err != nil {
			return scaleResult{}, err
		}
		defer func() {
			for _, s := range c.Servers() {
				os.RemoveAll(s.Dir)
			}
			c.Stop()
		}()
		primaries = c.Addrs()
	} else {
		srv, err := redistest.StartWith(workDir, redistest.Options{Install: cfg.install})
		if err != nil {
			return scaleResult{}, err
		}
		defer func() {
			srv.Stop()
			os.RemoveAll(srv.Dir)
		}()
		primaries = []string{srv.Addr}
	}
	for _, addr := range primaries {
		// The setting redistore doctor advises, so that buckets stay
		// listpacks; it changes nothing in StringMode.
		if _, err := do(addr, "CONFIG", "SET", "hash-max-listpack-value", strconv.Itoa(cfg.memListpack)); err != nil {
			return scaleResult{}, err
		}
	}
	before, err := sumMemory(primaries)
	if err != nil {
		return scaleResult{}, err
	}
	client, err := redistore.NewClient("redis://" + primaries[0])
	if err != nil {
		return scaleResult{}, err
	}
	store, err := redistore.New(redistore.Config{Client: client, KeyPairs: cfg.keyPairs, Mode: mode, Buckets: bucketsFor(cfg, mode), Timeout: 10 * time.Second})
	if err != nil {
		client.Close()
		return scaleResult{}, err
	}
	start := time.Now()
	if err := scaleWrite(cfg, store, p); err != nil {
		client.Close()
		return scaleResult{}, err
	}
	took := time.Since(start)
	client.Close()
	r := scaleResult{topology: topologyName(clustered), mode: mode, sessions: cfg.scaleSessions,
		writeRate: float64(cfg.scaleSessions) / took.Seconds()}
	for _, addr := range primaries {
		if err := waitIdle(addr); err != nil {
			return scaleResult{}, err
		}
	}
	after, err := sumMemory(primaries)
	if err != nil {
		return scaleResult{}, err
	}
	r.perSession = float64(after-before) / float64(cfg.scaleSessions)
	for _, addr := range primaries {
		n, err := do(addr, "DBSIZE")
		if err != nil {
			return scaleResult{}, err
		}
		k, _ := strconv.ParseInt(n, 10, 64)
		r.keys += k
	}

	// Stats and Sweep with a client of their own, as an operator's command
	// would run them.
	client, err = redistore.NewClient("redis://" + primaries[0])
	if err != nil {
		return scaleResult{}, err
	}
	defer client.Close()
	store, err = redistore.New(redistore.Config{Client: client, KeyPairs: cfg.keyPairs, Mode: mode, Buckets: bucketsFor(cfg, mode), Timeout: 10 * time.Second})
	if err != nil {
		return scaleResult{}, err
	}
	ctx := context.Background()
	st, err := store.Stats(ctx, 0)
	if err != nil {
		return scaleResult{}, err
	}
	r.stats = st.Duration
	r.valueBytes = st.ValueBytes
	// The short sessions may have expired already where Redis removes them
	// itself (field TTLs).
	if st.Sessions > cfg.scaleSessions || st.Sessions < cfg.scaleSessions-cfg.scaleSessions/scaleShortShare {
		return scaleResult{}, fmt.Errorf("Stats counted %d sessions, %d were written", st.Sessions, cfg.scaleSessions)
	}
	if mode == redistore.HashMode {
		if wait := time.Until(start.Add(time.Duration(scaleShortAge+1) * time.Second)); wait > 0 {
			time.Sleep(wait)
		}
		sw, err := store.Sweep(ctx)
		if err != nil {
			return scaleResult{}, err
		}
		r.sweep, r.removed, r.live = sw.Duration, sw.Removed, sw.Sessions
	}
	return r, nil
}

// scaleWrite writes cfg.scaleSessions sessions through Save; in HashMode one
// in scaleShortShare has a MaxAge of scaleShortAge seconds, for the sweep.
func scaleWrite(cfg *config, store *redistore.Store, p *payload) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for range cfg.memConc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(cfg.scaleSessions) {
					return
				}
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				w := httptest.NewRecorder()
				s, err := store.New(r, cookieName)
				if err == nil {
					s.Values = p.copyValues()
					if i%scaleShortShare == 0 && store.KeyType() == "hash" {
						s.Options.MaxAge = scaleShortAge
					}
					err = s.Save(r, w)
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					next.Store(int64(cfg.scaleSessions)) // stop everyone
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// bucketsFor is -scale-buckets for HashMode; StringMode has no buckets.
func bucketsFor(cfg *config, mode redistore.Mode) int {
	if mode == redistore.HashMode {
		return cfg.scaleBuckets
	}
	return 0
}

func sumMemory(addrs []string) (int64, error) {
	var sum int64
	for _, a := range addrs {
		n, err := usedMemory(a)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// renderScale is the scale report in Markdown.
func renderScale(cfg *config, server string, rs []scaleResult) string {
	var b strings.Builder
	buckets := cfg.scaleBuckets
	if buckets == 0 {
		buckets = redistore.DefaultBuckets
	}
	fmt.Fprintf(&b, "### %s: %d sessions of %s, %d buckets\n\n", server, cfg.scaleSessions, sizeLabel(cfg.scaleSize), buckets)
	fmt.Fprintf(&b, "`%s`; `hash-max-listpack-value %d` on every primary; in HashMode one session in %d with a %d s MaxAge, so that Sweep has expired sessions to remove.\n\n",
		cfg.command, cfg.memListpack, scaleShortShare, scaleShortAge)
	b.WriteString("| topology | mode | keys | bytes/session | stored value | overhead | sessions/key | writes/s | `Stats` | `Sweep` (removed, live) |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		sweep := "(none: Redis expires keys)"
		if r.mode == redistore.HashMode {
			sweep = fmt.Sprintf("%.2f s (%d, %d)", r.sweep.Seconds(), r.removed, r.live)
		}
		fmt.Fprintf(&b, "| %s | %v | %d | %.0f | %.0f | %.0f | %.1f | %.0f | %.2f s | %s |\n",
			r.topology, r.mode, r.keys, r.perSession, r.valueBytes, r.perSession-r.valueBytes,
			float64(r.sessions)/float64(max(r.keys, 1)), r.writeRate, r.stats.Seconds(), sweep)
	}
	return b.String()
}

// scaleOnly runs the scale report alone and prints it.
func scaleOnly(cfg *config) error {
	workDir, err := os.MkdirTemp("", "redistore-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(workDir)
	version, err := startedVersion(cfg, workDir)
	if err != nil {
		return err
	}
	rs, err := runScale(cfg, workDir)
	if err != nil {
		return err
	}
	fmt.Fprint(cfg.stdout, renderScale(cfg, version, rs))
	return nil
}
