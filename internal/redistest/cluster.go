package redistest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ClusterNodeTimeout is the cluster-node-timeout of every node StartCluster
// starts: a primary that stops answering for this long is marked failed, and
// one of its replicas takes over a second or two later.
const ClusterNodeTimeout = 2 * time.Second

// ClusterStartTimeout bounds StartCluster: creating the cluster with
// redis-cli, then waiting for WaitHealthy.
const ClusterStartTimeout = 45 * time.Second

// clusterSlots is the number of hash slots in a Redis Cluster.
const clusterSlots = 16384

// pollInterval is how often the waits of this package look again.
const pollInterval = 50 * time.Millisecond

// Cluster is a Redis Cluster of redis-server processes on 127.0.0.1.
type Cluster struct {
	nodes []*Server
}

// StartCluster starts primaries*(1+replicasEach) cluster-enabled servers in
// new directories under dir, joins them with redis-cli --cluster create, and
// returns once WaitHealthy is satisfied: every node says cluster_state:ok
// with all 16384 slots served, every replica's link to its primary is up,
// and every node agrees on every node's role. Redis Cluster needs at least
// three primaries. On error, every process it started is stopped.
func StartCluster(dir string, primaries, replicasEach int) (*Cluster, error) {
	return Install{}.StartCluster(dir, primaries, replicasEach)
}

// StartCluster starts a cluster of the installation's servers (see
// StartCluster).
func (in Install) StartCluster(dir string, primaries, replicasEach int) (*Cluster, error) {
	if primaries < 3 || replicasEach < 0 {
		return nil, fmt.Errorf("redistest: a cluster needs at least 3 primaries and no negative replica count, not %d and %d", primaries, replicasEach)
	}
	cli, err := in.Binary("redis-cli")
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(ClusterStartTimeout)
	c := &Cluster{}
	fail := func(err error) (*Cluster, error) {
		c.Stop()
		return nil, err
	}
	for i := 0; i < primaries*(1+replicasEach); i++ {
		s, err := StartWith(dir, Options{Install: in, ClusterBus: true, Args: []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout / time.Millisecond)),
			// A replica's first sync would otherwise wait 5 s for others.
			"--repl-diskless-sync-delay", "0",
			// CLUSTER SLOTS, which clients read, leaves out a replica
			// until its replication offset is not 0: on an idle cluster,
			// until the primary's first ping to it, 10 s by default.
			"--repl-ping-replica-period", "1",
		}})
		if err != nil {
			return fail(fmt.Errorf("redistest: starting cluster node %d: %w", i+1, err))
		}
		c.nodes = append(c.nodes, s)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicasEach), "--cluster-yes")
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %v", ClusterStartTimeout)
		}
		return fail(fmt.Errorf("redistest: redis-cli --cluster create: %w: %s", err, tail(string(out), 8)))
	}
	if err := c.WaitHealthy(time.Until(deadline)); err != nil {
		return fail(err)
	}
	return c, nil
}

// StartClusterT starts a cluster for one test (see StartCluster) and stops
// it when the test ends. It skips or fails the test (see Need) when
// redis-server or redis-cli is missing.
func StartClusterT(tb TB, primaries, replicasEach int) *Cluster {
	tb.Helper()
	Need(tb, "redis-server")
	Need(tb, "redis-cli")
	return Install{}.StartClusterT(tb, primaries, replicasEach)
}

// StartClusterT starts a cluster of the installation's servers for one test
// (see StartClusterT).
func (in Install) StartClusterT(tb TB, primaries, replicasEach int) *Cluster {
	tb.Helper()
	c, err := in.StartCluster(tb.TempDir(), primaries, replicasEach)
	if err != nil {
		tb.Fatalf("starting a Redis Cluster: %v", err)
	}
	tb.Cleanup(c.Stop)
	return c
}

// Addrs returns the address of every node, running or not, in start order.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		addrs[i] = s.Addr
	}
	return addrs
}

// Servers returns every node, running or not, in start order.
func (c *Cluster) Servers() []*Server {
	return append([]*Server(nil), c.nodes...)
}

