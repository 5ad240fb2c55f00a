package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// renderMarkdown writes the whole report.
func renderMarkdown(cfg *config, env *environment, tp *throughputResults, mem *memoryResults) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("# Benchmarks\n\n")
	p("Measured on %s by:\n\n", env.date.Format("2006-01-02 15:04 MST"))
	p("```sh\n%s\n```\n\n", cfg.command)
	p("- Machine: %s, %d cores (GOMAXPROCS %d), %s, %s; 1-minute load average %s at the start, %s at the end.\n",
		env.cpu, env.cores, env.gomaxprocs, env.platform, env.goVersion, env.loadStart, env.loadEnd)
	where := "given with -redis"
	if env.redisStarted {
		where = "started by the program on 127.0.0.1, persistence off"
	}
	if tp != nil {
		p("- redis-server %s (%s), on the same cores as the benchmark.\n", env.redisVersion, where)
	} else {
		p("- redis-server %s.\n", env.redisVersion)
	}
	p("- Modules: %s.\n", moduleList(env))
	p("- Sessions: string and int Values (%s strings), sized by their gob encoding.\n\n", cfg.payloadKind)

	if tp != nil {
		renderThroughput(&b, cfg, tp)
	}
	if mem != nil {
		renderMemory(&b, cfg, mem)
	}
	if tp != nil {
		renderErrors(&b, cfg, tp)
	}
	return b.String()
}

func moduleList(env *environment) string {
	mods := []struct{ path, name string }{
		{"github.com/redisession/redistore", "redistore"},
		{"github.com/redis/rueidis", "rueidis"},
		{"github.com/boj/redistore", "boj/redistore"},
		{"github.com/gomodule/redigo", "redigo"},
		{"github.com/redis/go-redis/v9", "go-redis"},
		{"github.com/gorilla/sessions", "gorilla/sessions"},
		{"github.com/gorilla/securecookie", "securecookie"},
	}
	var parts []string
	for _, m := range mods {
		v := env.modules[m.path]
		if strings.HasPrefix(v, "local") {
			v = "this repository"
			if env.revision != "" {
				v += " at " + env.revision
			}
		}
		if v == "" {
			v = "?"
		}
		parts = append(parts, m.name+" "+v)
	}
	return strings.Join(parts, ", ")
}

