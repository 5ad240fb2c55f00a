package redistore

import (
	"bytes"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The compact format is stored in Redis: these bytes must decode the same way
// in every later release.
var compactGolden = []struct {
	name   string
	values map[any]any
	hex    string
}{
	{"empty", map[any]any{}, "00"},
	{"string and int", map[any]any{"user": "alice", "n": 3},
		"02" + "03016e" + "0506" + "030475736572" + "0305616c696365"},
	{"bools and nil", map[any]any{"ok": true, "no": false, "nil": nil},
		"03" + "03026e6f01" + "03026f6b02" + "03036e696c00"},
	{"sized integers", map[any]any{int8(-1): int16(300), int32(-70000): int64(1) << 40, uint(7): uint8(255), uint16(65535): uint32(1) << 31, uint64(1) << 63: "u64"},
		"05" + "0601" + "07d804" + "08dfc508" + "098080808080400" + "a07" + "0bff01" + "0cffff03" + "0d8080808008" + "0e80808080808080808001" + "03037536" + "34"},
	{"floats and bytes", map[any]any{"f32": float32(1.5), "f64": 3.25, "b": []byte{0, 1, 2}},
		"03" + "03016204" + "03000102" + "030366333210" + "0000c03f" + "03036636341100" + "00000000000a40"},
	{"time and duration", map[any]any{"t": time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), "d": 90 * time.Second},
		"02" + "03016414" + "8090d8c69e05" + "03017413" + "0f010000000ee298c4c000000000ffff"},
	{"slices", map[any]any{"s": []string{"a", "bc"}, "i": []int{-1, 0, 1}, "i64": []int64{1 << 40}, "f": []float64{0.5}, "a": []any{"x", 1, nil}},
		"05" + "030161" + "2003030178050200" + "030166" + "2401000000000000e03f" + "030169" + "2203010002" + "030173" + "21020161026263" + "0303693634" + "23018080808080" + "40"},
	{"maps", map[any]any{"m": map[string]any{"b": 2, "a": "1"}, "ss": map[string]string{"k": "v"}, "aa": map[any]any{1: "one"}},
		"03" + "03016d" + "28020161030131016205" + "04" + "03026161" + "2a01050203036f6e65" + "03027373" + "2901016b0176"},
}

func TestCompactGoldenVectors(t *testing.T) {
	for _, tt := range compactGolden {
		t.Run(tt.name, func(t *testing.T) {
			want, err := hex.DecodeString(tt.hex)
			noErr(t, err)
			got, err := CompactSerializer{}.Encode(nil, tt.values)
			noErr(t, err)
			if !bytes.Equal(got, want) {
				t.Fatalf("encoding\n got %x\nwant %x", got, want)
			}
			decoded := map[any]any{}
			noErr(t, CompactSerializer{}.Decode(want, decoded))
			if !reflect.DeepEqual(decoded, tt.values) {
				t.Fatalf("decoding: got %#v, want %#v", decoded, tt.values)
			}
		})
	}
}

type gobUser struct {
	Name  string
	Roles []string
}

type role string

type point struct{ X, Y int }

func init() {
	gob.Register(gobUser{})
	gob.Register(role(""))
	gob.Register(point{})
}

type unregistered struct{ X int }

func TestCompactRoundTrips(t *testing.T) {
	values := map[any]any{
		"empty string":  "",
		"unicode":       "héllo, 世界",
		"min int":       math.MinInt,
		"max uint64":    uint64(math.MaxUint64),
		"min int8":      int8(math.MinInt8),
		"nan-free bits": math.Inf(-1),
		"neg zero":      math.Copysign(0, -1),
		"empty bytes":   []byte{},
		"local time":    time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600)),
		"zero time":     time.Time{},
		"nested":        map[string]any{"list": []any{map[string]any{"deep": []string{"x"}}}},
		"struct":        gobUser{Name: "bob", Roles: []string{"admin"}},
		"named string":  role("admin"),
		role("as key"):  1,
		point{1, 2}:     2,
		"nil slice":     []string(nil),
	}
	b, err := CompactSerializer{}.Encode(nil, values)
	noErr(t, err)
	got := map[any]any{}
	noErr(t, CompactSerializer{}.Decode(b, got))
	for k, want := range values {
		v, ok := got[k]
		if !ok {
			t.Errorf("key %#v missing", k)
			continue
		}
		if want, ok := want.(time.Time); ok {
			if !want.Equal(v.(time.Time)) {
				t.Errorf("%v: got %v, want %v", k, v, want)
			}
			continue
		}
		if reflect.TypeOf(v) != reflect.TypeOf(want) {
			t.Errorf("%v: type %T, want %T", k, v, want)
		}
		if k == "nil slice" || k == "neg zero" {
			continue // a nil slice comes back empty; -0 == 0 for DeepEqual
		}
		if !reflect.DeepEqual(v, want) {
			t.Errorf("%v: got %#v, want %#v", k, v, want)
		}
	}
	if math.Signbit(got["neg zero"].(float64)) != true {
		t.Error("-0 lost its sign")
	}
}

