// Package redistest starts throwaway Redis processes on loopback ports for
// tests: single servers (Start), Redis Clusters (StartCluster) and Sentinel
// setups (StartSentinel). It decides whether a test without the binaries
// skips or fails (Need), and stops only the processes it started.
package redistest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RequireEnv names the environment variable that turns a missing
// redis-server from a skip into a failure. CI sets it to 1.
const RequireEnv = "REDISTORE_REQUIRE_REDIS"

// TB is the part of testing.TB this package needs.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// Binary returns the path of a Redis binary (redis-server, redis-cli,
// redis-sentinel) on PATH.
func Binary(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is not on PATH (Debian: apt-get install -y redis-server)", name)
	}
	return p, nil
}

// Need skips the test when the named binary is missing, or fails it when
// REDISTORE_REQUIRE_REDIS=1.
func Need(tb TB, name string) string {
	tb.Helper()
	p, err := Binary(name)
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			tb.Fatalf("%v, and %s=1", err, RequireEnv)
		}
		tb.Skipf("%v; set %s=1 to make this a failure", err, RequireEnv)
	}
	return p
}

// Server is a redis-server process.
type Server struct {
	Addr string // host:port on 127.0.0.1
	Port int
	Dir  string // its working directory

	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	bin  string
	args []string
}

// Start runs redis-server on a free loopback port with persistence off, in a
// new directory under dir, adding extra configuration arguments
// ("--name value" pairs). It returns once the server answers PING.
func Start(dir string, extra ...string) (*Server, error) {
	return StartWith(dir, Options{Args: extra})
}

// Options says how StartWith runs a server. The zero value runs redis-server
// exactly as Start does.
type Options struct {
	// Install is the installation whose binaries run; the zero value means
	// those on PATH.
	Install Install
	// Binary is the program to run: "redis-server" when empty, or another
	// Redis binary such as "redis-sentinel", of Install.
	Binary string
	// Config, when not nil, holds configuration lines written to redis.conf
	// in the server's directory after the package's own (port, bind, dir,
	// logfile, persistence off), and the server is started with that file.
	// A server that rewrites its configuration needs one: a sentinel always,
	// a replica when a sentinel reconfigures it with CONFIG REWRITE.
	Config []string
	// Args are extra command-line arguments ("--name value" pairs), which
	// come after the configuration file and so override it.
	Args []string
	// ClusterBus also requires port+10000 to be free, for the Redis Cluster bus.
	ClusterBus bool
}

// StartWith runs a Redis binary on a free loopback port in a new directory
// under dir, as o says. It returns once the process answers PING on that
// port, and retries on another port when the one it picked was taken.
func StartWith(dir string, o Options) (*Server, error) {
	name := o.Binary
	if name == "" {
		name = "redis-server"
	}
	bin, err := o.Install.Binary(name)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort(o.ClusterBus)
		if err != nil {
			return nil, err
		}
		wd, err := os.MkdirTemp(dir, "redis-"+strconv.Itoa(port)+"-")
		if err != nil {
			return nil, err
		}
		if wd, err = filepath.Abs(wd); err != nil {
			return nil, err
		}
		s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Port: port, Dir: wd, bin: bin}
		base := []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--daemonize", "no",
			"--dir", wd, "--logfile", filepath.Join(wd, "redis.log"),
		}
		if o.Config == nil {
			s.args = append(base, o.Args...)
		} else {
			conf := filepath.Join(wd, "redis.conf")
			var b strings.Builder
			for i := 0; i < len(base); i += 2 {
				fmt.Fprintf(&b, "%s %s\n", base[i][2:], confQuote(base[i+1]))
			}
			for _, line := range o.Config {
				b.WriteString(line + "\n")
			}
			if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
				return nil, err
			}
			s.args = append([]string{conf}, o.Args...)
		}
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

// confQuote quotes a value for a redis.conf line.
func confQuote(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cmd = exec.Command(s.bin, s.args...)
	s.cmd.Dir = s.Dir
	if err := s.cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	s.done = done
	cmd := s.cmd
	go func() { cmd.Wait(); close(done) }()
	name := filepath.Base(s.bin)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("%s exited at start: %s", name, s.logTail())
		default:
		}
		if Ping(s.Addr) == nil && s.answersAsItself(cmd.Process.Pid) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.kill()
	return fmt.Errorf("%s on %s did not answer PING within 10s: %s", name, s.Addr, s.logTail())
}

