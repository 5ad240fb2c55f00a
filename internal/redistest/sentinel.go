package redistest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SentinelMaster is the name under which StartSentinel's sentinels monitor
// the primary.
const SentinelMaster = "mymaster"

// SentinelStartTimeout bounds StartSentinel once its processes run: the
// replicas' first sync, then the sentinels finding each other.
const SentinelStartTimeout = 30 * time.Second

// Sentinel is a primary with replicas, watched by Redis Sentinel processes,
// all on 127.0.0.1. A sentinel marks the primary down after 1 s without an
// answer, and a failover is abandoned and retried after 5 s.
type Sentinel struct {
	// MasterName is the name the sentinels know the primary by.
	MasterName string

	servers   []*Server // the first was the primary at start
	sentinels []*Server
}

// StartSentinel starts a primary, replicas replicas of it, and sentinels
// sentinels monitoring it (quorum 2, or 1 with a single sentinel), each in
// a new directory under dir with a configuration file it may rewrite. It
// returns once the replicas are in sync and every sentinel knows the
// primary, every replica, and every other sentinel (see WaitHealthy). On
// error, every process it started is stopped.
func StartSentinel(dir string, replicas, sentinels int) (*Sentinel, error) {
	return Install{}.StartSentinel(dir, replicas, sentinels)
}

// StartSentinel starts a sentinel setup of the installation's servers (see
// StartSentinel).
func (in Install) StartSentinel(dir string, replicas, sentinels int) (*Sentinel, error) {
	if replicas < 0 || sentinels < 1 {
		return nil, fmt.Errorf("redistest: sentinel setup needs at least one sentinel and no negative replica count, not %d and %d", sentinels, replicas)
	}
	sentinelOpts := Options{Install: in, Binary: "redis-sentinel"}
	if _, err := in.Binary("redis-sentinel"); err != nil {
		sentinelOpts = Options{Install: in, Args: []string{"--sentinel"}}
	}
	deadline := time.Now().Add(SentinelStartTimeout)
	sn := &Sentinel{MasterName: SentinelMaster}
	fail := func(err error) (*Sentinel, error) {
		sn.Stop()
		return nil, err
	}
	// A replica's first sync would otherwise wait 5 s for others to join it.
	dataConf := []string{"repl-diskless-sync-delay 0"}
	primary, err := StartWith(dir, Options{Install: in, Config: dataConf})
	if err != nil {
		return fail(fmt.Errorf("redistest: starting the primary: %w", err))
	}
	sn.servers = append(sn.servers, primary)
	for i := 0; i < replicas; i++ {
		conf := append(append([]string(nil), dataConf...), "replicaof 127.0.0.1 "+strconv.Itoa(primary.Port))
		s, err := StartWith(dir, Options{Install: in, Config: conf})
		if err != nil {
			return fail(fmt.Errorf("redistest: starting replica %d: %w", i+1, err))
		}
		sn.servers = append(sn.servers, s)
	}
	// A sentinel learns of replicas from the primary's INFO, which it reads
	// at once and then every 10 s: start sentinels once replicas are in.
	if err := sn.waitReplicasIn(time.Until(deadline)); err != nil {
		return fail(err)
	}
	quorum := 2
	if sentinels < 2 {
		quorum = 1
	}
	for i := 0; i < sentinels; i++ {
		o := sentinelOpts
		o.Config = []string{
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d", sn.MasterName, primary.Port, quorum),
			fmt.Sprintf("sentinel down-after-milliseconds %s 1000", sn.MasterName),
			fmt.Sprintf("sentinel failover-timeout %s 5000", sn.MasterName),
			fmt.Sprintf("sentinel parallel-syncs %s 1", sn.MasterName),
		}
		s, err := StartWith(dir, o)
		if err != nil {
			return fail(fmt.Errorf("redistest: starting sentinel %d: %w", i+1, err))
		}
		sn.sentinels = append(sn.sentinels, s)
	}
	if err := sn.WaitHealthy(time.Until(deadline)); err != nil {
		return fail(err)
	}
	return sn, nil
}

// StartSentinelT starts a sentinel setup for one test (see StartSentinel)
// and stops it when the test ends. It skips or fails the test (see Need)
// when redis-server or redis-sentinel is missing.
func StartSentinelT(tb TB, replicas, sentinels int) *Sentinel {
	tb.Helper()
	Need(tb, "redis-server")
	Need(tb, "redis-sentinel")
	return Install{}.StartSentinelT(tb, replicas, sentinels)
}

// StartSentinelT starts a sentinel setup of the installation's servers for
// one test (see StartSentinelT).
func (in Install) StartSentinelT(tb TB, replicas, sentinels int) *Sentinel {
	tb.Helper()
	sn, err := in.StartSentinel(tb.TempDir(), replicas, sentinels)
	if err != nil {
		tb.Fatalf("starting Redis Sentinel %s: %v", in.Version, err)
	}
	tb.Cleanup(sn.Stop)
	return sn
}

