// Command bench compares this store with boj/redistore, a plain go-redis
// store and raw rueidis commands, side by side in one process against one
// redis-server, and measures how much Redis memory each layout takes per
// session. See README.md.
package main

import (
	"context"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redisession/redistore/internal/redistest"
)

// config is everything a run does, from the flags.
type config struct {
	redisAddr     string
	install       redistest.Install // whose redis-server the run starts
	duration      time.Duration
	warmup        time.Duration
	runs          int
	sizes         []int
	conc          []int
	contenders    []string
	workloads     []string
	jarSize       int
	payloadKind   string
	bojPool       int
	throughput    bool
	memory        bool
	memSessions   int
	memSizes      []int
	memConc       int
	memListpack   int
	memOnly       []string // the memory report's layouts to measure; nil: all
	outDir        string
	smoke         bool
	cpuProfile    string
	memProfile    string
	scale         bool
	scaleSessions int
	scaleSize     int
	scaleBuckets  int
	command       string
	keyPairs      [][]byte
	log           io.Writer // progress
	stdout        io.Writer // the report
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	runner := run
	if cfg.scale {
		runner = scaleOnly
	}
	if err := runner(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	cfg := &config{log: os.Stderr, stdout: os.Stdout}
	var sizes, conc, contenders, workloads, memSizes string
	fs.StringVar(&cfg.redisAddr, "redis", "", "host:port of a redis-server to use (default: start one on a free loopback port)")
	serverDir := fs.String("server", "", "folder holding the redis-server to start (default: the one on PATH), e.g. the one ../shared/vendor/build-redis prints")
	fs.DurationVar(&cfg.duration, "duration", 1500*time.Millisecond, "length of one timed run")
	fs.DurationVar(&cfg.warmup, "warmup", 300*time.Millisecond, "untimed run of each contender before each combination's runs (0: none)")
	fs.IntVar(&cfg.runs, "runs", 5, "timed runs per combination; each figure is their median")
	fs.StringVar(&sizes, "sizes", "150,1k,8k", "session sizes (bytes of gob-encoded Values)")
	fs.StringVar(&conc, "conc", "1,16,64", "concurrency levels (goroutines issuing requests)")
	fs.StringVar(&contenders, "contenders", strings.Join(contenderNames, ","), "contenders to run: "+strings.Join(contenderNames, ", "))
	fs.StringVar(&workloads, "workloads", "rmw,ro", "workloads: rmw (read-modify-write), ro (read-only)")
	fs.IntVar(&cfg.jarSize, "jar", 4, "sessions in each worker's cookie jar")
	fs.StringVar(&cfg.payloadKind, "payload", "random", "session strings: random (incompressible letters and digits) or text (words)")
	fs.IntVar(&cfg.bojPool, "boj-pool", 0, "boj/redistore's pool size, the first argument of NewRediStore (redigo MaxIdle); 0: the largest -conc, so that it never churns connections")
	fs.BoolVar(&cfg.throughput, "throughput", true, "run the throughput benchmark")
	fs.BoolVar(&cfg.memory, "memory", false, "also run the memory report (one fresh redis-server per layout)")
	fs.IntVar(&cfg.memSessions, "memory-sessions", 1_000_000, "sessions written per layout in the memory report")
	fs.StringVar(&memSizes, "memory-sizes", "150,1k", "session sizes of the memory report")
	fs.IntVar(&cfg.memConc, "memory-conc", 32, "goroutines writing sessions in the memory report")
	fs.IntVar(&cfg.memListpack, "memory-listpack", 2048, "hash-max-listpack-value of the raised HashMode layout")
	fs.Func("memory-layouts", "measure only these layouts of the memory report, comma-separated (string, hash, hash-lp, hash-off, hash-lp-off, string-sealed, hash-lp-sealed, boj)", func(v string) error {
		cfg.memOnly = strings.Split(v, ",")
		return nil
	})
	fs.BoolVar(&cfg.scale, "scale", false, "run only the scale report: bytes per session, Stats and Sweep times, standalone and on a 3-primary cluster, both modes (for docs/scaling.md)")
	fs.IntVar(&cfg.scaleSessions, "scale-sessions", 1_000_000, "sessions written per run of the scale report")
	scaleSize := fs.String("scale-size", "150", "session size of the scale report")
	fs.IntVar(&cfg.scaleBuckets, "scale-buckets", 0, "Config.Buckets of the scale report's HashMode store (0: the default)")
	fs.StringVar(&cfg.outDir, "out", filepath.Join("..", "docs"), "directory for benchmarks.md and benchmarks.svg (empty: print only)")
	fs.BoolVar(&cfg.smoke, "smoke", false, "a pass of a few seconds through every contender and code path, writing nothing to -out")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.StringVar(&cfg.memProfile, "memprofile", "", "write an allocation profile of the whole run to this file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: every option is a flag", fs.Args())
	}
	var err error
	if cfg.install, err = redistest.InstallAt(*serverDir); err != nil {
		return nil, fmt.Errorf("-server: %w", err)
	}
	if cfg.smoke {
		applySmoke(cfg, fs)
		sizes, conc, memSizes = "1k", "1,16", "150,1k"
	}
	cfg.command = "cd bench && go run ." + commandFlags(args)

	if cfg.sizes, err = parseList(sizes, parseSize); err != nil {
		return nil, fmt.Errorf("-sizes: %w", err)
	}
	if cfg.scaleSize, err = parseSize(*scaleSize); err != nil {
		return nil, fmt.Errorf("-scale-size: %w", err)
	}
	if cfg.memSizes, err = parseList(memSizes, parseSize); err != nil {
		return nil, fmt.Errorf("-memory-sizes: %w", err)
	}
	if cfg.conc, err = parseList(conc, positive); err != nil {
		return nil, fmt.Errorf("-conc: %w", err)
	}
	if cfg.contenders, err = parseList(contenders, oneOf(contenderNames)); err != nil {
		return nil, fmt.Errorf("-contenders: %w", err)
	}
	// Report order is the canonical order, whatever the flag's.
	cfg.contenders = slices.DeleteFunc(slices.Clone(contenderNames), func(n string) bool { return !slices.Contains(cfg.contenders, n) })
	if cfg.workloads, err = parseList(workloads, oneOf([]string{"rmw", "ro"})); err != nil {
		return nil, fmt.Errorf("-workloads: %w", err)
	}
	switch {
	case cfg.duration <= 0:
		return nil, errors.New("-duration must be positive")
	case cfg.warmup < 0:
		return nil, errors.New("-warmup must not be negative")
	case cfg.runs < 1:
		return nil, errors.New("-runs must be at least 1")
	case cfg.jarSize < 1:
		return nil, errors.New("-jar must be at least 1")
	case cfg.payloadKind != "random" && cfg.payloadKind != "text":
		return nil, fmt.Errorf("-payload %q: use random or text", cfg.payloadKind)
	case cfg.bojPool < 0:
		return nil, errors.New("-boj-pool must not be negative")
	case cfg.memSessions < 1 || cfg.memConc < 1:
		return nil, errors.New("-memory-sessions and -memory-conc must be at least 1")
	case cfg.memListpack < 1:
		return nil, errors.New("-memory-listpack must be positive")
	case cfg.scaleSessions < scaleShortShare:
		return nil, fmt.Errorf("-scale-sessions must be at least %d", scaleShortShare)
	case !cfg.throughput && !cfg.memory && !cfg.scale:
		return nil, errors.New("-throughput=false without -memory leaves nothing to do")
	}
	if cfg.bojPool == 0 {
		cfg.bojPool = slices.Max(cfg.conc)
	}
	cfg.keyPairs = [][]byte{make([]byte, 32)}
	rand.Read(cfg.keyPairs[0])
	return cfg, nil
}

