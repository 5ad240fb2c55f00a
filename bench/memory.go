package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/internal/redistest"
)

// memLayout is one way of laying sessions out in Redis, written by the store
// that owns it on a fresh redis-server.
type memLayout struct {
	name      string
	label     string
	contender string
	listpack  int // hash-max-listpack-value to set; 0 keeps the server default (64)
	fieldTTL  redistore.FieldTTL
}

// memLayouts are the layouts of the memory report; where the server has
// hash-field TTLs (Redis 7.4+), HashMode is measured with them (the
// default) and without (FieldTTLOff).
func memLayouts(listpack int, fieldTTLs bool) []memLayout {
	l := []memLayout{
		{name: "string", label: "redistore StringMode", contender: "string"},
		{name: "hash", label: "redistore HashMode, server defaults (hash-max-listpack-value 64)", contender: "hash"},
		{name: "hash-lp", label: fmt.Sprintf("redistore HashMode, hash-max-listpack-value %d", listpack), contender: "hash", listpack: listpack},
	}
	if fieldTTLs {
		l[1].label = "redistore HashMode, field TTLs, server defaults (hash-max-listpack-value 64)"
		l[2].label = fmt.Sprintf("redistore HashMode, field TTLs, hash-max-listpack-value %d", listpack)
		l = append(l,
			memLayout{name: "hash-off", label: "redistore HashMode, FieldTTLOff, server defaults", contender: "hash", fieldTTL: redistore.FieldTTLOff},
			memLayout{name: "hash-lp-off", label: fmt.Sprintf("redistore HashMode, FieldTTLOff, hash-max-listpack-value %d", listpack), contender: "hash", listpack: listpack, fieldTTL: redistore.FieldTTLOff})
	}
	l = append(l,
		memLayout{name: "string-sealed", label: "redistore StringMode, sealed", contender: "string-sealed"},
		memLayout{name: "hash-lp-sealed", label: fmt.Sprintf("redistore HashMode, sealed, hash-max-listpack-value %d", listpack), contender: "hash-sealed", listpack: listpack})
	return append(l, memLayout{name: "boj", label: "boj/redistore v1.4.1", contender: "boj"})
}

// memResult is the memory one layout took for one session size.
type memResult struct {
	layout     memLayout
	size       int
	sessions   int
	perSession float64 // used_memory delta / sessions
	keys       int64   // keys in the database afterwards
	encoding   string  // OBJECT ENCODING of a sample key
	took       time.Duration
}

// memoryResults is the memory report: results[size index][layout index].
type memoryResults struct {
	sizes   []int
	layouts []memLayout
	results [][]memResult
}

// ratio is a layout's bytes per session over boj/redistore's.
func (m *memoryResults) ratio(si, li int) float64 {
	for bi, l := range m.layouts {
		if l.contender == baseline && m.results[si][bi].perSession > 0 {
			return m.results[si][li].perSession / m.results[si][bi].perSession
		}
	}
	return 0
}

// runMemory writes cfg.memSessions sessions of each size in each layout,
// each on a redis-server of its own, and measures used_memory.
func runMemory(cfg *config, workDir string) (*memoryResults, error) {
	m := &memoryResults{sizes: cfg.memSizes, layouts: memLayouts(cfg.memListpack, cfg.install.AtLeast(7, 4))}
	if cfg.memOnly != nil {
		m.layouts = slices.DeleteFunc(m.layouts, func(l memLayout) bool { return !slices.Contains(cfg.memOnly, l.name) })
	}
	for i, size := range cfg.memSizes {
		p, err := newPayload(size, cfg.payloadKind, uint64(i+1))
		if err != nil {
			return nil, err
		}
		row := make([]memResult, len(m.layouts))
		for li, l := range m.layouts {
			r, err := measureLayout(cfg, workDir, l, p)
			if err != nil {
				return nil, fmt.Errorf("memory, %s, %s sessions: %w", l.label, sizeLabel(size), err)
			}
			fmt.Fprintf(cfg.log, "memory %s %s: %.0f bytes/session, %d keys, %s, %v\n",
				sizeLabel(size), l.name, r.perSession, r.keys, r.encoding, r.took.Round(time.Millisecond))
			row[li] = r
		}
		m.results = append(m.results, row)
	}
	return m, nil
}

