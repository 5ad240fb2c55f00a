package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/redisession/redistore/internal/redistest"
)

// environment is what the report says about where it was measured.
type environment struct {
	date         time.Time
	cpu          string
	cores        int
	gomaxprocs   int
	goVersion    string
	platform     string
	redisVersion string
	redisStarted bool              // the program started the throughput server
	modules      map[string]string // module path -> version
	revision     string            // the repository's commit, when known
	loadStart    string            // 1-minute load average at the start
	loadEnd      string            // and at the end
}

func collectEnv(cfg *config) (*environment, error) {
	env := &environment{
		date:       time.Now().UTC(),
		cpu:        cpuModel(),
		cores:      runtime.NumCPU(),
		gomaxprocs: runtime.GOMAXPROCS(0),
		goVersion:  runtime.Version(),
		platform:   runtime.GOOS + "/" + runtime.GOARCH,
		modules:    map[string]string{},
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			v := d.Version
			if d.Replace != nil {
				v = "local (" + d.Replace.Path + ")"
			}
			env.modules[d.Path] = v
		}
	}
	env.revision = gitRevision()
	env.loadStart = loadAverage()
	return env, nil
}

// gitRevision describes the commit of the repository the store is built
// from (the parent directory), noting uncommitted changes to tracked files.
func gitRevision() string {
	out, err := exec.Command("git", "-C", "..", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", "..", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		rev += " with uncommitted changes"
	}
	return rev
}

// cpuModel reads the CPU's name from /proc/cpuinfo, where there is one.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func redisVersion(addr string) (string, error) {
	f, _, err := info(addr, "server")
	if err != nil {
		return "", err
	}
	if v := f["valkey_version"]; v != "" {
		// Valkey says redis_version 7.2.4 whatever its own version.
		return v + " (Valkey)", nil
	}
	if f["redis_version"] == "" {
		return "", fmt.Errorf("INFO server on %s gave no redis_version", addr)
	}
	return f["redis_version"], nil
}

// startedVersion starts a redis-server briefly to learn its version, for a
// run that only reports memory.
func startedVersion(cfg *config, dir string) (string, error) {
	srv, err := redistest.StartWith(dir, redistest.Options{Install: cfg.install})
	if err != nil {
		return "", fmt.Errorf("starting redis-server: %w", err)
	}
	defer srv.Stop()
	return redisVersion(srv.Addr)
}

// loadAverage returns the 1-minute load average, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}
