// Package redistest starts throwaway redis-server processes on loopback
// ports for tests, and decides whether a test without one skips or fails.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
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
	args []string
}

// Start runs redis-server on a free loopback port with persistence off, in a
// new directory under dir, adding extra configuration arguments
// ("--name value" pairs). It returns once the server answers PING.
func Start(dir string, extra ...string) (*Server, error) {
	bin, err := Binary("redis-server")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		wd, err := os.MkdirTemp(dir, "redis-"+strconv.Itoa(port)+"-")
		if err != nil {
			return nil, err
		}
		s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Port: port, Dir: wd}
		s.args = append([]string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--daemonize", "no",
			"--dir", wd, "--logfile", filepath.Join(wd, "redis.log"),
		}, extra...)
		if lastErr = s.start(bin); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

func (s *Server) start(bin string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cmd = exec.Command(bin, s.args...)
	s.cmd.Dir = s.Dir
	if err := s.cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	s.done = done
	cmd := s.cmd
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("redis-server exited at start: %s", s.logTail())
		default:
		}
		if Ping(s.Addr) == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.kill()
	return fmt.Errorf("redis-server on %s did not answer PING within 10s: %s", s.Addr, s.logTail())
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
	bin, err := Binary("redis-server")
	if err != nil {
		return err
	}
	s.Stop()
	return s.start(bin)
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
	s, err := Start(tb.TempDir(), extra...)
	if err != nil {
		tb.Fatalf("starting redis-server: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. Redis
// Cluster also uses port+10000 for its bus, so the port is kept below 55536.
func FreePort() (int, error) {
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port < 55536 {
			return port, nil
		}
	}
	return 0, errors.New("no free port below 55536")
}

// Ping sends PING over a fresh connection and expects PONG, or NOAUTH from
// a server that requires a password (it is up all the same).
func Ping(addr string) error {
	_, err := Command(addr, "PING")
	if err != nil && strings.HasPrefix(err.Error(), "NOAUTH") {
		return nil
	}
	return err
}

// Command sends one command over a fresh connection (RESP2, inline-safe
// encoding) and returns the first line of the reply. It is for test setup
// (CONFIG SET, DEBUG SLEEP), not for data.
func Command(addr string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "-") {
		return "", errors.New(line[1:])
	}
	return line, nil
}