func measureLayout(cfg *config, workDir string, l memLayout, p *payload) (memResult, error) {
	srv, err := redistest.StartWith(workDir, redistest.Options{Install: cfg.install})
	if err != nil {
		return memResult{}, fmt.Errorf("starting redis-server: %w", err)
	}
	defer func() {
		srv.Stop()
		os.RemoveAll(srv.Dir)
	}()
	if l.listpack > 0 {
		if _, err := do(srv.Addr, "CONFIG", "SET", "hash-max-listpack-value", strconv.Itoa(l.listpack)); err != nil {
			return memResult{}, err
		}
	}
	before, err := usedMemory(srv.Addr)
	if err != nil {
		return memResult{}, err
	}
	start := time.Now()
	last, err := writeSessions(cfg, srv.Addr, l, p)
	if err != nil {
		return memResult{}, err
	}
	took := time.Since(start)
	if err := waitIdle(srv.Addr); err != nil {
		return memResult{}, err
	}
	after, err := usedMemory(srv.Addr)
	if err != nil {
		return memResult{}, err
	}
	r := memResult{layout: l, size: p.size, sessions: cfg.memSessions, took: took,
		perSession: float64(after-before) / float64(cfg.memSessions)}
	ks, _, err := info(srv.Addr, "keyspace")
	if err != nil {
		return memResult{}, err
	}
	for _, kv := range strings.Split(ks["db0"], ",") {
		if v, ok := strings.CutPrefix(kv, "keys="); ok {
			r.keys, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if !strings.HasPrefix(l.contender, "hash") && r.keys != int64(cfg.memSessions) {
		return memResult{}, fmt.Errorf("%d keys after writing %d sessions", r.keys, cfg.memSessions)
	}
	// Every key of a layout has the same encoding at these sizes; show one.
	key, err := do(srv.Addr, "RANDOMKEY")
	if err != nil {
		return memResult{}, err
	}
	if r.encoding, err = do(srv.Addr, "OBJECT", "ENCODING", key); err != nil {
		return memResult{}, err
	}
	// The last session written must load through its cookie.
	c, err := newContender(context.Background(), l.contender, contenderConfig{addr: srv.Addr, keyPairs: cfg.keyPairs, bojPool: 1})
	if err != nil {
		return memResult{}, err
	}
	defer c.close()
	if err := c.request(&last, false, 0, c.wantOf(p)); err != nil {
		return memResult{}, fmt.Errorf("reading back a session: %w", err)
	}
	return r, nil
}

// writeSessions creates cfg.memSessions sessions with cfg.memConc workers and
// returns the cookie of one of them. Its clients are closed on return.
func writeSessions(cfg *config, addr string, l memLayout, p *payload) (*http.Cookie, error) {
	// boj/redistore gets a pool as large as the workers, so that it does
	// not churn connections; the layout does not depend on it.
	c, err := newContender(context.Background(), l.contender, contenderConfig{addr: addr, keyPairs: cfg.keyPairs, bojPool: cfg.memConc, fieldTTL: l.fieldTTL})
	if err != nil {
		return nil, err
	}
	defer c.close()
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	var last *http.Cookie
	for range cfg.memConc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ck *http.Cookie
			for next.Add(1) <= int64(cfg.memSessions) {
				var err error
				if ck, err = c.create(p); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					next.Store(int64(cfg.memSessions)) // stop everyone
					return
				}
			}
			mu.Lock()
			if ck != nil {
				last = ck
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if last == nil {
		return nil, errors.New("no session was written")
	}
	return last, nil
}

func usedMemory(addr string) (int64, error) {
	f, _, err := info(addr, "memory")
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(f["used_memory"], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("INFO memory: used_memory %q", f["used_memory"])
	}
	return n, nil
}

// waitIdle waits until the writers' connections are gone (their buffers
// count in used_memory): only the INFO connection itself remains.
func waitIdle(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, _, err := info(addr, "clients")
		if err != nil {
			return err
		}
		if f["connected_clients"] == "1" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s clients still connected after 10s", f["connected_clients"])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
