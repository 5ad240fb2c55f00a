package seal

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func key(t testing.TB) []byte {
	k := make([]byte, KeyLen)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpens(t *testing.T) {
	r, err := NewRing([][]byte{key(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 150, 4096} {
		plain := bytes.Repeat([]byte{'x'}, n)
		v := r.Seal([]byte("prefix"), plain, []byte("where"))
		if !bytes.HasPrefix(v, []byte("prefix")) || len(v) != len("prefix")+n+Overhead {
			t.Fatalf("%d bytes sealed to %d after the prefix, want %d", n, len(v)-len("prefix"), n+Overhead)
		}
		got, i, err := r.Open(nil, v[len("prefix"):], []byte("where"))
		if err != nil || i != 0 || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: opened %q, key %d, %v", n, got, i, err)
		}
		if n > 8 && bytes.Contains(v, plain[:8]) {
			t.Fatalf("the sealed value holds the plaintext")
		}
	}
}

func TestSealedValuesDiffer(t *testing.T) {
	r, _ := NewRing([][]byte{key(t)})
	a := r.Seal(nil, []byte("same"), nil)
	b := r.Seal(nil, []byte("same"), nil)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same value are equal: the nonce is not random")
	}
}

func TestRingRotates(t *testing.T) {
	old, cur := key(t), key(t)
	before, _ := NewRing([][]byte{old})
	v := before.Seal(nil, []byte("value"), []byte("ad"))
	after, err := NewRing([][]byte{cur, old})
	if err != nil {
		t.Fatal(err)
	}
	got, i, err := after.Open(nil, v, []byte("ad"))
	if err != nil || i != 1 || string(got) != "value" {
		t.Fatalf("opened %q with key %d: %v", got, i, err)
	}
	if after.KeyOf(v) != 1 || after.KeyOf(after.Seal(nil, nil, nil)) != 0 {
		t.Fatal("KeyOf names the wrong key")
	}
	if after.ID(1) != before.ID(0) || after.ID(0) == after.ID(1) {
		t.Fatal("IDs do not follow the keys")
	}
	dropped, _ := NewRing([][]byte{cur})
	if _, _, err := dropped.Open(nil, v, []byte("ad")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("a key gone from the ring: %v, want ErrUnknownKey", err)
	}
}

func TestOpenRefusesTamperedAndMovedValues(t *testing.T) {
	r, _ := NewRing([][]byte{key(t)})
	v := r.Seal(nil, []byte("the session's values"), []byte("session:A\x00field"))
	if _, _, err := r.Open(nil, v, []byte("session:B\x00field")); !errors.Is(err, ErrOpen) {
		t.Fatalf("other associated data: %v, want ErrOpen", err)
	}
	for i := range v {
		bad := bytes.Clone(v)
		bad[i] ^= 0x01
		_, _, err := r.Open(nil, bad, []byte("session:A\x00field"))
		if i < IDLen {
			if !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("byte %d (the key id) flipped: %v, want ErrUnknownKey", i, err)
			}
		} else if !errors.Is(err, ErrOpen) {
			t.Fatalf("byte %d flipped: %v, want ErrOpen", i, err)
		}
	}
	for n := range Overhead + 3 {
		if _, _, err := r.Open(nil, v[:n], []byte("session:A\x00field")); err == nil {
			t.Fatalf("a value cut to %d bytes opens", n)
		}
	}
}

func TestNewRingChecksKeys(t *testing.T) {
	k := key(t)
	for name, keys := range map[string][][]byte{
		"none":      nil,
		"short":     {k[:16]},
		"long":      {append(bytes.Clone(k), 0)},
		"duplicate": {k, bytes.Clone(k)},
	} {
		if _, err := NewRing(keys); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzOpen(f *testing.F) {
	r, _ := NewRing([][]byte{bytes.Repeat([]byte{7}, KeyLen)})
	f.Add(r.Seal(nil, []byte("hello"), []byte("ad")), []byte("ad"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, v, ad []byte) {
		got, i, err := r.Open(nil, v, ad)
		if err == nil && (i != 0 || len(got) != len(v)-Overhead) {
			t.Fatalf("opened %d bytes with key %d from %d", len(got), i, len(v))
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	r, _ := NewRing([][]byte{key(b)})
	plain := make([]byte, 150)
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		dst = r.Seal(dst[:0], plain, []byte("session:0123456789abcdef"))
	}
}

func BenchmarkOpen(b *testing.B) {
	r, _ := NewRing([][]byte{key(b)})
	v := r.Seal(nil, make([]byte, 150), []byte("ad"))
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.Open(dst[:0], v, []byte("ad")); err != nil {
			b.Fatal(err)
		}
	}
}
