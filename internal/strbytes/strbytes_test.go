package strbytes

import (
	"encoding/binary"
	"testing"
)

func TestConversionsShareMemory(t *testing.T) {
	b := []byte("session")
	s := String(b)
	back := Bytes(s)
	if s != "session" || string(back) != "session" || &back[0] != &b[0] {
		t.Fatalf("String, then Bytes, of %q: %q, %q, not sharing its memory", b, s, back)
	}
	if String(nil) != "" || len(Bytes("")) != 0 {
		t.Fatal("empty conversions are not empty")
	}
}

// TestUvarintAgreesWithBinary: where binary.Uvarint reads a value, Uvarint
// reads the same, and where it refuses, Uvarint refuses too (n <= 0).
func TestUvarintAgreesWithBinary(t *testing.T) {
	inputs := [][]byte{
		nil, {0}, {1}, {0x7f}, {0x80}, {0x80, 0x01}, {0xff, 0xff, 0x03},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		{0x80, 0x80},
	}
	for _, v := range []uint64{0, 1, 127, 128, 300, 1 << 40, 1<<64 - 1} {
		inputs = append(inputs, append(binary.AppendUvarint(nil, v), 0xaa))
	}
	for _, in := range inputs {
		want, wn := binary.Uvarint(in)
		got, n := Uvarint(string(in))
		if wn > 0 && (got != want || n != wn) || wn <= 0 && n > 0 {
			t.Errorf("%x: Uvarint = %d, %d; binary.Uvarint = %d, %d", in, got, n, want, wn)
		}
	}
}
