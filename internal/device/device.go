// Package device encodes what a user index entry records of the request
// that signed a session in: its User-Agent and, where the application
// gives it, the client's address. The encoding is a version byte, the
// User-Agent's length in decimal, ':', the User-Agent, then the address;
// the length prefix means that no byte of either (a comma, a colon, a NUL)
// is ever taken for structure. The store seals it where it seals values.
package device

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	// MaxUserAgentLength is how much of a User-Agent is recorded: longer
	// ones are cut at a UTF-8 boundary.
	MaxUserAgentLength = 256
	// MaxIPLength bounds the address: an IPv6 address with a zone fits.
	MaxIPLength = 64
	// Version begins an encoded device.
	Version = '1'
)

// ErrBad: what Decode was given is not what Encode wrote.
var ErrBad = errors.New("redistore: a user index entry's device is not readable")

// Encode encodes a User-Agent and an address, each cut to its bound:
// a version byte, the User-Agent's length in decimal, ':', the User-Agent,
// then the address. The length prefix means that no byte of either (a
// comma, a colon, a NUL) is ever taken for structure. Neither known: "".
func Encode(ua, ip string) string {
	ua, ip = Cut(ua, MaxUserAgentLength), Cut(ip, MaxIPLength)
	if ua == "" && ip == "" {
		return ""
	}
	return string(Version) + strconv.Itoa(len(ua)) + ":" + ua + ip
}

// Decode reads what Encode wrote; "" is no device.
func Decode(d string) (ua, ip string, err error) {
	if d == "" {
		return "", "", nil
	}
	if d[0] != Version {
		return "", "", ErrBad
	}
	n, rest, ok := strings.Cut(d[1:], ":")
	if !ok || n == "" || len(n) > 3 || strings.TrimLeft(n, "0123456789") != "" {
		return "", "", ErrBad
	}
	l, _ := strconv.Atoi(n) // at most 3 digits
	if l > MaxUserAgentLength || l > len(rest) || len(rest)-l > MaxIPLength {
		return "", "", ErrBad
	}
	return rest[:l], rest[l:], nil
}

// Cut returns s cut to at most n bytes, at a UTF-8 boundary (where s is
// UTF-8 there: within the last UTFMax bytes).
func Cut(s string, n int) string {
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
