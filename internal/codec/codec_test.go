package codec

import (
	"bytes"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
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
	{"nil and empty", map[any]any{"b": []byte(nil), "B": []byte{}, "s": []string(nil), "S": []string{}, "m": map[string]any(nil), "M": map[string]any{}},
		"06" + "030142" + "0400" + "03014d" + "2800" + "030153" + "2100" + "030162" + "0f04" + "03016d" + "0f28" + "030173" + "0f21"},
	{"every typed nil", map[any]any{"a": []any(nil), "i": []int(nil), "j": []int64(nil), "f": []float64(nil), "ss": map[string]string(nil), "aa": map[any]any(nil)},
		"06" + "030161" + "0f20" + "030166" + "0f24" + "030169" + "0f22" + "03016a" + "0f23" + "03026161" + "0f2a" + "03027373" + "0f29"},
	{"maps", map[any]any{"m": map[string]any{"b": 2, "a": "1"}, "ss": map[string]string{"k": "v"}, "aa": map[any]any{1: "one"}},
		"03" + "03016d" + "28020161030131016205" + "04" + "03026161" + "2a01050203036f6e65" + "03027373" + "2901016b0176"},
}

func TestCompactGoldenVectors(t *testing.T) {
	t.Parallel()
	for _, tt := range compactGolden {
		t.Run(tt.name, func(t *testing.T) {
			want, err := hex.DecodeString(tt.hex)
			noErr(t, err)
			got, err := Append(nil, tt.values)
			noErr(t, err)
			if !bytes.Equal(got, want) {
				t.Fatalf("encoding\n got %x\nwant %x", got, want)
			}
			decoded := map[any]any{}
			noErr(t, decode(want, decoded))
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

// decode is Decode of bytes, as the store's serializer calls it.
func decode(data []byte, values map[any]any) error {
	_, err := Decode(string(data), values)
	return err
}

func TestCompactRoundTrips(t *testing.T) {
	t.Parallel()
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
		"nil map":       map[string]any(nil),
		"nil bytes":     []byte(nil),
		"empty map":     map[any]any{},
		"empty slices":  []any{[]int{}, []int(nil), []float64{}, []float64(nil)},
		"offset 59 s":   time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("", 59)),
	}
	b, err := Append(nil, values)
	noErr(t, err)
	got := map[any]any{}
	noErr(t, decode(b, got))
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
		if k == "neg zero" {
			continue // -0 == 0 for DeepEqual
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
	t.Parallel()
	build := func(order []int) map[any]any {
		m := map[any]any{}
		for _, i := range order {
			m[i] = map[string]any{"x": i, "y": []int{i}}
			m["k"+string(rune('a'+i))] = map[string]string{"a": "1", "b": "2", "c": "3"}
		}
		return m
	}
	first, err := Append(nil, build([]int{0, 1, 2, 3, 4, 5, 6, 7}))
	noErr(t, err)
	for i := 0; i < 50; i++ {
		again, err := Append(nil, build([]int{7, 3, 5, 1, 0, 2, 6, 4}))
		noErr(t, err)
		if !bytes.Equal(first, again) {
			t.Fatal("the same values encoded to different bytes")
		}
	}
}

func TestCompactEncodeErrors(t *testing.T) {
	t.Parallel()
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	tests := map[string]map[any]any{
		"an unregistered type": {"x": unregistered{1}},
		"a cycle":              {"x": cyclic},
		"a channel":            {"x": make(chan int)},
	}
	for name, values := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := Append(nil, values); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// TestCompactTooDeep: values nested past maxDepth are refused on encode
// with ErrTooDeep, and on decode as corrupt.
func TestCompactTooDeep(t *testing.T) {
	t.Parallel()
	deep := any("x")
	for range maxDepth + 1 {
		deep = []any{deep}
	}
	if _, err := Append(nil, map[any]any{"k": deep}); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("error %v, want ErrTooDeep", err)
	}
	if _, err := Append(nil, map[any]any{"k": deep.([]any)[0]}); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
}

// TestDecodeSaysWhetherCanonical: data without a gob-encoded item is the
// only encoding of its values; gob writes maps in any order.
func TestDecodeSaysWhetherCanonical(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		values    map[any]any
		canonical bool
	}{
		{map[any]any{}, true},
		{map[any]any{"user": "alice", "roles": []string{"admin"}, "n": 3}, true},
		{map[any]any{"user": gobUser{Name: "alice"}}, false},
		{map[any]any{"nested": []any{map[string]any{"p": point{1, 2}}}}, false},
	} {
		b, err := Append(nil, tt.values)
		noErr(t, err)
		canonical, err := Decode(string(b), map[any]any{})
		noErr(t, err)
		equal(t, fmt.Sprintf("canonical of %v", tt.values), canonical, tt.canonical)
	}
}

// TestCount: the entry count is read from the front of the data, and only
// trusted when the data could hold that many entries.
func TestCount(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		hex string
		n   int
		ok  bool
	}{
		{"00", 0, true},
		{"02" + "03016e0506" + "030475736572" + "0305616c696365", 2, true},
		{"0500", 0, false},
		{"ff", 0, false},
		{"", 0, false},
	} {
		b, err := hex.DecodeString(tt.hex)
		noErr(t, err)
		n, ok := Count(string(b))
		if n != tt.n || ok != tt.ok {
			t.Errorf("Count(%s) = %d, %v; want %d, %v", tt.hex, n, ok, tt.n, tt.ok)
		}
	}
}

func TestCompactRejectsHostileInput(t *testing.T) {
	t.Parallel()
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
			err = decode(b, map[any]any{})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestCompactRejectsUnhashableGobKey(t *testing.T) {
	t.Parallel()
	key, err := appendGob(nil, gobUser{Name: "x", Roles: []string{"y"}})
	noErr(t, err)
	data := append(append([]byte{0x01}, key...), tagNil)
	if err := decode(data, map[any]any{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v, want ErrCorrupt", err)
	}
}

func FuzzCompactDecode(f *testing.F) {
	for _, tt := range compactGolden {
		b, _ := hex.DecodeString(tt.hex)
		f.Add(b)
	}
	f.Add([]byte{0x01, 0x03, 0x01, 'k', 0x7f, 0x02, 0x03, 0x04})
	// A time whose offset (-119 s) Go decodes but cannot encode.
	f.Add([]byte("\x01\x03\x01t\x13\x10\x02\x00\x00\x00\x0e\xe0\xe7\xb0\x78\x00\x00\x00\x00\xff\xff\x01"))
	// Two NaN keys, and a typed nil.
	f.Add([]byte("\x03\x11\x01\x00\x00\x00\x00\x00\xf8\x7f\x05\x02\x11\x01\x00\x00\x00\x00\x00\xf8\x7f\x05\x04\x03\x01n\x0f\x21"))
	f.Fuzz(func(t *testing.T, data []byte) {
		values := map[any]any{}
		if err := decode(data, values); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		// What decodes must encode, and decode again to the same values.
		again, err := Append(nil, values)
		if err != nil {
			t.Fatalf("decoded values do not encode: %v", err)
		}
		values2 := map[any]any{}
		if err := decode(again, values2); err != nil {
			t.Fatalf("re-encoded values do not decode: %v", err)
		}
		third, err := Append(nil, values2)
		if err != nil || !bytes.Equal(again, third) {
			t.Fatalf("encoding is not stable: %x vs %x (%v)", again, third, err)
		}
	})
}

// TestCompactKeepsNilApartFromEmpty checks every nillable type the codec
// writes itself: nil comes back nil, and empty comes back empty, not nil.
func TestCompactKeepsNilApartFromEmpty(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ null, empty any }{
		{[]byte(nil), []byte{}},
		{[]any(nil), []any{}},
		{[]string(nil), []string{}},
		{[]int(nil), []int{}},
		{[]int64(nil), []int64{}},
		{[]float64(nil), []float64{}},
		{map[string]any(nil), map[string]any{}},
		{map[string]string(nil), map[string]string{}},
		{map[any]any(nil), map[any]any{}},
	} {
		t.Run(fmt.Sprintf("%T", tt.null), func(t *testing.T) {
			b, err := Append(nil, map[any]any{"nil": tt.null, "empty": tt.empty, "nested": []any{tt.null, tt.empty}})
			noErr(t, err)
			got := map[any]any{}
			noErr(t, decode(b, got))
			isNil := func(v any) bool { return reflect.ValueOf(v).IsNil() }
			nested := got["nested"].([]any)
			for what, v := range map[string]any{"nil": got["nil"], "nested nil": nested[0]} {
				if reflect.TypeOf(v) != reflect.TypeOf(tt.null) || !isNil(v) {
					t.Errorf("%s: got %#v, want a nil %T", what, v, tt.null)
				}
			}
			for what, v := range map[string]any{"empty": got["empty"], "nested empty": nested[1]} {
				if reflect.TypeOf(v) != reflect.TypeOf(tt.empty) || isNil(v) || reflect.ValueOf(v).Len() != 0 {
					t.Errorf("%s: got %#v, want an empty, non-nil %T", what, v, tt.empty)
				}
			}
		})
	}
}

// TestCompactNaNKeysHaveOneOrder: a map may hold several NaN keys, which
// encode alike; their entries must still come out in one order, or an
// unchanged session would be written again on every Save.
func TestCompactNaNKeysHaveOneOrder(t *testing.T) {
	t.Parallel()
	build := func(order []int) map[any]any {
		m := map[any]any{}
		for _, i := range order {
			m[math.NaN()] = i
			m[float32(math.NaN())] = -i
		}
		m["user"] = "alice"
		return m
	}
	first, err := Append(nil, build([]int{0, 1, 2, 3, 4, 5, 6, 7}))
	noErr(t, err)
	decoded := map[any]any{}
	noErr(t, decode(first, decoded))
	equal(t, "entries decoded", len(decoded), 17)
	for i := 0; i < 50; i++ {
		again, err := Append(nil, build([]int{7, 3, 5, 1, 0, 2, 6, 4}))
		noErr(t, err)
		if !bytes.Equal(first, again) {
			t.Fatal("the same values with NaN keys encoded to different bytes")
		}
		reencoded, err := Append(nil, decoded)
		noErr(t, err)
		if !bytes.Equal(first, reencoded) {
			t.Fatal("decoded values with NaN keys encoded to other bytes")
		}
	}
}

// TestCompactTimesThatDecodeAlsoEncode: Go's binary time format accepts
// offsets and fields it cannot write again (and writes some negative offsets
// so that they decode as others). Decoding refuses those as corrupt and
// encoding refuses the times it could not store exactly, so that a session
// that loads can always be saved, unchanged.
func TestCompactTimesThatDecodeAlsoEncode(t *testing.T) {
	t.Parallel()
	timeItem := func(b []byte) []byte {
		return append(append([]byte{0x01, 0x03, 0x01, 't', tagTime}, byte(len(b))), b...)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	v2 := func(offMin int16, sec byte) []byte {
		b, _ := base.MarshalBinary()
		b[0] = 2
		b[13], b[14] = byte(uint16(offMin)>>8), byte(offMin)
		return append(b, sec)
	}
	t.Run("refused on decode", func(t *testing.T) {
		for name, b := range map[string][]byte{
			"-119 s (minutes -1, seconds 1)": v2(-1, 1),
			"-61 s as Go writes it":          v2(-1, 0xff),
			"-90 s (minutes -2, seconds 30)": v2(-2, 30),
			"version 2 with 0 seconds":       v2(60, 0),
			"version 2 with 60 seconds":      v2(0, 60),
			"nanoseconds past a second":      func() []byte { b, _ := base.MarshalBinary(); b[9] = 0x7f; return b }(),
			"negative nanoseconds":           func() []byte { b, _ := base.MarshalBinary(); b[9] = 0xff; return b }(),
		} {
			t.Run(name, func(t *testing.T) {
				err := decode(timeItem(b), map[any]any{})
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error %v, want ErrCorrupt", err)
				}
			})
		}
	})
	t.Run("kept on decode", func(t *testing.T) {
		for name, b := range map[string][]byte{
			"+59 s":   v2(0, 59),
			"+1h 30s": v2(60, 30),
		} {
			t.Run(name, func(t *testing.T) {
				got := map[any]any{}
				noErr(t, decode(timeItem(b), got))
				again, err := Append(nil, got)
				noErr(t, err)
				if !bytes.Equal(again, timeItem(b)) {
					t.Fatalf("encoded again as %x, want %x", again, timeItem(b))
				}
			})
		}
	})
	t.Run("refused on encode", func(t *testing.T) {
		for _, off := range []int{-119, -61, -1, -3599} {
			tm := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", off))
			_, err := Append(nil, map[any]any{"t": tm})
			if err == nil || !strings.Contains(err.Error(), "UTC()") {
				t.Fatalf("offset %d s: error %v, want one that says to store t.UTC()", off, err)
			}
			if _, err := Append(nil, map[any]any{"t": tm.UTC()}); err != nil {
				t.Fatalf("offset %d s, as UTC: %v", off, err)
			}
		}
	})
}

func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func equal[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}
