package envelope

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/redisession/redistore/internal/seal"
)

func testRing(t testing.TB, keys ...byte) *seal.Ring {
	t.Helper()
	var ks [][]byte
	for _, k := range keys {
		ks = append(ks, bytes.Repeat([]byte{k}, seal.KeyLen))
	}
	r, err := seal.NewRing(ks)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The envelope names internal/seal's sizes without importing it.
func TestSealSizesAgree(t *testing.T) {
	if sealIDLen != seal.IDLen || sealOverheadBound != seal.Overhead {
		t.Fatalf("sealIDLen %d, sealOverheadBound %d; internal/seal has %d and %d", sealIDLen, sealOverheadBound, seal.IDLen, seal.Overhead)
	}
}

// A sealed envelope keeps its header, metadata and compressor byte in
// clear, opens to the same payload with the ring and the associated data
// it was sealed with, and says which key sealed it.
func TestSealedEnvelopeRoundTrips(t *testing.T) {
	ring := testRing(t, 1)
	meta := Meta{Start: 1700000000, IndexUntil: 1700086460, User: strings.Repeat("u", UserDigestLen), HasUser: true}
	dec := storeDecompress(1 << 20)
	for _, tt := range []struct {
		name    string
		payload string
		comp    Compressor
	}{
		{"plain", "a secret marker value", LZ4{}},
		{"lz4", strings.Repeat("a secret marker value ", 50), LZ4{}},
		{"zstd", strings.Repeat("a secret marker value ", 50), mustZstd(t)},
		{"empty", "", LZ4{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clear := Append(nil, []byte(tt.payload), CodecCompact, tt.comp, 64, false, meta)
			ad := []byte("prefix:bucket\x00field")
			sealed, err := Seal([]byte("front"), clear, ring, ad)
			if err != nil {
				t.Fatal(err)
			}
			if string(sealed[:5]) != "front" {
				t.Fatal("Seal did not append to dst")
			}
			sealed = sealed[5:]
			if tt.payload != "" && bytes.Contains(sealed, []byte("marker")) {
				t.Fatal("the sealed envelope holds the payload in clear")
			}
			h, err := ReadHeader(string(sealed))
			if err != nil {
				t.Fatal(err)
			}
			hc, _ := ReadHeader(string(clear))
			if !h.Sealed || h.Codec != CodecCompact || h.Meta != meta || h.Compressor != hc.Compressor || h.Flags != hc.Flags {
				t.Fatalf("sealed header %+v, clear header %+v", h, hc)
			}
			if h.KeyID() != string(mustHex(t, ring.ID(0))) {
				t.Fatalf("KeyID %x, ring key %s", h.KeyID(), ring.ID(0))
			}
			if got := len(sealed) - len(clear); got != 1+seal.Overhead {
				t.Fatalf("sealing added %d bytes, want %d", got, 1+seal.Overhead)
			}
			o, err := Open(string(sealed), 1<<20, dec, ring, ad)
			if err != nil {
				t.Fatal(err)
			}
			if o.Payload != tt.payload || o.SealedBy != 0 || o.Meta != meta {
				t.Fatalf("opened %q sealed by %d, meta %+v", o.Payload, o.SealedBy, o.Meta)
			}
			oc, err := Open(string(clear), 1<<20, dec, ring, ad)
			if err != nil || oc.SealedBy != -1 || oc.Payload != tt.payload {
				t.Fatalf("a value in clear opened with a ring: sealed by %d, %v", oc.SealedBy, err)
			}
			// Rotated: a new key first, this one after it.
			o, err = Open(string(sealed), 1<<20, dec, testRing(t, 2, 1), ad)
			if err != nil || o.SealedBy != 1 || o.Payload != tt.payload {
				t.Fatalf("after rotation: sealed by %d, %v", o.SealedBy, err)
			}
			back, by, err := Unseal(string(sealed), testRing(t, 2, 1), ad)
			if err != nil || by != 1 || !bytes.Equal(back, clear) {
				t.Fatalf("Unseal: key %d, %v; same envelope in clear: %v", by, err, bytes.Equal(back, clear))
			}
			if back, by, err := Unseal(string(clear), nil, nil); err != nil || by != -1 || !bytes.Equal(back, clear) {
				t.Fatalf("Unseal of a value in clear: key %d, %v", by, err)
			}
			if _, _, err := Unseal(string(sealed), ring, []byte("elsewhere")); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Unseal elsewhere: %v", err)
			}
			if _, err := Seal(nil, sealed, ring, ad); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("sealing a sealed envelope: %v", err)
			}
		})
	}
}

