package redistest

import (
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

func TestCluster(t *testing.T) {
	start := time.Now()
	c := StartClusterT(t, 3, 1)
	t.Logf("3 primaries and 3 replicas healthy in %v", time.Since(start).Round(time.Millisecond))

	if got := len(c.Addrs()); got != 6 {
		t.Fatalf("Addrs() has %d nodes, want 6", got)
	}
	if p, r := len(c.Primaries()), len(c.Replicas()); p != 3 || r != 3 {
		t.Fatalf("%d primaries and %d replicas, want 3 and 3", p, r)
	}
	for _, addr := range c.Addrs() {
		if c.Node(addr) == nil {
			t.Fatalf("Node(%s) = nil", addr)
		}
	}
	if c.Node("127.0.0.1:1") != nil {
		t.Fatal("Node of an address outside the cluster is not nil")
	}

	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: c.Addrs(), DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	if m := client.Mode(); m != rueidis.ClientModeCluster {
		t.Fatalf("client mode %v, want cluster", m)
	}
	if n := len(client.Nodes()); n != 6 {
		t.Errorf("client.Nodes() has %d nodes, want all 6, replicas included", n)
	}

	const n = 300
	writeKeys(t, client, "k:", n)
	for _, p := range c.Primaries() {
		if v, err := Do(p.Addr, "DBSIZE"); err != nil || v.(int64) == 0 {
			t.Fatalf("primary %s holds %v keys (%v): the keys did not spread over the slots", p.Addr, v, err)
		}
	}

	t.Run("a manual failover loses no key and no write", func(t *testing.T) {
		r := c.Replicas()[0]
		key := keyOn(t, primaryOf(t, r), "k:", n)
		stop := probeWrites(client, "{"+key+"}:probe")
		start := time.Now()
		if err := c.Failover(r); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		o := stop()
		t.Logf("CLUSTER FAILOVER to a healthy cluster in %v; a client writing to the moved slot: %v", took.Round(time.Millisecond), o)
		if !contains(c.Primaries(), r) {
			t.Fatalf("%s is not among the primaries after Failover", r.Addr)
		}
		checkKeys(t, client, "k:", n)
		if w := waitWritable(t, client, "{"+key+"}:after", 5*time.Second); w > 3*time.Second {
			// Failover returns once the cluster agrees: a write then takes
			// milliseconds; seconds mean it returned early (a busy machine
			// can stall a process for a second).
			t.Errorf("writing to the moved slot took %v after Failover", w)
		}
	})

	t.Run("a killed primary is replaced by its replica and rejoins as a replica", func(t *testing.T) {
		if err := c.WaitReplicated(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		victim := c.Primaries()[0]
		key := keyOn(t, victim, "k:", n)
		stop := probeWrites(client, "{"+key+"}:probe")
		start := time.Now()
		victim.Stop()
		if err := c.WaitHealthy(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		healed := time.Since(start)
		w := waitWritable(t, client, "{"+key+"}:after", 15*time.Second)
		o := stop()
		t.Logf("killed primary replaced in %v, client writes again %v later; a client writing to its slot: %v",
			healed.Round(time.Millisecond), w.Round(time.Millisecond), o)
		if p, r := len(c.Primaries()), len(c.Replicas()); p != 3 || r != 2 {
			t.Fatalf("%d primaries and %d replicas running, want 3 and 2", p, r)
		}
		checkKeys(t, client, "k:", n)

		start = time.Now()
		if err := victim.Restart(); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitHealthy(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		t.Logf("restarted node healthy again in %v", time.Since(start).Round(time.Millisecond))
		if !contains(c.Replicas(), victim) {
			t.Fatalf("restarted %s is not a replica", victim.Addr)
		}
		checkKeys(t, client, "k:", n)
	})
}

func TestStartClusterRejectsTooFewPrimaries(t *testing.T) {
	if _, err := StartCluster(t.TempDir(), 2, 1); err == nil {
		t.Fatal("StartCluster with 2 primaries did not fail")
	}
}

// keyOn returns the first of the n keys prefix+i that node holds.
func keyOn(t *testing.T, node *Server, prefix string, n int) string {
	t.Helper()
	for i := 0; i < n; i++ {
		key := prefix + strconv.Itoa(i)
		// A key of another node's slot gets a MOVED error, not 0.
		if v, err := Do(node.Addr, "EXISTS", key); err == nil && v == int64(1) {
			return key
		}
	}
	t.Fatalf("none of the %d keys is on %s", n, node.Addr)
	return ""
}

// primaryOf returns the primary replica replicates.
func primaryOf(t *testing.T, replica *Server) *Server {
	t.Helper()
	info, err := Info(replica.Addr, "replication")
	if err != nil {
		t.Fatal(err)
	}
	return &Server{Addr: info["master_host"] + ":" + info["master_port"]}
}

func contains(servers []*Server, s *Server) bool {
	for _, x := range servers {
		if x == s {
			return true
		}
	}
	return false
}
