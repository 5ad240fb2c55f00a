package redistest

import (
	"slices"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

func TestSentinel(t *testing.T) {
	start := time.Now()
	sn := StartSentinelT(t, 2, 3)
	t.Logf("a primary, 2 replicas and 3 sentinels healthy in %v", time.Since(start).Round(time.Millisecond))

	opt, err := rueidis.ParseURL(sn.URL())
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", sn.URL(), err)
	}
	if opt.Sentinel.MasterSet != SentinelMaster || !slices.Equal(opt.InitAddress, sn.SentinelAddrs()) {
		t.Fatalf("ParseURL(%q) gives master set %q and addresses %v, want %q and %v",
			sn.URL(), opt.Sentinel.MasterSet, opt.InitAddress, SentinelMaster, sn.SentinelAddrs())
	}
	opt.DisableCache = true
	client, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	if m := client.Mode(); m != rueidis.ClientModeSentinel {
		t.Fatalf("client mode %v, want sentinel", m)
	}

	old, err := sn.Primary()
	if err != nil {
		t.Fatal(err)
	}
	if old != sn.Servers()[0] {
		t.Fatalf("Primary() = %s, want the first server %s", old.Addr, sn.Servers()[0].Addr)
	}
	const n = 100
	writeKeys(t, client, "k:", n)
	if err := sn.WaitReplicated(10 * time.Second); err != nil {
		t.Fatal(err)
	}

	stop := probeWrites(client, "probe")
	start = time.Now()
	killed, err := sn.KillPrimary()
	if err != nil {
		t.Fatal(err)
	}
	if killed != old || killed.Pid() != 0 {
		t.Fatalf("KillPrimary stopped %s (pid %d), want %s stopped", killed.Addr, killed.Pid(), old.Addr)
	}
	addr, err := sn.WaitFailover(old.Addr, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	failedOver := time.Since(start)
	// rueidis hears of the new primary from its sentinel's +switch-master.
	w := waitWritable(t, client, "after", 10*time.Second)
	o := stop()
	t.Logf("failover to %s in %v, client writes again %v later; a client writing meanwhile: %v",
		addr, failedOver.Round(time.Millisecond), w.Round(time.Millisecond), o)
	if p, err := sn.Primary(); err != nil || p.Addr != addr {
		t.Fatalf("Primary() = %v, %v after failover to %s", p, err, addr)
	}
	checkKeys(t, client, "k:", n)

	start = time.Now()
	if err := sn.Rejoin(killed, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed primary back as a replica, and all sentinels agreeing, in %v", time.Since(start).Round(time.Millisecond))
	want := "slave"
	if p, err := sn.Primary(); err == nil && p.Addr == killed.Addr {
		// On a loaded machine the sentinels may have failed over once more,
		// to the rejoined server: what matters is that it is what they say.
		want = "master"
	}
	if info, err := Info(killed.Addr, "replication"); err != nil || info["role"] != want {
		t.Fatalf("rejoined %s: role %q, %v; want %s (as the sentinels say)", killed.Addr, info["role"], err, want)
	}
	writeKeys(t, client, "k2:", n)
	checkKeys(t, client, "k:", n)
}

func TestSentinelURL(t *testing.T) {
	sn := &Sentinel{MasterName: "m", sentinels: []*Server{{Addr: "127.0.0.1:1"}, {Addr: "127.0.0.1:2"}, {Addr: "127.0.0.1:3"}}}
	want := "redis://127.0.0.1:1?addr=127.0.0.1:2&addr=127.0.0.1:3&master_set=m"
	if got := sn.URL(); got != want {
		t.Fatalf("URL() = %q, want %q", got, want)
	}
}
