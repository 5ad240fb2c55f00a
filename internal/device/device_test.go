package device

import (
	"strings"
	"testing"
)

const firefoxUA = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"

func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func equal[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func TestEncoding(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ ua, ip string }{
		{"", ""}, {firefoxUA, ""}, {"", "::1"}, {"a,b:c\x00,,", "1,2"}, {"12:34", "5:6"},
		{strings.Repeat("\xff", 300), strings.Repeat("9", 70)},
	} {
		ua, ip, err := Decode(Encode(tt.ua, tt.ip))
		noErr(t, err)
		equal(t, "User-Agent", ua, Cut(tt.ua, MaxUserAgentLength))
		equal(t, "address", ip, Cut(tt.ip, MaxIPLength))
	}
	equal(t, "nothing known", Encode("", ""), "")
	equal(t, "cut at a boundary", Cut("aé", 2), "a")
	equal(t, "cut within bytes that are not UTF-8", Cut("\x80\x80\x80\x80\x80", 2), "\x80\x80")
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(firefoxUA, "192.0.2.7"), "")
	f.Add("1999:", "x")
	f.Fuzz(func(t *testing.T, d, ip string) {
		// Whatever it reads, it reads again once written.
		if ua, ip, err := Decode(d); err == nil {
			if ua2, ip2, err := Decode(Encode(ua, ip)); err != nil || ua2 != ua || ip2 != ip {
				t.Fatalf("%q reads as %q, %q, which do not round-trip", d, ua, ip)
			}
		}
		ua, ip2, err := Decode(Encode(d, ip))
		if err != nil || ua != Cut(d, MaxUserAgentLength) || ip2 != Cut(ip, MaxIPLength) {
			t.Fatalf("%q, %q: read back %q, %q, %v", d, ip, ua, ip2, err)
		}
	})
}