func renderThroughput(b *strings.Builder, cfg *config, tp *throughputResults) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## How the throughput was measured\n\n")
	p("Every contender serves the same simulated request in-process (a request built as net/http hands it to a handler, and\n")
	p("`httptest.NewRecorder`, no HTTP server): decode the session cookie, load the session, and for\n")
	p("read-modify-write change one int value, save and set the cookie. Each of the N goroutines has\n")
	p("its own cookie jar of %d sessions, created before timing, and takes every Set-Cookie back\n", cfg.jarSize)
	p("into its jar as a browser would. Each figure is the median of %d runs of %v (after a %v\n", cfg.runs, cfg.duration, cfg.warmup)
	p("warm-up per combination); the runs go round-robin across contenders, starting with a different\n")
	p("one each time, so that noise on this shared machine hits all of them alike. `vs boj` is the\n")
	p("median over those rounds of the contender's ops/s divided by boj/redistore's in the same\n")
	p("round, so it need not equal the ratio of the median ops/s shown. Allocations are\n")
	p("`runtime.MemStats` deltas (Mallocs, TotalAlloc) per request, harness included; Redis commands\n")
	p("and bytes are `INFO commandstats` / `INFO stats` deltas per request, commands run inside Lua\n")
	p("scripts included, the INFO calls excluded. `bench CPU` is this program's CPU time (getrusage)\n")
	p("per request, harness included, and `server CPU` redis-server's (`INFO cpu`): on a machine\n")
	p("whose cores both share, their sum is what a request costs. `spread` is (max - min) / median\n")
	p("of the runs' ops/s.\n\n")
	p("The contenders, all with their default settings:\n\n")
	for _, name := range cfg.contenders {
		p("- **%s**: %s\n", contenderLabels[name], contenderNotes(cfg, name))
	}
	p("\n![ops/s by contender](benchmarks.svg)\n\n")

	// Summary: ratios to boj for every cell.
	p("## Throughput relative to boj/redistore\n\n")
	p("Median over the rounds of ops/s divided by boj/redistore's ops/s in the same round; above 1 is faster.\n\n")
	p("| contender | workload |")
	for _, size := range cfg.sizes {
		for _, c := range cfg.conc {
			p(" %s ×%d |", sizeLabel(size), c)
		}
	}
	p("\n|---|---|")
	for range len(cfg.sizes) * len(cfg.conc) {
		p("---:|")
	}
	p("\n")
	for _, name := range cfg.contenders {
		for _, wname := range cfg.workloads {
			w, _ := workloadByName(wname)
			p("| %s | %s |", contenderLabels[name], w.label)
			for _, size := range cfg.sizes {
				for _, c := range cfg.conc {
					p(" %s |", fmtRatio(tp.ratio(cellKey{w.name, size, c, name})))
				}
			}
			p("\n")
		}
	}
	p("\n")

	for _, wname := range cfg.workloads {
		w, _ := workloadByName(wname)
		for _, size := range cfg.sizes {
			p("## %s, %s sessions\n\n", capitalize(w.label), sizeLabel(size))
			p("| contender | conc | ops/s | vs boj | spread | p50 | p99 | bench CPU/req | server CPU/req | allocs/req | alloc/req | Redis cmds/req | Redis bytes/req |\n")
			p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
			for _, c := range cfg.conc {
				for _, name := range cfg.contenders {
					k := cellKey{w.name, size, c, name}
					cr := tp.get(k)
					if cr == nil {
						continue
					}
					m := cr.med
					p("| %s | %d | %s | %s | %.0f%% | %s | %s | %s | %s | %.0f | %s | %s | %s |\n",
						contenderLabels[name], c, fmtInt(m.opsPerSec), fmtRatio(tp.ratio(k)), 100*cr.spread,
						fmtDur(m.p50), fmtDur(m.p99), fmtMicros(m.clientCPU), fmtMicros(m.serverCPU), m.allocs, fmtBytes(m.bytes), trimFloat(m.cmds), fmtBytes(m.netBytes))
				}
			}
			p("\n")
		}
	}

	// Commands per request, by command, at the largest concurrency.
	p("## Redis commands per request\n\n")
	size := chartSize(cfg.sizes)
	conc := slices.Max(cfg.conc)
	p("At %s, concurrency %d; commands that Lua scripts run are counted too.\n\n", sizeLabel(size), conc)
	p("| contender |")
	for _, wname := range cfg.workloads {
		w, _ := workloadByName(wname)
		p(" %s |", w.label)
	}
	p("\n|---|")
	for range cfg.workloads {
		p("---|")
	}
	p("\n")
	for _, name := range cfg.contenders {
		p("| %s |", contenderLabels[name])
		for _, wname := range cfg.workloads {
			cr := tp.get(cellKey{wname, size, conc, name})
			if cr == nil {
				p(" |")
				continue
			}
			p(" %s |", breakdown(cr.med.calls))
		}
		p("\n")
	}
	p("\n")
}

