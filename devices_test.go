package redistore

import (
	"context"
	"encoding/binary"
	"github.com/redisession/redistore/internal/device"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/sessions"
	"github.com/redisession/redistore/internal/envelope"
)

const (
	firefoxUA = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
	chromeUA  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)

// remoteHost is a Config.ClientIP: the host part of RemoteAddr.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// saveFrom saves sess from a request with this User-Agent and address, as
// the browser b.
func saveFrom(t testing.TB, s *Store, b *browser, r *http.Request, sess *sessions.Session, ua, addr string) {
	t.Helper()
	r.Header.Set("User-Agent", ua)
	r.RemoteAddr = addr
	b.save(t, s, r, sess)
}

// onlySession returns the one session UserSessions lists for user.
func onlySession(t testing.TB, s *Store, user string) UserSession {
	t.Helper()
	list, err := s.UserSessions(context.Background(), user)
	noErr(t, err)
	if len(list) != 1 {
		t.Fatalf("%s has %d sessions listed, want 1", user, len(list))
	}
	return list[0]
}

func sameDevice(t testing.TB, what string, us UserSession, ua, ip string) {
	t.Helper()
	if us.UserAgent != ua || us.IP != ip {
		t.Fatalf("%s: device %q, %q; want %q, %q", what, us.UserAgent, us.IP, ua, ip)
	}
}

// TestUserSessionsShowTheDevice: a session records the User-Agent and (with
// ClientIP) the address of the request that signed it in or switched it to
// the user; requests from elsewhere with its cookie, renewals and a new ID
// keep them.
func TestUserSessionsShowTheDevice(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode, UserKey: "uid", ClientIP: remoteHost, TouchInterval: -1})
		b := newBrowser()
		sess, r := b.get(t, s, "sid")
		sess.Values["uid"] = "alice"
		saveFrom(t, s, b, r, sess, firefoxUA, "192.0.2.7:50000")
		sameDevice(t, "signed in", onlySession(t, s, "alice"), firefoxUA, "192.0.2.7")

		// The same cookie from another browser and address: a write, then
		// a renewal (TouchInterval -1), change nothing of it.
		sess, r = b.get(t, s, "sid")
		sess.Values["cart"] = "1 item"
		saveFrom(t, s, b, r, sess, chromeUA, "198.51.100.1:1")
		sess, r = b.get(t, s, "sid")
		saveFrom(t, s, b, r, sess, chromeUA, "198.51.100.1:1")
		sameDevice(t, "after requests from another browser", onlySession(t, s, "alice"), firefoxUA, "192.0.2.7")

		// A new ID keeps the device.
		sess, r = b.get(t, s, "sid")
		r.Header.Set("User-Agent", chromeUA)
		w := httptest.NewRecorder()
		noErr(t, s.RegenerateID(r, w, sess))
		b.keep(t, w)
		us := onlySession(t, s, "alice")
		equal(t, "handle", us.Handle, s.Handle(sess))
		sameDevice(t, "after RegenerateID", us, firefoxUA, "192.0.2.7")

		// Switching account records the request that switched.
		sess, r = b.get(t, s, "sid")
		sess.Values["uid"] = "bob"
		saveFrom(t, s, b, r, sess, chromeUA, "[2001:db8::1]:443")
		sameDevice(t, "bob after the switch", onlySession(t, s, "bob"), chromeUA, "2001:db8::1")
		// Back to alice, from Firefox: alice's list shows Firefox again.
		sess, r = b.get(t, s, "sid")
		sess.Values["uid"] = "alice"
		saveFrom(t, s, b, r, sess, firefoxUA, "192.0.2.8:1")
		sameDevice(t, "alice after switching back", onlySession(t, s, "alice"), firefoxUA, "192.0.2.8")
	})
}

// TestDeviceBounds: without ClientIP no address is recorded; a request
// without a User-Agent records ""; a User-Agent past 256 bytes is cut at a
// UTF-8 boundary.
func TestDeviceBounds(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode, UserKey: "uid"})
		long := strings.Repeat("é", 200) // 400 bytes, 2 a rune
		for _, tt := range []struct{ user, ua, want string }{
			{"carol", firefoxUA, firefoxUA},
			{"dave", "", ""},
			{"erin", long, long[:device.MaxUserAgentLength]},
			{"frank", "x" + long, ("x" + long)[:device.MaxUserAgentLength-1]},
		} {
			b := newBrowser()
			sess, r := b.get(t, s, "sid")
			sess.Values["uid"] = tt.user
			saveFrom(t, s, b, r, sess, tt.ua, "192.0.2.7:1")
			us := onlySession(t, s, tt.user)
			sameDevice(t, tt.user, us, tt.want, "")
			if !utf8.ValidString(us.UserAgent) {
				t.Fatalf("%s: the User-Agent was cut inside a character", tt.user)
			}
		}
	})
}

