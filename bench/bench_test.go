package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/redisession/redistore/internal/redistest"
)

// TestSmoke runs the smoke pass: every contender, workload and report path,
// against redis-servers it starts. It skips without redis-server unless
// REDISTORE_REQUIRE_REDIS=1.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("the smoke pass takes several seconds")
	}
	redistest.Need(t, "redis-server")
	cfg, err := parseFlags([]string{"-smoke"})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cfg.stdout, cfg.log = &out, io.Discard
	if err := run(cfg); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Throughput relative to boj/redistore", "## Redis memory per session", contenderLabels["raw"]} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}} {
		got := h.quantile(tc.q)
		if d := float64(got-tc.want) / float64(tc.want); d < -0.03 || d > 0.03 {
			t.Errorf("quantile(%v) = %v, want %v within 3%%", tc.q, got, tc.want)
		}
	}
}

func TestBucketsRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 63, 64, 65, 100, 1000, 123456, 1 << 40} {
		b := bucketOf(v)
		mid := bucketValue(b)
		if bucketOf(mid) != b {
			t.Errorf("value %d: bucket %d, whose middle %d falls in bucket %d", v, b, mid, bucketOf(mid))
		}
	}
}

func TestPayloadMatchesSize(t *testing.T) {
	for _, size := range []int{150, 1024, 8192} {
		for _, kind := range []string{"random", "text"} {
			p, err := newPayload(size, kind, 1)
			if err != nil {
				t.Fatal(err)
			}
			if d := len(p.gob) - size; d < 0 || d > 16 {
				t.Errorf("%s %s payload: gob is %d bytes", sizeLabel(size), kind, len(p.gob))
			}
			if size == 1024 && len(p.values) != 10 {
				t.Errorf("1 KB payload has %d values, want 10", len(p.values))
			}
		}
	}
}

func TestParseFlagsRejects(t *testing.T) {
	for _, args := range [][]string{
		{"-sizes", "0"},
		{"-conc", "x"},
		{"-contenders", "nope"},
		{"-workloads", "write"},
		{"-runs", "0"},
		{"-payload", "zeros"},
		{"-throughput=false"},
		{"stray"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) accepted it", args)
		}
	}
}