// answersAsItself reports whether the process listening on s.Addr is pid,
// not another server that held the port a moment before (ours then exits
// with "Address already in use"). A server that refuses INFO (it wants a
// password, or INFO was renamed) cannot be asked, and counts as itself.
func (s *Server) answersAsItself(pid int) bool {
	info, err := Info(s.Addr, "server")
	if err != nil {
		var re ReplyError
		return errors.As(err, &re)
	}
	id, ok := info["process_id"]
	return !ok || id == strconv.Itoa(pid)
}

// Stop kills the server and waits for it to exit. It is safe to call twice.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kill()
}

func (s *Server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts a stopped server again on the same port and directory.
func (s *Server) Restart() error {
	s.Stop()
	return s.start()
}

// Pid returns the process ID, or 0 when stopped.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// StartT starts a server for one test and stops it when the test ends. It
// skips or fails the test (see Need) when redis-server is missing.
func StartT(tb TB, extra ...string) *Server {
	tb.Helper()
	Need(tb, "redis-server")
	return Install{}.StartT(tb, extra...)
}

// StartT starts a server of the installation for one test, as StartT does.
func (in Install) StartT(tb TB, extra ...string) *Server {
	tb.Helper()
	s, err := StartWith(tb.TempDir(), Options{Install: in, Args: extra})
	if err != nil {
		tb.Fatalf("starting redis-server %s: %v", in.Version, err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// FreePort returns a TCP port on 127.0.0.1 that is free and reserved for
// this process until it exits, so that a server started on it can stop and
// start again on the same port.
func FreePort() (int, error) {
	return freePort(false)
}

// freePort is FreePort, and with bus it also reserves port+10000, for the
// Redis Cluster bus.
//
// The port is drawn below the kernel's ephemeral range: a port from
// Listen(":0") may be handed to any connection's local end, or to another
// Listen(":0"), while its server is down for a restart, and the server then
// cannot come back. A reservation is a lock on a file named after the port
// in the temporary directory, held until the process exits, so that test
// processes sharing that directory (on Linux, every process of the machine)
// never pick one port.
func freePort(bus bool) (int, error) {
	lo, hi := portRange(bus)
	for i := 0; i < 500; i++ {
		port := lo + rand.IntN(hi-lo)
		if !reserve(port) || bus && !reserve(port+10000) {
			continue
		}
		if !listenable(port) || bus && !listenable(port+10000) {
			continue // another program's: it stays reserved, and unused
		}
		return port, nil
	}
	return 0, fmt.Errorf("no free port in %d-%d", lo, hi-1)
}

// portRange is where freePort draws ports from: [10000, the first ephemeral
// port), less 10000 at the top for a bus port, or the ports above the
// ephemeral range when it leaves too few below it.
func portRange(bus bool) (lo, hi int) {
	lo, hi = 10000, 32768 // Linux's default ephemeral range is 32768-60999
	ephemeralHi := 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			l, err1 := strconv.Atoi(f[0])
			h, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && l <= h {
				hi, ephemeralHi = l, h
			}
		}
	}
	top := 0
	if bus {
		top = 10000
	}
	if hi-top-lo >= 1000 {
		return lo, hi - top
	}
	if 65536-top-(ephemeralHi+1) >= 1000 {
		return ephemeralHi + 1, 65536 - top
	}
	return 1024, 65536 - top // no room outside it: take the chance
}

// reserved records the ports this process handed out, on every platform,
// so that it never hands one out twice, even where no machine-wide lock can
// be taken.
var reserved struct {
	sync.Mutex
	ports map[int]bool
}

// reserve takes a port for this process, reporting false when this process
// or another one holds it already.
func reserve(port int) bool {
	reserved.Lock()
	defer reserved.Unlock()
	if reserved.ports[port] || !reserveMachineWide(port) {
		return false
	}
	if reserved.ports == nil {
		reserved.ports = map[int]bool{}
	}
	reserved.ports[port] = true
	return true
}

// listenable reports whether a listener can be opened on the port now.
func listenable(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// Ping sends PING over a fresh connection and expects PONG, or NOAUTH from
// a server that requires a password (it is up all the same).
func Ping(addr string) error {
	_, err := Do(addr, "PING")
	if err != nil && strings.HasPrefix(err.Error(), "NOAUTH") {
		return nil
	}
	return err
}
