package cookie

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/sessions"
)

// Add adds the Set-Cookie header that
// http.SetCookie(w, sessions.NewCookie(name, value, opts)) adds, byte for
// byte, without building the http.Cookie and checking the value a byte at a
// time through a function value as net/http does. What it would write
// differently from net/http, it leaves to net/http: a Domain (which net/http
// validates and may drop), and a name, value or path that net/http would
// refuse, quote or strip (with a log line). TestSetCookieMatchesNetHTTP and
// FuzzSetCookie compare the two.
func Add(w http.ResponseWriter, name, value string, opts *sessions.Options) {
	if opts.Domain != "" || !isToken(name) || !plainBytes(value, valueBytes) || !plainBytes(opts.Path, pathBytes) {
		http.SetCookie(w, sessions.NewCookie(name, value, opts))
		return
	}
	var buf [320]byte
	b := buf[:0]
	b = append(b, name...)
	b = append(b, '=')
	b = append(b, value...)
	if opts.Path != "" {
		b = append(b, "; Path="...)
		b = append(b, opts.Path...)
	}
	switch {
	case opts.MaxAge > 0:
		// sessions.NewCookie: expires MaxAge from now.
		b = append(b, "; Expires="...)
		b = time.Now().Add(time.Duration(opts.MaxAge)*time.Second).UTC().AppendFormat(b, http.TimeFormat)
		b = append(b, "; Max-Age="...)
		b = strconv.AppendInt(b, int64(opts.MaxAge), 10)
	case opts.MaxAge < 0:
		// sessions.NewCookie: expires at time.Unix(1, 0).
		b = append(b, "; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0"...)
	}
	if opts.HttpOnly {
		b = append(b, "; HttpOnly"...)
	}
	if opts.Secure {
		b = append(b, "; Secure"...)
	}
	switch opts.SameSite {
	case http.SameSiteNoneMode:
		b = append(b, "; SameSite=None"...)
	case http.SameSiteLaxMode:
		b = append(b, "; SameSite=Lax"...)
	case http.SameSiteStrictMode:
		b = append(b, "; SameSite=Strict"...)
	}
	if opts.Partitioned {
		b = append(b, "; Partitioned"...)
	}
	h := w.Header()
	h["Set-Cookie"] = append(h["Set-Cookie"], string(b))
}

// Byte classes of cookie parts that net/http writes as they are.
const (
	tokenBytes = 1 << iota // RFC 7230 tchar: a cookie name
	valueBytes             // a value net/http neither strips nor quotes
	pathBytes              // a path net/http does not strip
)

var byteClasses = func() (t [256]uint8) {
	for c := 0x20; c < 0x7f; c++ {
		if c != ';' {
			t[c] |= pathBytes
		}
		if c != '"' && c != ';' && c != '\\' && c != ' ' && c != ',' {
			t[c] |= valueBytes
		}
		if ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') {
			t[c] |= tokenBytes
		}
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] |= tokenBytes
	}
	return t
}()

func isToken(s string) bool {
	return s != "" && plainBytes(s, tokenBytes)
}

func plainBytes(s string, class uint8) bool {
	for i := 0; i < len(s); i++ {
		if byteClasses[s[i]]&class == 0 {
			return false
		}
	}
	return true
}