// applySmoke sets the smoke pass's values for every flag not given.
func applySmoke(cfg *config, fs *flag.FlagSet) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["duration"] {
		cfg.duration = 150 * time.Millisecond
	}
	if !set["warmup"] {
		cfg.warmup = 30 * time.Millisecond
	}
	if !set["runs"] {
		cfg.runs = 1
	}
	if !set["memory-sessions"] {
		cfg.memSessions = 2000
	}
	cfg.memory = true
	cfg.throughput = true
}

// commandFlags writes the flags as given, quoted for a shell where needed.
func commandFlags(args []string) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteByte(' ')
		if strings.ContainsAny(a, " \t'\"$\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		b.WriteString(a)
	}
	return b.String()
}

func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := parse(f)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

func positive(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not a positive integer", s)
	}
	return n, nil
}

func oneOf(names []string) func(string) (string, error) {
	return func(s string) (string, error) {
		if slices.Contains(names, s) {
			return s, nil
		}
		return "", fmt.Errorf("%q is not one of %s", s, strings.Join(names, ", "))
	}
}

// run does everything the config asks for and writes the report.
func run(cfg *config) error {
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.memProfile != "" {
		runtime.MemProfileRate = 4096
		defer func() {
			if f, err := os.Create(cfg.memProfile); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	workDir, err := os.MkdirTemp("", "redistore-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(workDir)

	env, err := collectEnv(cfg)
	if err != nil {
		return err
	}
	var tp *throughputResults
	if cfg.throughput {
		addr := cfg.redisAddr
		if addr == "" {
			srv, err := redistest.StartWith(workDir, redistest.Options{Install: cfg.install})
			if err != nil {
				return fmt.Errorf("starting redis-server: %w", err)
			}
			defer srv.Stop()
			addr = srv.Addr
			env.redisStarted = true
		}
		if env.redisVersion, err = redisVersion(addr); err != nil {
			return err
		}
		if tp, err = throughput(cfg, addr); err != nil {
			return err
		}
	}
	var mem *memoryResults
	if cfg.memory {
		if env.redisVersion == "" {
			if env.redisVersion, err = startedVersion(cfg, workDir); err != nil {
				return err
			}
		}
		if mem, err = runMemory(cfg, workDir); err != nil {
			return err
		}
	}

	env.loadEnd = loadAverage()
	md := renderMarkdown(cfg, env, tp, mem)
	fmt.Fprint(cfg.stdout, md)
	svg, err := renderChart(cfg, tp)
	if err != nil {
		return err
	}
	outDir := cfg.outDir
	if cfg.smoke {
		// The smoke pass checks the writing too, in a directory of its own.
		outDir = filepath.Join(workDir, "docs")
		if err := os.Mkdir(outDir, 0o755); err != nil {
			return err
		}
	}
	if outDir != "" {
		if err := writeOutputs(outDir, md, svg); err != nil {
			return err
		}
		if !cfg.smoke {
			fmt.Fprintf(cfg.log, "wrote %s and %s\n", filepath.Join(outDir, "benchmarks.md"), filepath.Join(outDir, "benchmarks.svg"))
		}
	}
	if n := countErrors(tp); n > 0 {
		return fmt.Errorf("%d requests failed (see the report's errors section)", n)
	}
	return nil
}

// throughput starts the contenders and runs the throughput benchmark.
func throughput(cfg *config, addr string) (*throughputResults, error) {
	payloads := make([]*payload, len(cfg.sizes))
	for i, size := range cfg.sizes {
		p, err := newPayload(size, cfg.payloadKind, uint64(i+1))
		if err != nil {
			return nil, err
		}
		payloads[i] = p
	}
	var contenders []*contender
	defer func() {
		for _, c := range contenders {
			c.close()
		}
	}()
	for _, name := range cfg.contenders {
		c, err := newContender(context.Background(), name, contenderConfig{addr: addr, keyPairs: cfg.keyPairs, bojPool: cfg.bojPool})
		if err != nil {
			return nil, fmt.Errorf("starting %s: %w", contenderLabels[name], err)
		}
		contenders = append(contenders, c)
	}
	return runThroughput(cfg, addr, contenders, payloads)
}

func countErrors(tp *throughputResults) int64 {
	if tp == nil {
		return 0
	}
	var n int64
	for _, cr := range tp.cells {
		n += cr.med.errs
	}
	return n
}

func writeOutputs(dir, md, svg string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// A chart that does not parse is a bug, not an output.
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("the chart is not well-formed XML: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "benchmarks.md"), []byte(md), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "benchmarks.svg"), []byte(svg), 0o644)
}
