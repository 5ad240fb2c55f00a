package redistest

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
)

// TestFreePortsAreReserved: a port FreePort returned is not handed out again,
// by this process or another, and lies outside the ephemeral range, where
// no connection can take it while its server restarts.
func TestFreePortsAreReserved(t *testing.T) {
	if p := os.Getenv("REDISTEST_PORT_PROBE"); p != "" {
		port, _ := strconv.Atoi(p)
		if reserve(port) {
			os.Exit(3) // another process took a port this one's parent holds
		}
		os.Exit(0)
	}
	if runtime.GOOS != "linux" {
		t.Skip("the reservation test reads Linux's ephemeral range")
	}
	lo, hi := portRange(false)
	seen := map[int]bool{}
	for range 100 {
		p, err := freePort(true)
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] || seen[p+10000] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p], seen[p+10000] = true, true
		if p < lo || p+10000 >= hi {
			t.Fatalf("port %d (bus %d) outside %d-%d", p, p+10000, lo, hi-1)
		}
		if reserve(p) || reserve(p+10000) {
			t.Fatalf("port %d reserved again by its own process", p)
		}
	}
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFreePortsAreReserved$")
	cmd.Env = append(os.Environ(), "REDISTEST_PORT_PROBE="+strconv.Itoa(p))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("another process could reserve port %d (%v): %s", p, err, out)
	}
}
