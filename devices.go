package redistore

import (
	"net/http"

	"github.com/redisession/redistore/internal/device"
)

// A session's device is what its user index entry records of the request
// that signed it in (or switched it to the user): the User-Agent and, with
// Config.ClientIP, the client's address. The entry's value is then
// "DDDDDDDDDD,AAAAAAAAAA,<device>"; entries written before (or with neither
// known) end after the second number. The device is opaque to the index
// step's Lua, which only copies it, so that its encoding may change (or be
// sealed) without touching the scripts.
const (
	// deviceSealed begins a device sealed with the store's EncryptionKeys
	// (then the ring's sealed form of the encoded device, bound to the
	// user's index key); internal/device's Version one in clear.
	deviceSealed = '2'
)

// errBadDevice: an index entry's device is not one device.Encode wrote.
var errBadDevice = device.ErrBad

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
	return device.Encode(r.UserAgent(), ip)
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
		if err != nil || len(plain) == 0 || plain[0] != device.Version {
			return "", "", errBadDevice
		}
		d = string(plain)
	}
	return device.Decode(d)
}

// splitEntry splits an index entry's value into its two numbers and its
// device ("" where it records none).
func splitEntry(value string) (numbers, dev string) {
	const n = len("DDDDDDDDDD,AAAAAAAAAA")
	if len(value) <= n+1 || value[n] != ',' {
		return value, ""
	}
	return value[:n], value[n+1:]
}

// entryDevice returns the device of an index entry's value in the index at
// indexKey ("" parts where it records none or one that cannot be read).
func (s *Store) entryDevice(value, indexKey string) (ua, ip string) {
	_, dev := splitEntry(value)
	ua, ip, err := s.openDevice(dev, indexKey)
	if err != nil {
		return "", ""
	}
	return ua, ip
}
