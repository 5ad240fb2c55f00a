package redistest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// ServersEnv names the environment variable that lists the Redis
// installations the tests run on, separated by the OS's list separator (":"
// on Unix): each a folder holding redis-server (and redis-cli,
// redis-sentinel), or the path of a redis-server binary. Unset or empty, the
// tests use the redis-server on PATH.
const ServersEnv = "REDISTORE_SERVERS"

// Install is one Redis installation: the folder its binaries are in, or ""
// for whatever is on PATH.
type Install struct {
	Dir     string
	Version string // as redis-server --version says, e.g. 7.0.15
	// Server is what the binary says it is: "redis", or "valkey" (whose
	// folders have redis-* names too).
	Server string
}

// Name names the installation in test names: "redis-7.0.15",
// "valkey-9.1.2".
func (in Install) Name() string {
	if in.Server == "" {
		return "redis-" + in.Version
	}
	return in.Server + "-" + in.Version
}

// Valkey reports whether the installation is Valkey.
func (in Install) Valkey() bool { return in.Server == "valkey" }

// Major and Minor are the version's first two numbers (0 when unknown).
func (in Install) Major() int { return in.part(0) }

// Minor is the version's second number.
func (in Install) Minor() int { return in.part(1) }

func (in Install) part(i int) int {
	parts := strings.Split(in.Version, ".")
	if i >= len(parts) {
		return 0
	}
	n, _ := strconv.Atoi(parts[i])
	return n
}

// AtLeast reports whether the version is major.minor or later.
func (in Install) AtLeast(major, minor int) bool {
	return in.Major() > major || (in.Major() == major && in.Minor() >= minor)
}

// Binary returns the path of a Redis program of the installation:
// redis-server, redis-cli or redis-sentinel. redis-cli may come from PATH
// when the folder lacks it (its version does not matter to the tests).
func (in Install) Binary(name string) (string, error) {
	if in.Dir != "" {
		p := filepath.Join(in.Dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
		if name != "redis-cli" {
			return "", fmt.Errorf("%s is not in %s (named by %s)", name, in.Dir, ServersEnv)
		}
	}
	return Binary(name)
}

var installs struct {
	once sync.Once
	list []Install
	err  error
}

// Installs returns the installations named by REDISTORE_SERVERS, or the one
// on PATH, each with its version. It fails when an entry names no
// redis-server, and when none is on PATH.
func Installs() ([]Install, error) {
	installs.once.Do(func() { installs.list, installs.err = findInstalls(os.Getenv(ServersEnv)) })
	return installs.list, installs.err
}

func findInstalls(env string) ([]Install, error) {
	var dirs []string
	for _, e := range filepath.SplitList(env) {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		if filepath.Base(e) == "redis-server" {
			e = filepath.Dir(e)
		}
		dirs = append(dirs, e)
	}
	if len(dirs) == 0 {
		p, err := Binary("redis-server")
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	var out []Install
	for _, d := range dirs {
		in, err := InstallAt(d)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

// InstallAt returns the installation in a folder (or of a redis-server
// path), with its version; "" means the redis-server on PATH.
func InstallAt(dir string) (Install, error) {
	if dir == "" {
		p, err := Binary("redis-server")
		if err != nil {
			return Install{}, err
		}
		dir = filepath.Dir(p)
	}
	if filepath.Base(dir) == "redis-server" {
		dir = filepath.Dir(dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Install{}, err
	}
	in := Install{Dir: abs}
	bin, err := in.Binary("redis-server")
	if err != nil {
		return Install{}, err
	}
	if in.Server, in.Version, err = serverVersion(bin); err != nil {
		return Install{}, err
	}
	return in, nil
}

var versionRE = regexp.MustCompile(`^(\w+) server v=([0-9]+\.[0-9]+\.[0-9]+)`)

// serverVersion asks a redis-server binary what it is ("redis",
// "valkey") and its version.
func serverVersion(bin string) (server, version string, err error) {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "", "", fmt.Errorf("%s --version: %w", bin, err)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return "", "", fmt.Errorf("%s --version said %q: no version in it", bin, strings.TrimSpace(string(out)))
	}
	return strings.ToLower(string(m[1])), string(m[2]), nil
}

// NeedInstalls returns the installations the tests run on (see Installs),
// skipping the test when there are none, or failing it when
// REDISTORE_REQUIRE_REDIS=1 or when REDISTORE_SERVERS names a folder
// without redis-server.
func NeedInstalls(tb TB) []Install {
	tb.Helper()
	list, err := Installs()
	if err != nil {
		if os.Getenv(RequireEnv) == "1" || os.Getenv(ServersEnv) != "" {
			tb.Fatalf("%v", err)
		}
		tb.Skipf("%v; set %s=1 to make this a failure", err, RequireEnv)
	}
	return list
}

// NoScriptingEnv names the environment variable that names a folder of a
// server built without any scripting engine (Valkey 9: build-valkey
// --no-lua), for the tests of a server that refuses scripts.
const NoScriptingEnv = "REDISTORE_NOSCRIPTING_SERVER"

// NeedNoScripting returns the installation NoScriptingEnv names, skipping
// the test when it is unset, or failing it when REDISTORE_REQUIRE_REDIS=1.
func NeedNoScripting(tb TB) Install {
	tb.Helper()
	dir := os.Getenv(NoScriptingEnv)
	if dir == "" {
		msg := fmt.Sprintf("%s is not set: no server without scripting to test against (build one with ../shared/vendor/build-valkey --no-lua)", NoScriptingEnv)
		if os.Getenv(RequireEnv) == "1" {
			tb.Fatalf("%s", msg)
		}
		tb.Skipf("%s", msg)
	}
	in, err := InstallAt(dir)
	if err != nil {
		tb.Fatalf("%s: %v", NoScriptingEnv, err)
	}
	return in
}