func TestCompactIsCanonical(t *testing.T) {
	build := func(order []int) map[any]any {
		m := map[any]any{}
		for _, i := range order {
			m[i] = map[string]any{"x": i, "y": []int{i}}
			m["k"+string(rune('a'+i))] = map[string]string{"a": "1", "b": "2", "c": "3"}
		}
		return m
	}
	first, err := CompactSerializer{}.Encode(nil, build([]int{0, 1, 2, 3, 4, 5, 6, 7}))
	noErr(t, err)
	for i := 0; i < 50; i++ {
		again, err := CompactSerializer{}.Encode(nil, build([]int{7, 3, 5, 1, 0, 2, 6, 4}))
		noErr(t, err)
		if !bytes.Equal(first, again) {
			t.Fatal("the same values encoded to different bytes")
		}
	}
}

func TestCompactEncodeErrors(t *testing.T) {
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	tests := map[string]map[any]any{
		"an unregistered type": {"x": unregistered{1}},
		"a cycle":              {"x": cyclic},
		"a channel":            {"x": make(chan int)},
	}
	for name, values := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := (CompactSerializer{}).Encode(nil, values); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestCompactRejectsHostileInput(t *testing.T) {
	deep := strings.Repeat("2001", 40) + "00"
	tests := map[string]string{
		"nothing":                        "",
		"count beyond the data":          "ff",
		"huge count":                     "ffffffffffffffffff01",
		"truncated string":               "01030a6162",
		"unknown tag":                    "0103016b99",
		"trailing bytes":                 "0003",
		"int8 out of range":              "0103016b06ff03",
		"uint8 out of range":             "0103016b0bff03",
		"truncated float":                "0103016b11000000",
		"too deep":                       "01" + "03016b" + deep,
		"unhashable key":                 "01" + "210101" + "61" + "00",
		"unhashable key in a nested map": "01" + "2a01" + "21010161" + "00" + "00",
		"bad time":                       "0103016b1301ff",
		"bad gob":                        "0103016b7f03ffffff",
		"varint overflow":                "0103016b05ffffffffffffffffffff01",
		"huge string slice":              "0103016b21ffffff7f",
		"huge float slice":               "0103016b2403" + "0000",
	}
	for name, h := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := hex.DecodeString(h)
			noErr(t, err)
			err = CompactSerializer{}.Decode(b, map[any]any{})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestCompactRejectsUnhashableGobKey(t *testing.T) {
	key, err := appendGob(nil, gobUser{Name: "x", Roles: []string{"y"}})
	noErr(t, err)
	data := append(append([]byte{0x01}, key...), tagNil)
	if err := (CompactSerializer{}).Decode(data, map[any]any{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v, want ErrCorrupt", err)
	}
}

func FuzzCompactDecode(f *testing.F) {
	for _, tt := range compactGolden {
		b, _ := hex.DecodeString(tt.hex)
		f.Add(b)
	}
	f.Add([]byte{0x01, 0x03, 0x01, 'k', 0x7f, 0x02, 0x03, 0x04})
	f.Fuzz(func(t *testing.T, data []byte) {
		values := map[any]any{}
		if err := (CompactSerializer{}).Decode(data, values); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		// What decodes must encode, and decode again to the same values.
		again, err := CompactSerializer{}.Encode(nil, values)
		if err != nil {
			t.Fatalf("decoded values do not encode: %v", err)
		}
		values2 := map[any]any{}
		if err := (CompactSerializer{}).Decode(again, values2); err != nil {
			t.Fatalf("re-encoded values do not decode: %v", err)
		}
		third, err := CompactSerializer{}.Encode(nil, values2)
		if err != nil || !bytes.Equal(again, third) {
			t.Fatalf("encoding is not stable: %x vs %x (%v)", again, third, err)
		}
	})
}
