package redistest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindInstalls(t *testing.T) {
	bin, err := Binary("redis-server")
	if err != nil {
		t.Skipf("%v", err)
	}
	dir := filepath.Dir(bin)
	t.Run("empty means the redis-server on PATH", func(t *testing.T) {
		list, err := findInstalls("")
		if err != nil || len(list) != 1 || list[0].Dir != dir || list[0].Version == "" {
			t.Fatalf("findInstalls(\"\") = %+v, %v; want %s with a version", list, err, dir)
		}
	})
	t.Run("folders and binaries, separated by the list separator", func(t *testing.T) {
		env := dir + string(os.PathListSeparator) + " " + bin + " " + string(os.PathListSeparator)
		list, err := findInstalls(env)
		if err != nil || len(list) != 2 || list[0] != list[1] {
			t.Fatalf("findInstalls(%q) = %+v, %v; want the same installation twice", env, list, err)
		}
		if list[0].Major() < 6 || list[0].Name() != "redis-"+list[0].Version {
			t.Fatalf("version parts of %+v", list[0])
		}
	})
	t.Run("a folder without redis-server is an error that names it", func(t *testing.T) {
		empty := t.TempDir()
		_, err := findInstalls(empty)
		if err == nil || !strings.Contains(err.Error(), empty) || !strings.Contains(err.Error(), ServersEnv) {
			t.Fatalf("error %v, want one naming %s and %s", err, empty, ServersEnv)
		}
	})
}

func TestInstallAtLeast(t *testing.T) {
	in := Install{Version: "7.4.2"}
	for _, tt := range []struct {
		major, minor int
		want         bool
	}{{7, 4, true}, {7, 0, true}, {6, 9, true}, {7, 5, false}, {8, 0, false}} {
		if got := in.AtLeast(tt.major, tt.minor); got != tt.want {
			t.Errorf("7.4.2 AtLeast(%d, %d) = %v", tt.major, tt.minor, got)
		}
	}
}