// TestLastSeenMovesWithRenewalsAndWrites: LastSeen is when the session was
// last written or renewed, by the server's clock.
func TestLastSeenMovesWithRenewalsAndWrites(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode, UserKey: "uid", TouchInterval: -1})
		s.Options.MaxAge = 600
		var before time.Time
		begin := func() { before = tg.now() }
		// seen checks that LastSeen is the server's time between begin and
		// now, to the second (stored times are whole seconds).
		seen := func(what string) time.Time {
			t.Helper()
			after := tg.now()
			got := onlySession(t, s, "alice").LastSeen
			if got.Before(before.Truncate(time.Second).Add(-time.Second)) || got.After(after.Add(time.Second)) {
				t.Fatalf("%s: LastSeen %v, not between %v and %v (the server's times around the Save)", what, got, before, after)
			}
			return got
		}
		begin()
		b, _ := signIn(t, s, "alice")
		first := seen("signed in")

		tg.advance(t, 1100*time.Millisecond)
		begin()
		sess, r := b.get(t, s, "sid")
		b.save(t, s, r, sess) // unchanged: renewed
		renewed := seen("renewed")
		if !renewed.After(first) {
			t.Fatalf("a renewal left LastSeen at %v (first %v)", renewed, first)
		}

		tg.advance(t, 1100*time.Millisecond)
		begin()
		sess, r = b.get(t, s, "sid")
		sess.Values["cart"] = "3 items"
		b.save(t, s, r, sess)
		seen("written")
		us := onlySession(t, s, "alice")
		if !us.LastSeen.After(renewed) {
			t.Fatalf("a write left LastSeen at %v (renewed %v)", us.LastSeen, renewed)
		}
		equal(t, "expires a lifetime after it was last seen", us.Expires.Sub(us.LastSeen), 600*time.Second)
	})
}

// TestDevicesCostNoCommand: a signed-in session with its device recorded
// costs an ordinary request what it did before: Get one command, a Save
// that writes or renews one more.
func TestDevicesCostNoCommand(t *testing.T) {
	t.Parallel()
	miniAndReal(t, func(t *testing.T, tg *target) {
		for _, mode := range []Mode{HashMode, StringMode} {
			t.Run(mode.String(), func(t *testing.T) {
				cc := &countingClient{Client: tg.client}
				tg.prefix = randomPrefix()
				s := newStore(t, tg, Config{Mode: mode, Client: cc, UserKey: "uid", ClientIP: remoteHost, TouchInterval: -1})
				b := newBrowser()
				sess, r := b.get(t, s, "sid")
				sess.Values["cart"] = "1 item"
				b.save(t, s, r, sess)
				sess, r = b.get(t, s, "sid")
				sess.Values["uid"] = "alice"
				cc.reset()
				saveFrom(t, s, b, r, sess, firefoxUA, "192.0.2.7:1")
				equal(t, "signing in: calls", cc.reset(), 1)
				for i := range 3 {
					sess, r = b.get(t, s, "sid")
					equal(t, "Get: calls", cc.reset(), 1)
					if i%2 == 0 {
						sess.Values["cart"] = i
					}
					saveFrom(t, s, b, r, sess, chromeUA, "192.0.2.9:1")
					equal(t, "a Save that writes or renews: calls", cc.reset(), 1)
				}
				sameDevice(t, "alice", onlySession(t, s, "alice"), firefoxUA, "192.0.2.7")
			})
		}
	})
}

// TestUnreadableDevicesAreSkipped: an index entry whose device is not one
// the store wrote lists its session without a device, never panics.
func TestUnreadableDevicesAreSkipped(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode, UserKey: "uid"})
		_, sess := signIn(t, s, "alice")
		for _, v := range []string{
			"9999999999,0000000000,", "9999999999,0000000000,x", "9999999999,0000000000,1999:abc",
			"9999999999,0000000000,1:", "9999999999,0000000000,1-1:ab", "9999999999,0000000000,1" + strings.Repeat("9", 40) + ":",
			"9999999999,0000000000,113:short\xff\x00", "9999999999,0000000000;15:a,b", "x",
		} {
			tg.do(t, "HSET", s.indexKey("alice"), rawField(sess.ID), v)
			sameDevice(t, v, onlySession(t, s, "alice"), "", "")
		}
	})
}

