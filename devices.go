package redistore

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A session's device is what its user index entry records of the request
// that signed it in (or switched it to the user): the User-Agent and, with
// Config.ClientIP, the client's address. The entry's value is then
// "DDDDDDDDDD,AAAAAAAAAA,<device>"; entries written before (or with neither
// known) end after the second number. The device is opaque to the index
// step's Lua, which only copies it, so that its encoding may change (or be
// sealed) without touching the scripts.
const (
	// maxUserAgentLength is how much of a User-Agent a session records:
	// longer ones are cut at a UTF-8 boundary.
	maxUserAgentLength = 256
	// maxIPLength bounds what Config.ClientIP may record: an IPv6 address
	// with a zone fits.
	maxIPLength = 64
	// deviceVersion begins an encoded device, deviceSealed one sealed with
	// the store's EncryptionKeys (then the ring's sealed form of the
	// encoded device, bound to the user's index key).
	deviceVersion = '1'
	deviceSealed  = '2'
)

// errBadDevice: an index entry's device is not one encodeDevice wrote.
var errBadDevice = errors.New("redistore: a user index entry's device is not readable")

// deviceOf returns the encoded device of the request r for an index entry:
// "" when it tells neither a User-Agent nor (with Config.ClientIP) an
// address.
func (s *Store) deviceOf(r *http.Request) string {
	if r == nil {
		return ""
	}
	ip := ""
	if s.clientIP != nil {
		ip = s.clientIP(r)
	}
	return encodeDevice(r.UserAgent(), ip)
}

// deviceStep returns the device argument of an index step (indexOp.device)
// that adds the entry of a session saved by the request r: signingIn, the
// session joins the user (a sign-in, an account switch) and records r's
// device; moved, it got a new ID and its entry keeps the device of the
// entry of old; otherwise the entry is renewed and keeps its own. Where
// there is no entry to keep from (a session indexed for the first time, an
// entry lost), r's is recorded; an entry without a device (an earlier
// release's) stays without one.
//
// The device is sealed where the store seals values, for indexKey: an
// address and a User-Agent are personal data.
func (s *Store) deviceStep(r *http.Request, signingIn, moved bool, old, indexKey string) string {
	dev := s.sealDevice(s.deviceOf(r), indexKey)
	field := rawField(old)
	switch {
	case signingIn || moved && len(field) != idBytes:
		return "s" + dev
	case moved:
		return "c" + field + dev
	}
	return "k" + dev
}

// encodeDevice encodes a User-Agent and an address, each cut to its bound:
// a version byte, the User-Agent's length in decimal, ':', the User-Agent,
// then the address. The length prefix means that no byte of either (a
// comma, a colon, a NUL) is ever taken for structure. Neither known: "".
func encodeDevice(ua, ip string) string {
	ua, ip = cut(ua, maxUserAgentLength), cut(ip, maxIPLength)
	if ua == "" && ip == "" {
		return ""
	}
	return string(deviceVersion) + strconv.Itoa(len(ua)) + ":" + ua + ip
}

// decodeDevice reads what encodeDevice wrote; "" is no device.
func decodeDevice(d string) (ua, ip string, err error) {
	if d == "" {
		return "", "", nil
	}
	if d[0] != deviceVersion {
		return "", "", errBadDevice
	}
	n, rest, ok := strings.Cut(d[1:], ":")
	if !ok || n == "" || len(n) > 3 || strings.TrimLeft(n, "0123456789") != "" {
		return "", "", errBadDevice
	}
	l, _ := strconv.Atoi(n) // at most 3 digits
	if l > maxUserAgentLength || l > len(rest) || len(rest)-l > maxIPLength {
		return "", "", errBadDevice
	}
	return rest[:l], rest[l:], nil
}

// cut returns s cut to at most n bytes, at a UTF-8 boundary (where s is
// UTF-8 there: within the last UTFMax bytes).
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && i > n-utf8.UTFMax && !utf8.RuneStart(s[i]) {
		i--
	}
	if !utf8.RuneStart(s[i]) {
		i = n // not UTF-8: cut at the byte bound
	}
	return s[:i]
}

// sealDevice seals an encoded device for the index at indexKey where the
// store seals values.
func (s *Store) sealDevice(dev, indexKey string) string {
	if dev == "" || s.sealer == nil || s.writeClear {
		return dev
	}
	return string(deviceSealed) + string(s.ring.Seal(nil, []byte(dev), deviceAD(indexKey)))
}

// deviceAD binds a sealed device to the user's index: it opens in no other
// user's.
func deviceAD(indexKey string) []byte { return []byte("redistore device\x00" + indexKey) }

// openDevice decodes an entry's device, opening it first where it is
// sealed.
func (s *Store) openDevice(d, indexKey string) (ua, ip string, err error) {
	if d != "" && d[0] == deviceSealed {
		if s.ring == nil {
			return "", "", errBadDevice
		}
		plain, _, err := s.ring.Open(nil, []byte(d[1:]), deviceAD(indexKey))
		if err != nil || len(plain) == 0 || plain[0] != deviceVersion {
			return "", "", errBadDevice
		}
		d = string(plain)
	}
	return decodeDevice(d)
}

// entryDevice returns the device of an index entry's value in the index at
// indexKey ("" parts where it records none or one that cannot be read).
func (s *Store) entryDevice(value, indexKey string) (ua, ip string) {
	const numbers = len("DDDDDDDDDD,AAAAAAAAAA")
	if len(value) <= numbers || value[numbers] != ',' {
		return "", ""
	}
	ua, ip, err := s.openDevice(value[numbers+1:], indexKey)
	if err != nil {
		return "", ""
	}
	return ua, ip
}
