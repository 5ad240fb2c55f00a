// Package cookie reads and writes the store's session cookie without the
// allocations of gorilla/securecookie and net/http, and byte for byte as
// they do: Decoder reads the values securecookie writes, Add writes the
// Set-Cookie header http.SetCookie writes. A test and a fuzz target
// compare each with the library it stands in for.
package cookie

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"strconv"
	"sync"

	"github.com/redisession/redistore/internal/strbytes"
)

// Decoder reads cookie values in gorilla/securecookie's format for a codec
// with a hash key and no block key, the NopEncoder and no age limit (what
// the store's cookieCodecs builds), without securecookie's per-call
// allocations: the HMAC of the key is built once and pooled. It accepts
// exactly the values securecookie.Decode accepts, with the same result; for
// any other value it says no, and the caller asks securecookie, whose
// errors the store reports. (TestCookieFastPathMatchesSecurecookie,
// FuzzCookieFastPath.) A Decoder is safe for concurrent use.
//
// The format: base64url(date "|" base64url(id) "|" mac), where mac is
// HMAC-SHA256(key, name "|" date "|" base64url(id)) and date is decimal
// Unix seconds.
type Decoder struct {
	pool sync.Pool // *state
}

// state is what one Decode works with: the key's HMAC and buffers.
type state struct {
	h   hash.Hash
	buf []byte
	sum []byte
}

// maxValueLength is securecookie's default MaxLength, which the store's
// codecs keep: a longer value is refused.
const maxValueLength = 4096

// NewDecoder returns the Decoder of values signed with hashKey, which it
// copies.
func NewDecoder(hashKey []byte) *Decoder {
	key := append([]byte(nil), hashKey...)
	d := &Decoder{}
	d.pool.New = func() any {
		return &state{h: hmac.New(sha256.New, key), buf: make([]byte, 0, 256), sum: make([]byte, 0, sha256.Size)}
	}
	return d
}

// Decode returns the ID a value made with this Decoder's key for the
// cookie name holds, and false for any value securecookie would refuse.
func (d *Decoder) Decode(name, value string) (string, bool) {
	if len(value) > maxValueLength || len(value) == 0 {
		return "", false
	}
	st := d.pool.Get().(*state)
	defer d.pool.Put(st)
	need := base64.URLEncoding.DecodedLen(len(value))
	if cap(st.buf) < need {
		st.buf = make([]byte, need)
	}
	b := st.buf[:need]
	n, err := base64.URLEncoding.Decode(b, strbytes.Bytes(value))
	if err != nil {
		return "", false
	}
	b = b[:n]
	// date "|" value "|" mac; the mac, binary, may hold '|' itself.
	i := bytes.IndexByte(b, '|')
	if i < 0 {
		return "", false
	}
	j := bytes.IndexByte(b[i+1:], '|')
	if j < 0 {
		return "", false
	}
	j += i + 1
	st.h.Reset()
	st.h.Write(strbytes.Bytes(name))
	st.h.Write(pipe)
	st.h.Write(b[:j])
	st.sum = st.h.Sum(st.sum[:0])
	if !hmac.Equal(st.sum, b[j+1:]) {
		return "", false
	}
	if _, err := strconv.ParseInt(strbytes.String(b[:i]), 10, 64); err != nil {
		return "", false
	}
	enc := b[i+1 : j]
	id := make([]byte, base64.URLEncoding.DecodedLen(len(enc)))
	m, err := base64.URLEncoding.Decode(id, enc)
	if err != nil {
		return "", false
	}
	return strbytes.String(id[:m]), true
}

var pipe = []byte{'|'}
