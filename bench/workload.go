package main

import (
	"fmt"
	"math/bits"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"
)

// workload is what each request does after loading its session.
type workload struct {
	name  string // flag name
	label string
	rmw   bool // change one value and Save
}

var workloadList = []workload{
	{name: "rmw", label: "read-modify-write", rmw: true},
	{name: "ro", label: "read-only", rmw: false},
}

func workloadByName(name string) (workload, bool) {
	for _, w := range workloadList {
		if w.name == name {
			return w, true
		}
	}
	return workload{}, false
}

// jar is one simulated browser's cookies: a few sessions, used in turn.
type jar struct {
	cookies []*http.Cookie
	next    int
}

// histogram records latencies in log-linear buckets: exact below 64 ns,
// then 32 buckets per power of two (about 3% wide).
type histogram struct {
	counts [1920]uint32
}

func bucketOf(v uint64) int {
	if v < 64 {
		return int(v)
	}
	e := bits.Len64(v) - 6
	return 32*e + int(v>>e)
}

// bucketValue is the middle of a bucket.
func bucketValue(i int) uint64 {
	if i < 64 {
		return uint64(i)
	}
	e := i/32 - 1
	m := uint64(i - 32*e)
	return m<<e + (uint64(1)<<e)/2
}

func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(uint64(max(d, 0)))]++
}

func (h *histogram) add(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

// quantile returns the q-quantile (0 < q <= 1) of the recorded latencies.
func (h *histogram) quantile(q float64) time.Duration {
	var total uint64
	for _, c := range h.counts {
		total += uint64(c)
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	rank = min(max(rank, 1), total)
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return time.Duration(bucketValue(i))
		}
	}
	return 0
}

// runStats is one timed run of one contender.
type runStats struct {
	ops       int64
	errs      int64
	firstErr  error
	opsPerSec float64
	p50, p99  time.Duration
	allocs    float64            // heap allocations per request
	bytes     float64            // heap bytes allocated per request
	cmds      float64            // Redis commands per request
	calls     map[string]float64 // the same, by command
	netBytes  float64            // bytes to and from Redis per request
	clientCPU float64            // this process's CPU time per request, seconds
	serverCPU float64            // redis-server's CPU time per request, seconds
}

type workerState struct {
	hist     histogram
	jar      *jar
	ops      int64
	errs     int64
	firstErr error
	n        int
}

// runOnce runs conc workers of requests against c for d, each with its own
// jar, and measures the run. With measure false (a warm-up), it skips the
// server and allocation snapshots.
func runOnce(c *contender, w workload, p *payload, jars []*jar, d time.Duration, addr string, measure bool) (runStats, error) {
	conc := len(jars)
	want := c.wantOf(p)
	workers := make([]*workerState, conc)
	for i := range workers {
		workers[i] = &workerState{jar: jars[i], n: i << 20}
	}
	var before serverStats
	var m0, m1 runtime.MemStats
	var cpu0 float64
	if measure {
		runtime.GC()
		var err error
		if before, err = readServerStats(addr); err != nil {
			return runStats{}, err
		}
		runtime.ReadMemStats(&m0)
		cpu0 = processCPU()
	}

	var ready, done sync.WaitGroup
	start := make(chan struct{})
	var deadline time.Time
	ready.Add(conc)
	done.Add(conc)
	for _, ws := range workers {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			j := ws.jar
			now := time.Now()
			for now.Before(deadline) {
				ck := &j.cookies[j.next]
				j.next = (j.next + 1) % len(j.cookies)
				ws.n++
				err := c.request(ck, w.rmw, ws.n, want)
				t := time.Now()
				ws.hist.record(t.Sub(now))
				now = t
				ws.ops++
				if err != nil {
					ws.errs++
					if ws.firstErr == nil {
						ws.firstErr = err
					}
				}
			}
		}()
	}
	ready.Wait()
	t0 := time.Now()
	deadline = t0.Add(d)
	close(start)
	done.Wait()
	elapsed := time.Since(t0)

	var rs runStats
	var hist histogram
	for _, ws := range workers {
		rs.ops += ws.ops
		rs.errs += ws.errs
		if rs.firstErr == nil {
			rs.firstErr = ws.firstErr
		}
		hist.add(&ws.hist)
	}
	if !measure {
		return rs, nil
	}
	cpu1 := processCPU()
	runtime.ReadMemStats(&m1)
	after, err := readServerStats(addr)
	if err != nil {
		return runStats{}, err
	}
	if rs.ops == 0 {
		return rs, fmt.Errorf("%s: no request completed in %v", c.label, d)
	}
	ops := float64(rs.ops)
	rs.opsPerSec = ops / elapsed.Seconds()
	rs.p50 = hist.quantile(0.50)
	rs.p99 = hist.quantile(0.99)
	rs.allocs = float64(m1.Mallocs-m0.Mallocs) / ops
	rs.bytes = float64(m1.TotalAlloc-m0.TotalAlloc) / ops
	delta := deltaStats(before, after)
	if delta.total() == 0 {
		return rs, fmt.Errorf("%s: INFO commandstats on %s counted no command during %d requests", c.label, addr, rs.ops)
	}
	rs.cmds = float64(delta.total()) / ops
	rs.calls = make(map[string]float64, len(delta.calls))
	for k, v := range delta.calls {
		rs.calls[k] = float64(v) / ops
	}
	rs.netBytes = float64(delta.netIn+delta.netOut) / ops
	rs.clientCPU = (cpu1 - cpu0) / ops
	rs.serverCPU = delta.cpu / ops
	return rs, nil
}

