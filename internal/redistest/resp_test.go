package redistest

import (
	"reflect"
	"strings"
	"testing"
)

func TestDo(t *testing.T) {
	s := StartT(t)
	// In order: later cases read what earlier ones wrote.
	tests := []struct {
		name    string
		args    []string
		want    any
		wantErr bool
	}{
		{"a simple string", []string{"SET", "k", "v"}, "OK", false},
		{"a bulk string", []string{"GET", "k"}, "v", false},
		{"a nil bulk string", []string{"GET", "missing"}, nil, false},
		{"an integer", []string{"EXISTS", "k"}, int64(1), false},
		{"an array with a nil", []string{"MGET", "k", "missing"}, []any{"v", nil}, false},
		{"a list of pairs", []string{"CONFIG", "GET", "appendonly"}, []any{"appendonly", "no"}, false},
		{"an error", []string{"NOSUCHCOMMAND"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Do(s.Addr, tt.args...)
			if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Do(%q) = %#v, %v; want %#v, error %v", tt.args, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestInfo(t *testing.T) {
	s := StartT(t)
	info, err := Info(s.Addr, "replication")
	if err != nil || info["role"] != "master" {
		t.Fatalf("Info = role %q, %v; want master", info["role"], err)
	}
}

func TestStartWithConfigFile(t *testing.T) {
	Need(t, "redis-server")
	s, err := StartWith(t.TempDir(), Options{
		Config: []string{"maxmemory 10mb", "maxmemory-policy noeviction"},
		Args:   []string{"--maxmemory-policy", "allkeys-lru"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	for name, want := range map[string]string{"maxmemory": "10485760", "maxmemory-policy": "allkeys-lru", "save": ""} {
		if got, err := Do(s.Addr, "CONFIG", "GET", name); err != nil || !reflect.DeepEqual(got, []any{name, want}) {
			t.Errorf("CONFIG GET %s = %v, %v; want %q (arguments override the file)", name, got, err, want)
		}
	}
	if _, err := Do(s.Addr, "CONFIG", "REWRITE"); err != nil {
		t.Fatalf("CONFIG REWRITE on a server with a configuration file: %v", err)
	}
	pid := s.Pid()
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.Pid() == pid || s.Pid() == 0 {
		t.Fatalf("Restart left pid %d (was %d)", s.Pid(), pid)
	}
	if got, err := Do(s.Addr, "CONFIG", "GET", "maxmemory"); err != nil || !reflect.DeepEqual(got, []any{"maxmemory", "10485760"}) {
		t.Fatalf("after Restart, CONFIG GET maxmemory = %v, %v", got, err)
	}
}

func TestStartWithMissingBinary(t *testing.T) {
	if _, err := StartWith(t.TempDir(), Options{Binary: "redis-no-such-binary"}); err == nil {
		t.Fatal("StartWith a missing binary did not fail")
	}
}

func TestStartAServerThatWantsAPassword(t *testing.T) {
	s := StartT(t, "--requirepass", "s3cret")
	if _, err := Do(s.Addr, "GET", "k"); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Fatalf("GET without AUTH: %v, want NOAUTH", err)
	}
}
