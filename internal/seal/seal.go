// Package seal encrypts and authenticates stored session values with a ring
// of XChaCha20-Poly1305 keys: the first key seals, every key opens, so keys
// rotate without making any sealed value unreadable.
//
// XChaCha20-Poly1305 takes a 192-bit nonce, which is safe to draw at random
// for any number of messages under one key; AES-GCM's 96-bit random nonce
// allows about 2^32 messages per key before a repeat becomes likely, which a
// site writing 10,000 sessions a second reaches in five days.
//
// A sealed value is
//
//	id     4 bytes: which key sealed it (a fingerprint, not the key)
//	nonce  24 bytes, random
//	box    the ciphertext and Poly1305's 16-byte tag
//
// The associated data, which the caller chooses, is authenticated but not
// stored: a value opens only with the associated data it was sealed with.
package seal

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sizes of a sealed value's parts.
const (
	KeyLen   = chacha20poly1305.KeySize    // 32
	IDLen    = 4                           // the key's fingerprint
	NonceLen = chacha20poly1305.NonceSizeX // 24
	TagLen   = chacha20poly1305.Overhead   // 16
	// Overhead is what sealing adds to a value.
	Overhead = IDLen + NonceLen + TagLen
)

var (
	// ErrUnknownKey: the value was sealed by a key that is not in the ring.
	ErrUnknownKey = errors.New("sealed by a key not in the ring")
	// ErrOpen: the value does not open: tampered with, truncated, or
	// sealed with other associated data (moved from elsewhere).
	ErrOpen = errors.New("sealed value does not open")
)

// Ring is a list of keys: Seal uses the first, Open any. It is safe for
// concurrent use.
type Ring struct {
	aeads []cipher.AEAD
	ids   [][IDLen]byte
}

// NewRing checks the keys (KeyLen bytes each, no two alike) and returns
// their ring.
func NewRing(keys [][]byte) (*Ring, error) {
	if len(keys) == 0 {
		return nil, errors.New("no keys")
	}
	r := &Ring{}
	for i, k := range keys {
		if len(k) != KeyLen {
			return nil, fmt.Errorf("key %d is %d bytes: each key is %d random bytes", i, len(k), KeyLen)
		}
		id := fingerprint(k)
		for j, other := range r.ids {
			if other == id {
				return nil, fmt.Errorf("keys %d and %d have the same fingerprint: remove the duplicate", j, i)
			}
		}
		a, err := chacha20poly1305.NewX(k)
		if err != nil {
			return nil, err
		}
		r.aeads = append(r.aeads, a)
		r.ids = append(r.ids, id)
	}
	return r, nil
}

// fingerprint names a key in sealed values: the first bytes of a hash of
// it, under a label of its own, which say nothing usable about the key.
func fingerprint(key []byte) [IDLen]byte {
	h := sha256.New()
	h.Write([]byte("redistore seal key id\x00"))
	h.Write(key)
	var id [IDLen]byte
	copy(id[:], h.Sum(nil))
	return id
}

// Len returns the number of keys.
func (r *Ring) Len() int { return len(r.aeads) }

// ID returns the fingerprint of key i in hex, as Stats and the command
// name keys.
func (r *Ring) ID(i int) string { return hex.EncodeToString(r.ids[i][:]) }

// Seal appends the sealed form of plaintext, under the first key and with
// associated data ad, to dst.
func (r *Ring) Seal(dst, plaintext, ad []byte) []byte {
	dst = append(dst, r.ids[0][:]...)
	n := len(dst)
	dst = append(dst, make([]byte, NonceLen)...)
	if _, err := rand.Read(dst[n:]); err != nil {
		panic("seal: crypto/rand failed: " + err.Error()) // never, on supported platforms
	}
	return r.aeads[0].Seal(dst, dst[n:n+NonceLen], plaintext, ad)
}

// KeyOf returns the index in the ring of the key that sealed v, or -1 when
// no key of the ring did (or v is too short to say).
func (r *Ring) KeyOf(v []byte) int {
	if len(v) < IDLen {
		return -1
	}
	for i, id := range r.ids {
		if string(id[:]) == string(v[:IDLen]) {
			return i
		}
	}
	return -1
}

// Open checks and decrypts sealed, which must have been sealed with ad, and
// appends the plaintext to dst. It returns the index of the key that opened
// it. It fails with ErrUnknownKey or ErrOpen.
func (r *Ring) Open(dst, sealed, ad []byte) ([]byte, int, error) {
	if len(sealed) < Overhead {
		return nil, -1, fmt.Errorf("%w: %d bytes, shorter than a sealed value's %d", ErrOpen, len(sealed), Overhead)
	}
	i := r.KeyOf(sealed)
	if i < 0 {
		return nil, -1, fmt.Errorf("%w (key id %x)", ErrUnknownKey, sealed[:IDLen])
	}
	nonce := sealed[IDLen : IDLen+NonceLen]
	out, err := r.aeads[i].Open(dst, nonce, sealed[IDLen+NonceLen:], ad)
	if err != nil {
		return nil, i, ErrOpen
	}
	return out, i, nil
}
