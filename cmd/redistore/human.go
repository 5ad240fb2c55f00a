package main

import (
	"fmt"
	"math"
	"runtime/debug"
	"strings"
	"time"
)

// human writes a duration as people say it, in at most two units, rounded
// to the smaller: "30 days", "2 days 4 hours", "59 minutes 59 seconds",
// "0 seconds". Negative durations get a minus sign.
func human(d time.Duration) string {
	if d < 0 {
		if d == math.MinInt64 {
			d++ // -d would overflow
		}
		return "-" + human(-d)
	}
	units := []struct {
		name string
		size time.Duration
	}{{"day", 24 * time.Hour}, {"hour", time.Hour}, {"minute", time.Minute}, {"second", time.Second}}
	for i, u := range units[:len(units)-1] {
		if d < u.size {
			continue
		}
		next := units[i+1]
		r := d.Round(next.size)
		if i > 0 && r >= units[i-1].size {
			return human(r) // rounding carried into the larger unit
		}
		big, small := r/u.size, (r%u.size)/next.size
		out := plural(int64(big), u.name)
		if small > 0 {
			out += " " + plural(int64(small), next.name)
		}
		return out
	}
	if r := d.Round(time.Second); r >= time.Minute {
		return human(r)
	}
	return plural(int64(d.Round(time.Second)/time.Second), "second")
}

func plural(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// version describes this build of the command: the module version (or the
// commit it was built from) and the Go version, from the build info.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "redistore (no build information)"
	}
	v := bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if v == "" || v == "(devel)" {
		v = "(devel)"
		if rev != "" {
			v += " " + rev[:min(12, len(rev))] + modified
		}
	}
	return fmt.Sprintf("redistore %s, %s, %s", v, bi.GoVersion, strings.TrimPrefix(bi.Main.Path, "github.com/"))
}
