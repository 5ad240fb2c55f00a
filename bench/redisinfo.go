package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/redisession/redistore/internal/redistest"
)

// do sends one command over a fresh connection (redistest.Do), so that no
// client of the benchmark is disturbed and no idle connection lingers, and
// returns a simple, integer or bulk reply as a string. It is for INFO and
// setup.
func do(addr string, args ...string) (string, error) {
	v, err := redistest.Do(addr, args...)
	if err != nil {
		return "", fmt.Errorf("%s: %w", args[0], err)
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("%s: unexpected reply %v", args[0], v)
}

// info runs INFO with the given sections and returns the fields as
// name -> value, and the size of the reply in bytes.
func info(addr string, sections ...string) (fields map[string]string, size int, err error) {
	body, err := do(addr, append([]string{"INFO"}, sections...)...)
	if err != nil {
		return nil, 0, err
	}
	fields = make(map[string]string)
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimRight(line, "\r")
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			fields[k] = v
		}
	}
	return fields, len(body) + len(strconv.Itoa(len(body))) + 5, nil
}

// respCommand encodes a command as a RESP array of bulk strings.
func respCommand(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// serverStats is what a run reads from the server before and after.
type serverStats struct {
	calls  map[string]int64 // commandstats: command -> calls
	netIn  int64
	netOut int64
	cpu    float64 // used_cpu_user + used_cpu_sys, seconds
	size   int     // bytes of the INFO reply that produced it
}

func readServerStats(addr string) (serverStats, error) {
	f, size, err := info(addr, "commandstats", "stats", "cpu")
	if err != nil {
		return serverStats{}, err
	}
	st := serverStats{calls: make(map[string]int64), size: size}
	for k, v := range f {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(v, ",") {
			if c, ok := strings.CutPrefix(kv, "calls="); ok {
				st.calls[name], _ = strconv.ParseInt(c, 10, 64)
			}
		}
	}
	st.netIn, _ = strconv.ParseInt(f["total_net_input_bytes"], 10, 64)
	st.netOut, _ = strconv.ParseInt(f["total_net_output_bytes"], 10, 64)
	user, _ := strconv.ParseFloat(f["used_cpu_user"], 64)
	sys, _ := strconv.ParseFloat(f["used_cpu_sys"], 64)
	st.cpu = user + sys
	return st, nil
}

// commandDelta is what the server did between two snapshots, without the
// INFO calls that took them.
type commandDelta struct {
	calls  map[string]int64
	netIn  int64
	netOut int64
	cpu    float64 // seconds
}

func deltaStats(before, after serverStats) commandDelta {
	d := commandDelta{calls: make(map[string]int64), cpu: after.cpu - before.cpu}
	for k, v := range after.calls {
		if k == "info" {
			continue
		}
		if n := v - before.calls[k]; n > 0 {
			d.calls[k] = n
		}
	}
	// The first INFO's reply went out after its snapshot, and the second
	// INFO's request came in before its own.
	d.netOut = max(0, after.netOut-before.netOut-int64(before.size))
	d.netIn = max(0, after.netIn-before.netIn-int64(len(respCommand("INFO", "commandstats", "stats", "cpu"))))
	return d
}

func (d commandDelta) total() int64 {
	var n int64
	for _, v := range d.calls {
		n += v
	}
	return n
}

// breakdown writes the commands per request, most frequent first:
// "evalsha 1, hget 1, time 2".
func breakdown(calls map[string]float64) string {
	type kv struct {
		k string
		v float64
	}
	var list []kv
	for k, v := range calls {
		if v >= 0.005 {
			list = append(list, kv{k, v})
		}
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].v != list[j].v {
			return list[i].v > list[j].v
		}
		return list[i].k < list[j].k
	})
	parts := make([]string, len(list))
	for i, e := range list {
		parts[i] = fmt.Sprintf("%s %s", strings.ToUpper(e.k), trimFloat(e.v))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// trimFloat writes 1, 1.5 or 0.25 without trailing zeros.
func trimFloat(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