// A sealed value that is tampered with, read elsewhere, read without the
// key that sealed it, or read by a store with no keys, is corrupt.
func TestSealedEnvelopeRefusals(t *testing.T) {
	ring := testRing(t, 1)
	ad := []byte("k\x00f")
	clear := Append(nil, []byte("payload"), CodecCompact, LZ4{}, 64, false, Meta{Start: 1})
	sealed, err := Seal(nil, clear, ring, ad)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := func(name string, v []byte, r Sealer, ad []byte) {
		t.Helper()
		if _, err := Open(string(v), 1<<20, nil, r, ad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	corrupt("moved to another field", sealed, ring, []byte("k\x00g"))
	corrupt("moved to another key", sealed, ring, []byte("j\x00f"))
	corrupt("a key not in the ring", sealed, testRing(t, 3), ad)
	corrupt("no keys", sealed, nil, ad)
	corrupt("truncated", sealed[:len(sealed)-1], ring, ad)
	corrupt("only the header", sealed[:3], ring, ad)
	// Every byte of the box, flipped.
	front := len(sealed) - (len("payload") + seal.Overhead)
	for i := front; i < len(sealed); i++ {
		v := bytes.Clone(sealed)
		v[i] ^= 0x40
		corrupt("byte flipped", v, ring, ad)
	}
	// The metadata is in clear, for the store's scripts, and authenticated:
	// a changed start (here, 1 -> 2) does not open.
	meta := bytes.Clone(sealed)
	if meta[4] != 1 {
		t.Fatalf("the metadata's start is not where the test expects: % x", meta[:8])
	}
	meta[4] = 2
	corrupt("metadata changed", meta, ring, ad)
	v := bytes.Clone(sealed)
	v[2] = 0x80
	if _, err := Open(string(v), 1<<20, nil, ring, ad); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("unknown extension flags: %v, want ErrUnknownFormat", err)
	}
	// A release that reads version 1 only refuses a sealed value loudly:
	// the version nibble says 2.
	if sealed[0]>>4 != VersionSealed {
		t.Fatalf("sealed value's version nibble is %d", sealed[0]>>4)
	}
}

// A sealed envelope's bytes, opened by every later release: "xyz" in the
// compact codec, sealed by testRing(t, 1) for the place "k\x00f" (the
// associated data: the place, the clear front 2001 01, then the front's
// length, 03): the header and extension byte, the key's fingerprint, the
// nonce, and the box with its tag.
func TestSealedEnvelopeGoldenVector(t *testing.T) {
	const golden = "200101" + "17db5403" + "000102030405060708090a0b0c0d0e0f1011121314151617" +
		"00a9a165ebeeba38ce391dbaa2764a04de21d9"
	ring := testRing(t, 1)
	if ring.ID(0) != "17db5403" {
		t.Fatalf("the fingerprint of the test key is %s", ring.ID(0))
	}
	o, err := Open(string(mustHex(t, golden)), 1<<20, nil, ring, []byte("k\x00f"))
	if err != nil || o.Payload != "xyz" || o.Codec != CodecCompact || o.SealedBy != 0 {
		t.Fatalf("golden sealed envelope: %+v, %v", o, err)
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustZstd(t testing.TB) *Zstd {
	t.Helper()
	z, err := NewZstd(zstd.SpeedFastest)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// The associated data the store makes (FrontRoom to spare) takes the clear
// front without a copy, and keeps its own bytes.
func TestSealADUsesTheRoomGiven(t *testing.T) {
	ad := append(make([]byte, 0, 3+FrontRoom), "k\x00f"...)
	front := make([]byte, FrontRoom-1)
	out := sealAD(ad, front)
	if &out[0] != &ad[0] || string(ad) != "k\x00f" || len(out) != 3+FrontRoom {
		t.Fatalf("sealAD copied (%v) or changed ad (%q)", &out[0] != &ad[0], ad)
	}
	if n := testing.AllocsPerRun(100, func() { sealAD(ad, front) }); n != 0 {
		t.Fatalf("sealAD allocates %v times with the room given", n)
	}
}