// waitReplicasIn waits until the first server, the primary at start, has
// every other server as a connected replica in sync with it.
func (sn *Sentinel) waitReplicasIn(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	want := len(sn.servers) - 1
	for {
		err := func() error {
			info, err := Info(sn.servers[0].Addr, "replication")
			if err != nil {
				return err
			}
			if n := info["connected_slaves"]; n != strconv.Itoa(want) {
				return fmt.Errorf("the primary has %s of %d replicas", n, want)
			}
			for i := 0; i < want; i++ {
				if r := info["slave"+strconv.Itoa(i)]; !strings.Contains(r, "state=online") {
					return fmt.Errorf("the primary's replica %d is %s", i, r)
				}
			}
			return nil
		}()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: replicas not in sync after %v: %w", timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// SentinelAddrs returns the address of every sentinel, running or not.
func (sn *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(sn.sentinels))
	for i, s := range sn.sentinels {
		addrs[i] = s.Addr
	}
	return addrs
}

// Sentinels returns every sentinel process, running or not.
func (sn *Sentinel) Sentinels() []*Server {
	return append([]*Server(nil), sn.sentinels...)
}

// Servers returns the primary and replicas, running or not, in start order
// (the first was the primary at start).
func (sn *Sentinel) Servers() []*Server {
	return append([]*Server(nil), sn.servers...)
}

// Server returns the data server at addr, or nil.
func (sn *Sentinel) Server(addr string) *Server {
	for _, s := range sn.servers {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

// URL returns the rueidis URL of the setup, which rueidis.ParseURL turns
// into a Sentinel client option:
// redis://s1:port?addr=s2:port&addr=s3:port&master_set=NAME.
func (sn *Sentinel) URL() string {
	addrs := sn.SentinelAddrs()
	var b strings.Builder
	b.WriteString("redis://" + addrs[0] + "?")
	for _, a := range addrs[1:] {
		b.WriteString("addr=" + a + "&")
	}
	b.WriteString("master_set=" + sn.MasterName)
	return b.String()
}

// Primary asks the running sentinels, in turn, which server is the primary
// (SENTINEL GET-MASTER-ADDR-BY-NAME) and returns the first answer.
func (sn *Sentinel) Primary() (*Server, error) {
	err := errors.New("no sentinel is running")
	for _, s := range sn.sentinels {
		if s.Pid() == 0 {
			continue
		}
		var addr string
		if addr, err = sn.masterAddr(s.Addr); err != nil {
			continue
		}
		if p := sn.Server(addr); p != nil {
			return p, nil
		}
		return nil, fmt.Errorf("redistest: sentinel %s names %s as primary, which is none of this setup's servers", s.Addr, addr)
	}
	return nil, fmt.Errorf("redistest: asking for the primary: %w", err)
}

// masterAddr asks one sentinel for the primary's address.
func (sn *Sentinel) masterAddr(sentinel string) (string, error) {
	v, err := Do(sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", sn.MasterName)
	if err != nil {
		return "", err
	}
	a, ok := v.([]any)
	if !ok || len(a) != 2 {
		return "", fmt.Errorf("sentinel %s does not know %s (%v)", sentinel, sn.MasterName, v)
	}
	return fmt.Sprintf("%v:%v", a[0], a[1]), nil
}

// KillPrimary kills the current primary (SIGKILL, as a crash would) and
// returns it, so that a test can Restart it later; the sentinels then make
// it a replica of whichever server took over.
func (sn *Sentinel) KillPrimary() (*Server, error) {
	p, err := sn.Primary()
	if err != nil {
		return nil, err
	}
	p.Stop()
	return p, nil
}

// Rejoin restarts a stopped server as a replica of the current primary and
// waits until WaitHealthy is satisfied. A plain Restart of a former primary
// works too, but it comes back a primary and the sentinels take about 20 s
// to make it a replica (they wait 8 s after seeing it, then for their next
// 10-second INFO).
func (sn *Sentinel) Rejoin(s *Server, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if sn.Server(s.Addr) != s {
		return fmt.Errorf("redistest: %s is not a server of this setup", s.Addr)
	}
	if s.Pid() != 0 {
		return fmt.Errorf("redistest: %s is running; stop it before Rejoin", s.Addr)
	}
	p, err := sn.Primary()
	if err != nil {
		return err
	}
	if p == s {
		return fmt.Errorf("redistest: the sentinels still name %s, which is stopped, as primary: wait for a failover first", s.Addr)
	}
	// The last line wins over any replicaof a sentinel's CONFIG REWRITE left.
	conf := filepath.Join(s.Dir, "redis.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("redistest: %s has no configuration file to point at the primary: %w", s.Addr, err)
	}
	_, err = fmt.Fprintf(f, "\nreplicaof 127.0.0.1 %d\n", p.Port)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := s.Restart(); err != nil {
		return err
	}
	return sn.WaitHealthy(time.Until(deadline))
}

// WaitFailover waits until every running sentinel names the same primary,
// other than old, and that server says it is a primary. It returns the new
// primary's address.
func (sn *Sentinel) WaitFailover(old string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		addr, err := sn.agreedPrimary()
		if err == nil && addr == old {
			err = fmt.Errorf("the sentinels still name %s", old)
		}
		if err == nil {
			return addr, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("redistest: no failover from %s within %v: %w", old, timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// agreedPrimary returns the primary every running sentinel names, once
// that server says it is a primary.
func (sn *Sentinel) agreedPrimary() (string, error) {
	var addr string
	for _, s := range sn.sentinels {
		if s.Pid() == 0 {
			continue
		}
		a, err := sn.masterAddr(s.Addr)
		if err != nil {
			return "", err
		}
		if addr != "" && a != addr {
			return "", fmt.Errorf("sentinels disagree: %s and %s", addr, a)
		}
		addr = a
	}
	if addr == "" {
		return "", errors.New("no sentinel is running")
	}
	info, err := Info(addr, "replication")
	if err != nil {
		return "", fmt.Errorf("%s: %w", addr, err)
	}
	if info["role"] != "master" {
		return "", fmt.Errorf("the sentinels name %s, which says it is a %s", addr, info["role"])
	}
	return addr, nil
}

// WaitHealthy waits until the running sentinels agree on a running primary,
// every other running server is its replica with the link up, and every
// running sentinel sees the primary up and not failing over, sees each
// running replica up, and knows every other running sentinel.
func (sn *Sentinel) WaitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := sn.healthy()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: sentinel setup not healthy after %v: %w", timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

func (sn *Sentinel) healthy() error {
	primary, err := sn.agreedPrimary()
	if err != nil {
		return err
	}
	replicas := map[string]bool{}
	for _, s := range sn.servers {
		if s.Pid() == 0 || s.Addr == primary {
			continue
		}
		info, err := Info(s.Addr, "replication")
		if err != nil {
			return fmt.Errorf("%s: %w", s.Addr, err)
		}
		if m := info["master_host"] + ":" + info["master_port"]; info["role"] != "slave" || m != primary || info["master_link_status"] != "up" {
			return fmt.Errorf("%s is a %s of %s with link %s, not a replica of %s", s.Addr, info["role"], m, info["master_link_status"], primary)
		}
		replicas[s.Addr] = true
	}
	running := 0
	for _, s := range sn.sentinels {
		if s.Pid() != 0 {
			running++
		}
	}
	for _, s := range sn.sentinels {
		if s.Pid() == 0 {
			continue
		}
		v, err := Do(s.Addr, "SENTINEL", "MASTER", sn.MasterName)
		if err != nil {
			return fmt.Errorf("sentinel %s: %w", s.Addr, err)
		}
		m := pairs(v)
		if m["flags"] != "master" {
			return fmt.Errorf("sentinel %s: primary flags %s", s.Addr, m["flags"])
		}
		v, err = Do(s.Addr, "SENTINEL", "REPLICAS", sn.MasterName)
		if err != nil {
			return fmt.Errorf("sentinel %s: %w", s.Addr, err)
		}
		up := 0
		list, _ := v.([]any)
		for _, r := range list {
			rm := pairs(r)
			if replicas[rm["ip"]+":"+rm["port"]] && rm["flags"] == "slave" && rm["master-link-status"] == "ok" {
				up++
			}
		}
		if up != len(replicas) {
			return fmt.Errorf("sentinel %s: sees %d of %d replicas up", s.Addr, up, len(replicas))
		}
		v, err = Do(s.Addr, "SENTINEL", "SENTINELS", sn.MasterName)
		if err != nil {
			return fmt.Errorf("sentinel %s: %w", s.Addr, err)
		}
		others := 0
		list, _ = v.([]any)
		for _, o := range list {
			om := pairs(o)
			if node := sn.sentinel(om["ip"] + ":" + om["port"]); node != nil && node.Pid() != 0 && om["flags"] == "sentinel" {
				others++
			}
		}
		if others != running-1 {
			return fmt.Errorf("sentinel %s: knows %d of the %d other sentinels", s.Addr, others, running-1)
		}
	}
	return nil
}

func (sn *Sentinel) sentinel(addr string) *Server {
	for _, s := range sn.sentinels {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

// WaitReplicated waits until every running replica has received everything
// its primary had written when WaitReplicated looked.
func (sn *Sentinel) WaitReplicated(timeout time.Duration) error {
	return waitReplicated(sn.servers, timeout)
}

// Stop stops every sentinel, then every server. It is safe to call twice.
func (sn *Sentinel) Stop() {
	for _, s := range sn.sentinels {
		s.Stop()
	}
	for _, s := range sn.servers {
		s.Stop()
	}
}