// TestDeviceCost measures what devices cost on a real server: the memory
// of a user's index (MEMORY USAGE) with n sessions signed in with a
// 100-byte User-Agent and an address, against the same without them, and
// the bytes the lifetime adds to a signed-in session's value. Run with -v
// to read the figures (docs/users.md quotes them).
func TestDeviceCost(t *testing.T) {
	t.Parallel()
	forEachReal(t, func(t *testing.T, tg *target) {
		ua := firefoxUA + strings.Repeat("x", 100-len(firefoxUA))
		tg.prefix = randomPrefix()
		with := newStore(t, tg, Config{Mode: StringMode, UserKey: "uid", ClientIP: remoteHost})
		without := newStore(t, tg, Config{Mode: StringMode, UserKey: "uid", KeyPrefix: tg.prefix + "old:"})
		var last int64
		for _, n := range []int{1, 3, 10, 1000} {
			usage := func(s *Store, ua string) (index, value int64) {
				user := "u" + strconv.Itoa(n)
				var sess *sessions.Session
				for range n {
					b := newBrowser()
					var r *http.Request
					sess, r = b.get(t, s, "sid")
					sess.Values["uid"] = user
					saveFrom(t, s, b, r, sess, ua, "203.0.113.45:1234")
				}
				loc, err := s.locate(sess.ID)
				noErr(t, err)
				index = tg.do(t, "MEMORY", "USAGE", s.indexKey(user), "SAMPLES", "0").IntMust(t)
				v, err := tg.do(t, "GET", loc.key).ToString()
				noErr(t, err)
				h, err := envelope.ReadHeader(v[expiryLen:])
				noErr(t, err)
				equal(t, "lifetime recorded", h.Meta.TTL, DefaultMaxAge)
				return index, int64(len(binary.AppendUvarint(nil, uint64(h.Meta.TTL))))
			}
			ix, v := usage(with, ua)
			ix0, _ := usage(without, "")
			t.Logf("%s, %d sessions of a user: index %d bytes with devices, %d without (%+d a session); the lifetime in a session's value: %d bytes",
				tg.name, n, ix, ix0, (ix-ix0)/int64(n), v)
			last = (ix - ix0) / int64(n)
		}
		if last > 400 {
			t.Fatalf("a device costs %d bytes an index entry in a large index, want at most 400", last)
		}
	})
}

// TestLastSeenWhenTheLifetimeChanges: a renewal that gives another
// lifetime than the session's last write (the request set another MaxAge)
// writes the session instead, in the one command a renewal takes, so that
// LastSeen stays right.
func TestLastSeenWhenTheLifetimeChanges(t *testing.T) {
	t.Parallel()
	for _, mode := range []Mode{HashMode, StringMode} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			tg := newMiniTarget(t)
			cc := &countingClient{Client: tg.client}
			var outcome Outcome
			obs := ObserverFunc(func(_ context.Context, e Event) {
				if e.Op == OpSave {
					outcome = e.Outcome
				}
			})
			s := newStore(t, tg, Config{Mode: mode, Client: cc, UserKey: "uid", TouchInterval: time.Second, Observer: obs})
			s.Options.MaxAge = 30
			b, _ := signIn(t, s, "alice")
			for i, step := range []struct {
				advance time.Duration
				maxAge  int
				want    Outcome
			}{
				{15 * time.Second, 30, OutcomeTouched},
				{5 * time.Second, 10, OutcomeWritten}, // another MaxAge
				{5 * time.Second, 10, OutcomeTouched},
			} {
				tg.advance(t, step.advance)
				sess, r := b.get(t, s, "sid")
				sess.Options.MaxAge = step.maxAge
				cc.reset()
				b.save(t, s, r, sess)
				equal(t, "calls", cc.reset(), 1)
				equal(t, "outcome", outcome, step.want)
				us := onlySession(t, s, "alice")
				if d := us.LastSeen.Sub(tg.now()); d < -time.Second || d > time.Second {
					t.Fatalf("step %d: LastSeen %v, the server's time %v", i, us.LastSeen, tg.now())
				}
			}
		})
	}
}