func contenderNotes(cfg *config, name string) string {
	switch name {
	case "hash":
		return "`redistore.New(redistore.Config{Client, KeyPairs})`, sessions in 65536 hashes, " +
			"HGET of the field to load; to save, one Lua script that writes only if the session is still as loaded " +
			"(and cleans the bucket when a session in it has expired), compact serializer, LZ4 from 400 bytes."
	case "string":
		return "the same with `Mode: redistore.StringMode`: one key per session, GET to load, a Lua script " +
			"(GET, compare, SET EX) to save."
	case "hash-plain", "hash-zstd", "hash-zstd-better":
		return "HashMode with `CompressMinLength: -1` (no compression), or `Compressor: redistore.Zstd(redistore.ZstdFastest)` / `ZstdBetter` in place of LZ4."
	case "hash-users", "string-users":
		return "the same with `UserKey` set: every session is indexed under a user of its own (a per-session value in " +
			"place of one of the payload's ints), so the script that creates it also writes the user's index entry."
	case "boj":
		return fmt.Sprintf("`NewRediStore(%d, \"tcp\", addr, \"\", \"\", keyPairs...)`: redigo pool (MaxIdle %d, "+
			"PING on every borrow), gob, SETEX; `SetMaxLength(65536)` because its default limit, 4096 bytes, "+
			"refuses 8 KB sessions.", cfg.bojPool, cfg.bojPool)
	case "goredis":
		return "a sessions.Store over go-redis v9 (default options) with the design of rbcervilla/redisstore: " +
			"`session:` + base32 of 32 random bytes, gob, GET / SET EX, securecookie.EncodeMulti of the ID."
	case "raw":
		return "no session layer: GET and SET EX of the same bytes boj/redistore stores, through the rueidis " +
			"client the stores use, with the same request, recorder and cookie handling: the ceiling."
	}
	return ""
}

func renderMemory(b *strings.Builder, cfg *config, m *memoryResults) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## Redis memory per session\n\n")
	p("%s sessions per layout and size, written through each store's Save by %d goroutines on a\n", fmtInt(float64(cfg.memSessions)), cfg.memConc)
	p("fresh redis-server of its own; bytes per session = (used_memory after - used_memory before) /\n")
	p("sessions, with the writers disconnected. Keys: the database's key count afterwards\n")
	p("(HashMode: buckets). Encoding: OBJECT ENCODING of a random key.\n\n")
	p("| layout |")
	for _, size := range m.sizes {
		s := sizeLabel(size)
		p(" %s: bytes/session | vs boj | keys | encoding |", s)
	}
	p("\n|---|")
	for range m.sizes {
		p("---:|---:|---:|---|")
	}
	p("\n")
	for li, l := range m.layouts {
		p("| %s |", l.label)
		for si := range m.sizes {
			r := m.results[si][li]
			p(" %.0f | %s | %s | %s |", r.perSession, fmtRatio(m.ratio(si, li)), fmtInt(float64(r.keys)), r.encoding)
		}
		p("\n")
	}
	p("\n")
}

func renderErrors(b *strings.Builder, cfg *config, tp *throughputResults) {
	var lines []string
	for _, cr := range tp.cells {
		if cr.med.errs > 0 {
			lines = append(lines, fmt.Sprintf("- %s, %s, %s, concurrency %d: %d of %d requests failed; first: %v",
				contenderLabels[cr.contender], cr.workload, sizeLabel(cr.size), cr.conc, cr.med.errs, cr.med.ops, cr.med.firstErr))
		}
	}
	if len(lines) == 0 {
		return
	}
	sort.Strings(lines)
	fmt.Fprintf(b, "## Errors\n\n%s\n\n", strings.Join(lines, "\n"))
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func fmtRatio(r float64) string {
	if r == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", r)
}

// fmtInt writes a rounded number with thousands separators: 12,345.
func fmtInt(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
}

func fmtBytes(v float64) string {
	if v >= 10*1024 {
		return fmt.Sprintf("%.1f KiB", v/1024)
	}
	return fmt.Sprintf("%.0f B", v)
}

// chartSize is the session size closest to 1 KB: the one the chart and the
// command breakdown show.
func chartSize(sizes []int) int {
	best := sizes[0]
	for _, s := range sizes {
		if abs(s-1024) < abs(best-1024) {
			best = s
		}
	}
	return best
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// fmtMicros prints seconds as microseconds: "41.2 µs".
func fmtMicros(sec float64) string { return fmt.Sprintf("%.1f µs", sec*1e6) }