// Node returns the node at addr, or nil when the cluster has none there.
func (c *Cluster) Node(addr string) *Server {
	for _, s := range c.nodes {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

// Primaries returns the running nodes that say they are primaries now.
// Failover changes the answer.
func (c *Cluster) Primaries() []*Server {
	return c.withRole("master")
}

// Replicas returns the running nodes that say they are replicas now.
func (c *Cluster) Replicas() []*Server {
	return c.withRole("slave")
}

func (c *Cluster) withRole(role string) []*Server {
	var out []*Server
	for _, s := range c.nodes {
		if s.Pid() == 0 {
			continue
		}
		if info, err := Info(s.Addr, "replication"); err == nil && info["role"] == role {
			out = append(out, s)
		}
	}
	return out
}

// Stop stops every node. It is safe to call twice.
func (c *Cluster) Stop() {
	for _, s := range c.nodes {
		s.Stop()
	}
}

// WaitHealthy waits until the running nodes form a healthy cluster: each
// says cluster_state:ok with all 16384 slots served, every slot's primary
// is running, every running node is a primary with slots or a replica whose
// link is up, every running node's CLUSTER NODES lists the other running
// nodes as connected, unflagged, and in the role they claim, and its
// CLUSTER SLOTS (what clients read the topology from) lists every running
// node. Nodes that were stopped are left out, so after stopping a primary
// WaitHealthy returns once a replica has taken its slots.
func (c *Cluster) WaitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := c.healthy()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: cluster not healthy after %v: %w", timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// healthy says why the cluster is not healthy, or nil.
func (c *Cluster) healthy() error {
	roles := map[string]string{}
	var running []*Server
	for _, s := range c.nodes {
		if s.Pid() == 0 {
			continue
		}
		running = append(running, s)
		info, err := Info(s.Addr, "replication")
		if err != nil {
			return fmt.Errorf("%s: INFO replication: %w", s.Addr, err)
		}
		roles[s.Addr] = info["role"]
		if info["role"] == "slave" {
			if info["master_link_status"] != "up" {
				return fmt.Errorf("%s: replica link to %s:%s is %s", s.Addr, info["master_host"], info["master_port"], info["master_link_status"])
			}
		}
	}
	if len(running) == 0 {
		return errors.New("no node is running")
	}
	for _, s := range running {
		v, err := Do(s.Addr, "CLUSTER", "INFO")
		if err != nil {
			return fmt.Errorf("%s: CLUSTER INFO: %w", s.Addr, err)
		}
		ci := fields(fmt.Sprint(v))
		if ci["cluster_state"] != "ok" {
			return fmt.Errorf("%s: cluster_state:%s", s.Addr, ci["cluster_state"])
		}
		if ci["cluster_slots_ok"] != strconv.Itoa(clusterSlots) {
			return fmt.Errorf("%s: cluster_slots_ok:%s", s.Addr, ci["cluster_slots_ok"])
		}
		v, err = Do(s.Addr, "CLUSTER", "NODES")
		if err != nil {
			return fmt.Errorf("%s: CLUSTER NODES: %w", s.Addr, err)
		}
		seen := 0
		for _, n := range parseClusterNodes(fmt.Sprint(v)) {
			if n.hasSlots {
				if node := c.Node(n.addr); node == nil || node.Pid() == 0 {
					return fmt.Errorf("%s: says stopped node %s serves slots", s.Addr, n.addr)
				}
			}
			role, live := roles[n.addr]
			if !live {
				continue
			}
			seen++
			for _, bad := range []string{"fail", "fail?", "handshake", "noaddr"} {
				if n.has(bad) {
					return fmt.Errorf("%s: flags %s as %s", s.Addr, n.addr, strings.Join(n.flags, ","))
				}
			}
			if !n.has(role) {
				return fmt.Errorf("%s: sees %s as %s, which says it is a %s", s.Addr, n.addr, strings.Join(n.flags, ","), role)
			}
			if role == "master" && !n.hasSlots {
				return fmt.Errorf("%s: %s is a primary without slots", s.Addr, n.addr)
			}
			if n.link != "connected" {
				return fmt.Errorf("%s: link to %s is %s", s.Addr, n.addr, n.link)
			}
		}
		if seen != len(running) {
			return fmt.Errorf("%s: knows %d of the %d running nodes", s.Addr, seen, len(running))
		}
		v, err = Do(s.Addr, "CLUSTER", "SLOTS")
		if err != nil {
			return fmt.Errorf("%s: CLUSTER SLOTS: %w", s.Addr, err)
		}
		listed := map[string]bool{}
		ranges, _ := v.([]any)
		for _, r := range ranges {
			r, _ := r.([]any)
			for i := 2; i < len(r); i++ {
				if n, _ := r[i].([]any); len(n) >= 2 {
					listed[fmt.Sprintf("%v:%v", n[0], n[1])] = true
				}
			}
		}
		for _, r := range running {
			if !listed[r.Addr] {
				return fmt.Errorf("%s: CLUSTER SLOTS, which clients read, does not list %s yet", s.Addr, r.Addr)
			}
		}
	}
	return nil
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	addr     string // host:port, without the bus port
	flags    []string
	link     string
	hasSlots bool
}

func (n clusterNode) has(flag string) bool {
	for _, f := range n.flags {
		if f == flag {
			return true
		}
	}
	return false
}

func parseClusterNodes(s string) []clusterNode {
	var out []clusterNode
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		out = append(out, clusterNode{addr: addr, flags: strings.Split(f[2], ","), link: f[7], hasSlots: len(f) > 8})
	}
	return out
}

// WaitReplicated waits until every running replica has received everything
// its primary had written when WaitReplicated looked, so that stopping a
// primary loses no acknowledged write.
func (c *Cluster) WaitReplicated(timeout time.Duration) error {
	return waitReplicated(c.nodes, timeout)
}

// Failover runs CLUSTER FAILOVER on replica, which takes over its primary's
// slots in agreement with it (no write is lost), and waits until replica
// says it is a primary and WaitHealthy is satisfied. The old primary
// becomes a replica of it. It gives up after 30 s.
func (c *Cluster) Failover(replica *Server) error {
	const total = 30 * time.Second
	// A manual failover the primary does not complete in 5 s is abandoned
	// (CLUSTER_MF_TIMEOUT); then it is worth asking again.
	const attempt = 6 * time.Second
	if c.Node(replica.Addr) != replica {
		return fmt.Errorf("redistest: %s is not a node of this cluster", replica.Addr)
	}
	deadline := time.Now().Add(total)
	if err := c.WaitHealthy(10 * time.Second); err != nil {
		return fmt.Errorf("redistest: before failover: %w", err)
	}
	for {
		if _, err := Do(replica.Addr, "CLUSTER", "FAILOVER"); err != nil {
			return fmt.Errorf("redistest: CLUSTER FAILOVER on %s: %w", replica.Addr, err)
		}
		retry := time.Now().Add(attempt)
		for time.Now().Before(retry) && time.Now().Before(deadline) {
			if info, err := Info(replica.Addr, "replication"); err == nil && info["role"] == "master" {
				return c.WaitHealthy(time.Until(deadline))
			}
			time.Sleep(pollInterval)
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("redistest: %s did not become a primary within %v of CLUSTER FAILOVER: %s", replica.Addr, total, replica.logTail())
		}
	}
}

// waitReplicated waits until each running replica among servers has the
// replication offset its primary had when it was asked.
func waitReplicated(servers []*Server, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, s := range servers {
		if s.Pid() == 0 {
			continue
		}
		info, err := Info(s.Addr, "replication")
		if err != nil {
			return fmt.Errorf("redistest: %s: INFO replication: %w", s.Addr, err)
		}
		if info["role"] != "slave" {
			continue
		}
		pinfo, err := Info(info["master_host"]+":"+info["master_port"], "replication")
		if err != nil {
			return fmt.Errorf("redistest: primary of %s: INFO replication: %w", s.Addr, err)
		}
		want, _ := strconv.ParseInt(pinfo["master_repl_offset"], 10, 64)
		for {
			info, err := Info(s.Addr, "replication")
			if err == nil {
				if got, _ := strconv.ParseInt(info["slave_repl_offset"], 10, 64); got >= want && info["master_link_status"] == "up" {
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("redistest: replica %s did not reach offset %d of its primary within %v", s.Addr, want, timeout)
			}
			time.Sleep(pollInterval)
		}
	}
	return nil
}

// tail returns the last n lines of s, joined with " | ".
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