// cellKey names one measured combination.
type cellKey struct {
	workload  string
	size      int
	conc      int
	contender string
}

// cellResult holds the runs of one combination and their medians.
type cellResult struct {
	cellKey
	runs []runStats
	med  runStats // each field the median over runs
	// spread is (max - min) / median of ops/s over the runs.
	spread float64
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summarize fills med and spread from runs.
func (cr *cellResult) summarize() {
	pick := func(f func(runStats) float64) float64 {
		xs := make([]float64, len(cr.runs))
		for i, r := range cr.runs {
			xs[i] = f(r)
		}
		return median(xs)
	}
	m := runStats{calls: make(map[string]float64)}
	m.opsPerSec = pick(func(r runStats) float64 { return r.opsPerSec })
	m.p50 = time.Duration(pick(func(r runStats) float64 { return float64(r.p50) }))
	m.p99 = time.Duration(pick(func(r runStats) float64 { return float64(r.p99) }))
	m.allocs = pick(func(r runStats) float64 { return r.allocs })
	m.bytes = pick(func(r runStats) float64 { return r.bytes })
	m.cmds = pick(func(r runStats) float64 { return r.cmds })
	m.netBytes = pick(func(r runStats) float64 { return r.netBytes })
	m.clientCPU = pick(func(r runStats) float64 { return r.clientCPU })
	m.serverCPU = pick(func(r runStats) float64 { return r.serverCPU })
	names := map[string]bool{}
	for _, r := range cr.runs {
		m.ops += r.ops
		m.errs += r.errs
		if m.firstErr == nil {
			m.firstErr = r.firstErr
		}
		for k := range r.calls {
			names[k] = true
		}
	}
	for k := range names {
		m.calls[k] = pick(func(r runStats) float64 { return r.calls[k] })
	}
	cr.med = m
	lo, hi := cr.runs[0].opsPerSec, cr.runs[0].opsPerSec
	for _, r := range cr.runs {
		lo, hi = min(lo, r.opsPerSec), max(hi, r.opsPerSec)
	}
	if m.opsPerSec > 0 {
		cr.spread = (hi - lo) / m.opsPerSec
	}
}

// throughputResults is every cell of the throughput benchmark.
type throughputResults struct {
	cells map[cellKey]*cellResult
}

func (t *throughputResults) get(k cellKey) *cellResult { return t.cells[k] }

// ratio is the median, over the rounds, of a contender's ops/s divided by
// the baseline's in the same round (the runs of one round are back to back,
// so noise that drifts over minutes cancels out), or 0 when either is
// missing.
func (t *throughputResults) ratio(k cellKey) float64 {
	b := k
	b.contender = baseline
	cr, br := t.cells[k], t.cells[b]
	if cr == nil || br == nil {
		return 0
	}
	var xs []float64
	for i := range min(len(cr.runs), len(br.runs)) {
		if br.runs[i].opsPerSec > 0 {
			xs = append(xs, cr.runs[i].opsPerSec/br.runs[i].opsPerSec)
		}
	}
	return median(xs)
}

// runThroughput measures every workload x size x concurrency x contender,
// with the runs of one cell interleaved round-robin across contenders and
// the starting contender rotating from run to run.
func runThroughput(cfg *config, addr string, contenders []*contender, payloads []*payload) (*throughputResults, error) {
	maxConc := slices.Max(cfg.conc)
	// jars[contender][size][worker]
	jars := make([][][]*jar, len(contenders))
	for ci, c := range contenders {
		jars[ci] = make([][]*jar, len(payloads))
		for si, p := range payloads {
			jars[ci][si] = make([]*jar, maxConc)
			for wi := range maxConc {
				j := &jar{}
				for range cfg.jarSize {
					ck, err := c.create(p)
					if err != nil {
						return nil, fmt.Errorf("%s: creating a %s session: %w", c.label, sizeLabel(p.size), err)
					}
					j.cookies = append(j.cookies, ck)
				}
				jars[ci][si][wi] = j
			}
		}
	}

	res := &throughputResults{cells: make(map[cellKey]*cellResult)}
	for _, wname := range cfg.workloads {
		w, _ := workloadByName(wname)
		for si, p := range payloads {
			for _, conc := range cfg.conc {
				if cfg.warmup > 0 {
					for ci, c := range contenders {
						if _, err := runOnce(c, w, p, jars[ci][si][:conc], cfg.warmup, addr, false); err != nil {
							return nil, err
						}
					}
				}
				for run := range cfg.runs {
					for i := range contenders {
						ci := (i + run) % len(contenders)
						c := contenders[ci]
						rs, err := runOnce(c, w, p, jars[ci][si][:conc], cfg.duration, addr, true)
						if err != nil {
							return nil, err
						}
						k := cellKey{workload: w.name, size: p.size, conc: conc, contender: c.name}
						cr := res.cells[k]
						if cr == nil {
							cr = &cellResult{cellKey: k}
							res.cells[k] = cr
						}
						cr.runs = append(cr.runs, rs)
					}
				}
				for _, c := range contenders {
					cr := res.cells[cellKey{workload: w.name, size: p.size, conc: conc, contender: c.name}]
					cr.summarize()
				}
				logCell(cfg, res, w, p.size, conc, contenders)
			}
		}
	}

	// Log every session out, through each store's own delete path.
	for ci, c := range contenders {
		for si := range payloads {
			for _, j := range jars[ci][si] {
				for _, ck := range j.cookies {
					if err := c.remove(ck); err != nil {
						return nil, fmt.Errorf("%s: deleting a session: %w", c.label, err)
					}
				}
			}
		}
	}
	return res, nil
}

// logCell prints one cell's medians as progress.
func logCell(cfg *config, res *throughputResults, w workload, size, conc int, contenders []*contender) {
	fmt.Fprintf(cfg.log, "%s %s c=%d:", w.name, sizeLabel(size), conc)
	for _, c := range contenders {
		k := cellKey{workload: w.name, size: size, conc: conc, contender: c.name}
		cr := res.get(k)
		fmt.Fprintf(cfg.log, "  %s %.0f/s", c.name, cr.med.opsPerSec)
		if r := res.ratio(k); r > 0 && c.name != baseline {
			fmt.Fprintf(cfg.log, " (%.2fx)", r)
		}
		if cr.med.errs > 0 {
			fmt.Fprintf(cfg.log, " [%d errors]", cr.med.errs)
		}
	}
	fmt.Fprintln(cfg.log)
}

// processCPU is the CPU time this process has used, user and system, in
// seconds.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}