// TestLastSeenUnderMaxLifetime: where MaxLifetime holds a session's expiry
// (its MaxAge reaches past it), renewals cannot move the expiry; an
// unchanged session is written once its last write is as far behind as a
// renewal is let slip, so that LastSeen still moves. MaxLifetime counts by
// the application's clock: real servers, in real time.
func TestLastSeenUnderMaxLifetime(t *testing.T) {
	t.Parallel()
	forEachReal(t, func(t *testing.T, tg *target) {
		for _, mode := range []Mode{HashMode, StringMode} {
			t.Run(mode.String(), func(t *testing.T) {
				tg.prefix = randomPrefix()
				cc := &countingClient{Client: tg.client}
				var outcome Outcome
				obs := ObserverFunc(func(_ context.Context, e Event) {
					if e.Op == OpSave {
						outcome = e.Outcome
					}
				})
				// TouchInterval 2 s: times are whole seconds, so a write's
				// LastSeen may be up to a second behind it.
				s := newStore(t, tg, Config{Mode: mode, Client: cc, UserKey: "uid", MaxLifetime: time.Minute, TouchInterval: 2 * time.Second, Observer: obs})
				b, _ := signIn(t, s, "alice")
				time.Sleep(3100 * time.Millisecond)
				before := tg.now()
				sess, r := b.get(t, s, "sid")
				cc.reset()
				b.save(t, s, r, sess)
				wrote := time.Now()
				equal(t, "calls", cc.reset(), 1)
				equal(t, "outcome", outcome, OutcomeWritten)
				after := tg.now()
				us := onlySession(t, s, "alice")
				if us.LastSeen.Before(before.Truncate(time.Second).Add(-time.Second)) || us.LastSeen.After(after.Add(time.Second)) {
					t.Fatalf("LastSeen %v, not between %v and %v (the server's times around the Save)", us.LastSeen, before, after)
				}
				// At once again: nothing to write. (On a loaded machine "at
				// once" can come late, when a write may be due again: then
				// the check says nothing.)
				sess, r = b.get(t, s, "sid")
				cc.reset()
				since := time.Since(wrote)
				b.save(t, s, r, sess)
				cc.reset()
				if outcome == OutcomeWritten && since < 900*time.Millisecond {
					t.Fatalf("an unchanged session was written again %v after its last write (TouchInterval 2s)", since)
				}
			})
		}
	})
}

// TestMovedLegacySessionsRecordTheDevice: a boj/redistore session that
// moves in (Config.Legacy) joins its user's index with the device of the
// request that moved it.
func TestMovedLegacySessionsRecordTheDevice(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		legacyPrefix := "legacy_" + tg.prefix
		s := newStore(t, tg, Config{Mode: mode, UserKey: "user", ClientIP: remoteHost, Legacy: &Legacy{KeyPrefix: legacyPrefix}})
		_, cookie := bojSession(t, tg, legacyPrefix, false, map[any]any{"user": "alice"})
		b := newBrowser()
		b.cookies["sid"] = cookie
		sess, r := b.get(t, s, "sid")
		sess.Values["visits"] = 1
		saveFrom(t, s, b, r, sess, firefoxUA, "192.0.2.7:1")
		sameDevice(t, "moved in", onlySession(t, s, "alice"), firefoxUA, "192.0.2.7")
	})
}

// TestEntriesWithoutADeviceKeepNone: an entry an earlier release wrote (no
// device) is not given the device of whichever request renews it or moves
// it to a new ID; a session with no entry at all joins with the device of
// the request that indexes it.
func TestEntriesWithoutADeviceKeepNone(t *testing.T) {
	t.Parallel()
	forEachMode(t, func(t *testing.T, tg *target, mode Mode) {
		s := newStore(t, tg, Config{Mode: mode, UserKey: "uid", ClientIP: remoteHost})
		regenerate := func(b *browser) *sessions.Session {
			t.Helper()
			sess, r := b.get(t, s, "sid")
			r.Header.Set("User-Agent", chromeUA)
			w := httptest.NewRecorder()
			noErr(t, s.RegenerateID(r, w, sess))
			b.keep(t, w)
			return sess
		}
		b, sess := signIn(t, s, "alice")
		ix := s.indexKey("alice")
		entry, err := tg.do(t, "HGET", ix, rawField(sess.ID)).ToString()
		noErr(t, err)
		tg.do(t, "HSET", ix, rawField(sess.ID), entry[:21]) // as an earlier release wrote it
		regenerate(b)
		sameDevice(t, "an earlier release's entry, after RegenerateID", onlySession(t, s, "alice"), "", "")

		sess = regenerate(b)
		tg.do(t, "HDEL", ix, rawField(sess.ID)) // lost
		regenerate(b)
		sameDevice(t, "a session with no entry, after RegenerateID", onlySession(t, s, "alice"), chromeUA, "192.0.2.1")
	})
}
