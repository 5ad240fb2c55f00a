package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/rueidis"

	"github.com/redisession/redistore"
)

// newTestApp returns the demo's handler over a miniredis, and where its
// log goes.
func newTestApp(t *testing.T, mode redistore.Mode) (http.Handler, *strings.Builder) {
	t.Helper()
	store, log := newTestStore(t, mode, nil)
	return newApp(store.Store, store.logger, "a test miniredis"), log
}

// newTestStore returns the demo's store over a miniredis, and where its
// log goes.
func newTestStore(t *testing.T, mode redistore.Mode, obs redistore.Observer) (*testStore, *strings.Builder) {
	t.Helper()
	m := miniredis.RunT(t)
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:       []string{m.Addr()},
		DisableCache:      true,
		ForceSingleClient: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	keys, _, err := sessionKeys("")
	if err != nil {
		t.Fatal(err)
	}
	log := new(strings.Builder)
	logger := slog.New(slog.NewTextHandler(log, nil))
	store, err := newStore(c, keys, mode, logger, obs)
	if err != nil {
		t.Fatal(err)
	}
	return &testStore{store, logger}, log
}

// testStore is the demo's store and its logger.
type testStore struct {
	*redistore.Store
	logger *slog.Logger
}

// browser carries one cookie jar's worth of session cookie between requests.
type browser struct {
	h      http.Handler
	cookie *http.Cookie // nil before the first Set-Cookie, or after deletion
}

// do sends a request and keeps the session cookie the response sets.
func (b *browser) do(t *testing.T, method, target string, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.cookie != nil {
		r.AddCookie(b.cookie)
	}
	w := httptest.NewRecorder()
	b.h.ServeHTTP(w, r)
	for _, c := range w.Result().Cookies() {
		if c.Name != sessionName {
			continue
		}
		if c.MaxAge < 0 {
			b.cookie = nil
		} else {
			b.cookie = c
		}
	}
	return w
}

// home fetches / and checks that it succeeded.
func (b *browser) home(t *testing.T) string {
	t.Helper()
	w := b.do(t, "GET", "/", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("GET /: status %d, body %q", w.Code, w.Body)
	}
	return w.Body.String()
}

func wantContains(t *testing.T, body, want string) {
	t.Helper()
	if !strings.Contains(body, want) {
		t.Errorf("page does not contain %q:\n%s", want, body)
	}
}

func wantNotContains(t *testing.T, body, unwanted string) {
	t.Helper()
	if strings.Contains(body, unwanted) {
		t.Errorf("page contains %q:\n%s", unwanted, body)
	}
}

func wantRedirect(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" {
		t.Fatalf("status %d, Location %q: want 303 to /", w.Code, w.Header().Get("Location"))
	}
}

func forEachMode(t *testing.T, f func(t *testing.T, mode redistore.Mode)) {
	for _, mode := range []redistore.Mode{redistore.HashMode, redistore.StringMode} {
		t.Run(mode.String(), func(t *testing.T) { f(t, mode) })
	}
}

func TestVisitCounterFollowsTheCookie(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode redistore.Mode) {
		h, _ := newTestApp(t, mode)
		b := &browser{h: h}
		wantContains(t, b.home(t), "visited this page 1 time in")
		wantContains(t, b.home(t), "visited this page 2 times")
		wantContains(t, b.home(t), "visited this page 3 times")

		other := &browser{h: h}
		wantContains(t, other.home(t), "visited this page 1 time in")
	})
}

func TestLoginAndLogout(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode redistore.Mode) {
		h, _ := newTestApp(t, mode)
		b := &browser{h: h}
		wantContains(t, b.home(t), "Not logged in")
		beforeLogin := b.cookie

		wantRedirect(t, b.do(t, "POST", "/login", url.Values{"username": {"  <Ada>  "}}))
		if b.cookie == nil || b.cookie.Value == beforeLogin.Value {
			t.Fatal("login kept the session ID")
		}
		body := b.home(t)
		wantContains(t, body, "Logged in as <strong>&lt;Ada&gt;</strong>")
		wantContains(t, body, "visited this page 2 times")

		// A cookie planted or seen before login opens nothing afterwards.
		fixated := &browser{h: h, cookie: beforeLogin}
		wantNotContains(t, fixated.home(t), "Ada")

		loggedIn := b.cookie
		wantRedirect(t, b.do(t, "POST", "/logout", url.Values{}))
		if b.cookie != nil {
			t.Fatal("logout did not expire the session cookie")
		}
		body = b.home(t)
		wantContains(t, body, "Not logged in")
		wantContains(t, body, "visited this page 1 time in")

		stale := &browser{h: h, cookie: loggedIn}
		body = stale.home(t)
		wantNotContains(t, body, "Ada")
		wantContains(t, body, "visited this page 1 time in")
	})
}

func TestLoginRejectsBadUsernames(t *testing.T) {
	h, _ := newTestApp(t, redistore.HashMode)
	for name, username := range map[string]string{
		"empty":    "",
		"blank":    "   ",
		"too long": strings.Repeat("x", maxUsernameLength+1),
	} {
		t.Run(name, func(t *testing.T) {
			b := &browser{h: h}
			if w := b.do(t, "POST", "/login", url.Values{"username": {username}}); w.Code != http.StatusBadRequest {
				t.Errorf("status %d, want 400", w.Code)
			}
		})
	}
}

func TestCrossOriginLoginIsRefused(t *testing.T) {
	h, _ := newTestApp(t, redistore.HashMode)
	r := httptest.NewRequest("POST", "/login", strings.NewReader("username=mallory"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Errorf("status %d, want 403", w.Code)
	}
}

func TestTamperedCookieGetsAFreshSession(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode redistore.Mode) {
		h, log := newTestApp(t, mode)
		b := &browser{h: h}
		b.home(t)
		wantRedirect(t, b.do(t, "POST", "/login", url.Values{"username": {"Ada"}}))
		wantContains(t, b.home(t), "visited this page 2 times")

		v := []byte(b.cookie.Value)
		if v[len(v)/2] == 'A' {
			v[len(v)/2] = 'B'
		} else {
			v[len(v)/2] = 'A'
		}
		tampered := string(v)
		b.cookie = &http.Cookie{Name: sessionName, Value: tampered}
		body := b.home(t)
		wantContains(t, body, "visited this page 1 time in")
		wantNotContains(t, body, "Ada")
		if b.cookie == nil || b.cookie.Value == tampered {
			t.Error("the fresh session did not get a new cookie")
		}
		wantContains(t, log.String(), "starting a new session")
		if strings.Contains(log.String(), tampered) {
			t.Errorf("the log shows the cookie value:\n%s", log)
		}
	})
}

func TestUnknownPathsDoNotCountVisits(t *testing.T) {
	h, _ := newTestApp(t, redistore.HashMode)
	b := &browser{h: h}
	b.home(t)
	if w := b.do(t, "GET", "/favicon.ico", nil); w.Code != http.StatusNotFound {
		t.Errorf("GET /favicon.ico: status %d, want 404", w.Code)
	}
	wantContains(t, b.home(t), "visited this page 2 times")
}

func TestSessionKeys(t *testing.T) {
	k32 := strings.Repeat("ab", 32)
	keys, persistent, err := sessionKeys(k32 + ", ," + k32)
	if err != nil || !persistent || len(keys) != 3 || len(keys[0]) != 32 || len(keys[1]) != 0 {
		t.Errorf("got %d keys, persistent %v, err %v", len(keys), persistent, err)
	}
	_, _, err = sessionKeys(k32 + ",secret-not-hex")
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("err = %v: want an error that does not quote the key", err)
	}
}

func TestConnectDoesNotRevealThePassword(t *testing.T) {
	for _, u := range []string{
		"redis://user:hunter2@localhost:notaport",
		"redis://:hunter2@bad%zzhost:6379",
	} {
		_, _, _, err := connect(u)
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("connect(%q) = %v: want an error without the password", u, err)
		}
	}
}

// startRun runs the demo with args until the test ends, and returns its
// startup banner and its address.
func startRun(t *testing.T, args ...string) (startup, addr string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), func(string) string { return "" }, w)
		w.Close()
	}()
	// Read the banner up to its last line, then keep draining the log.
	lines := bufio.NewScanner(out)
	var banner strings.Builder
	for lines.Scan() {
		banner.WriteString(lines.Text() + "\n")
		if strings.HasPrefix(lines.Text(), "Press Ctrl-C") {
			break
		}
	}
	go io.Copy(io.Discard, out)
	startup = banner.String()
	t.Logf("startup output:\n%s", startup)
	addr = regexp.MustCompile(`http://127\.0\.0\.1:[0-9]+/`).FindString(startup)
	if addr == "" {
		cancel()
		t.Fatalf("startup output names no http://127.0.0.1:PORT/ address:\n%s", startup)
	}
	var once sync.Once
	var stopErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(10 * time.Second):
				stopErr = errors.New("run did not return after its context was canceled")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { stop() })
	return startup, addr, stop
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res.StatusCode, string(body)
}

func TestRunServesUntilCanceled(t *testing.T) {
	startup, addr, stop := startRun(t)
	if !strings.Contains(startup, "embedded miniredis at 127.0.0.1:") {
		t.Errorf("startup output does not name the embedded miniredis:\n%s", startup)
	}
	if !strings.Contains(startup, "do not survive a restart") {
		t.Errorf("startup output does not warn about random keys:\n%s", startup)
	}
	if code, body := get(t, addr); code != http.StatusOK || !strings.Contains(body, "visited this page 1 time in") {
		t.Errorf("GET %s: status %d, body:\n%s", addr, code, body)
	}
	if code, _ := get(t, addr+"metrics"); code != http.StatusNotFound {
		t.Errorf("GET /metrics without -metrics: status %d, want 404", code)
	}
	if err := stop(); err != nil {
		t.Errorf("run returned %v after cancel", err)
	}
}

// TestMetricsEndpoint: with -metrics prometheus the store's metrics are at
// /metrics, through OpenTelemetry's Prometheus exporter.
func TestMetricsEndpoint(t *testing.T) {
	startup, addr, _ := startRun(t, "-metrics", "prometheus")
	if !strings.Contains(startup, "Metrics: "+addr+"metrics") {
		t.Errorf("startup output does not say where the metrics are:\n%s", startup)
	}
	get(t, addr)
	code, body := get(t, addr+"metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", code)
	}
	for _, want := range []string{
		`redistore_operation_duration_seconds_count{otel_scope_name="github.com/redisession/redistore/redistoreotel"`,
		`redistore_mode="hash",redistore_operation="get",redistore_outcome="new"`,
		`redistore_operation="save",redistore_outcome="written"`,
		"redistore_session_stored_size_bytes_bucket",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
}

// TestMetricsStdout: with -metrics stdout the metrics are printed.
func TestMetricsStdout(t *testing.T) {
	startup, _, _ := startRun(t, "-metrics", "stdout")
	if !strings.Contains(startup, "Metrics: printed every 10s") {
		t.Errorf("startup output does not say where the metrics go:\n%s", startup)
	}
	var out strings.Builder
	obs, _, stop, err := metrics("stdout", &out)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newTestStore(t, redistore.HashMode, obs)
	s.Get(httptest.NewRequest("GET", "/", nil), sessionName)
	if err := stop(context.Background()); err != nil { // flushes
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"Name":"redistore.operation.duration"`) {
		t.Errorf("stdout metrics lack redistore.operation.duration:\n%s", out.String())
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-mode", "list"}, {"extra"}, {"-nope"}, {"-metrics", "statsd"}} {
		err := run(context.Background(), args, func(string) string { return "" }, io.Discard)
		if err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}

// TestSessionEndedInFlightStartsOver: a Save refused because the session
// ended meanwhile (ErrEnded) sends the browser back to the start; another
// failure is a 500.
func TestSessionEndedInFlightStartsOver(t *testing.T) {
	a := &app{logger: slog.New(slog.DiscardHandler)}
	for _, c := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("saving: %w", redistore.ErrEnded), http.StatusSeeOther},
		{redistore.ErrUnavailable, http.StatusInternalServerError},
	} {
		w := httptest.NewRecorder()
		if a.check(w, httptest.NewRequest("GET", "/", nil), c.err) {
			t.Fatalf("check(%v) reported success", c.err)
		}
		if w.Code != c.code {
			t.Fatalf("check(%v): status %d, want %d", c.err, w.Code, c.code)
		}
	}
}

// TestDevices: a signed-in user sees every device signed in as them, this
// one marked, and signs out one, then all the others.
func TestDevices(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode redistore.Mode) {
		h, _ := newTestApp(t, mode)
		login := func() *browser {
			b := &browser{h: h}
			b.home(t)
			wantRedirect(t, b.do(t, "POST", "/login", url.Values{"username": {"ada"}}))
			return b
		}
		laptop, phone, tablet := login(), login(), login()
		other := &browser{h: h}
		other.home(t)
		wantRedirect(t, other.do(t, "POST", "/login", url.Values{"username": {"grace"}}))

		body := laptop.home(t)
		wantContains(t, body, "Your devices")
		handles := regexp.MustCompile(`name="handle" value="([^"]+)"`).FindAllStringSubmatch(body, -1)
		if len(handles) != 2 || strings.Count(body, ", this device") != 1 {
			t.Fatalf("laptop's page lists %d other devices and %d of this one, want 2 and 1:\n%s", len(handles), strings.Count(body, ", this device"), body)
		}
		// Another user's handle does nothing to that session.
		graceHandles := regexp.MustCompile(`<tr data-handle="([^"]+)"><td>[^<]*, this device</td>`).FindStringSubmatch(other.home(t))
		wantRedirect(t, laptop.do(t, "POST", "/devices/signout", url.Values{"handle": {graceHandles[1]}}))
		wantContains(t, other.home(t), "Logged in as <strong>grace</strong>")

		wantRedirect(t, laptop.do(t, "POST", "/devices/signout", url.Values{"handle": {handles[0][1]}}))
		signedIn := 0
		for _, b := range []*browser{phone, tablet} {
			if strings.Contains(b.home(t), "Logged in as") {
				signedIn++
			}
		}
		equalInt(t, "devices still signed in after signing out one", signedIn, 1)

		wantRedirect(t, laptop.do(t, "POST", "/devices/signout-others", url.Values{}))
		for _, b := range []*browser{phone, tablet} {
			wantContains(t, b.home(t), "Not logged in")
		}
		body = laptop.home(t)
		wantContains(t, body, "Logged in as <strong>ada</strong>")
		wantNotContains(t, body, "Sign out all other devices")
		wantContains(t, other.home(t), "Logged in as <strong>grace</strong>")
	})
}

func equalInt(t *testing.T, what string, got, want int) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: %d, want %d", what, got, want)
	}
}

// TestPageShowsWhereTheSessionLives: the page says which Redis, which
// layout, the key (and field) with the ID hidden past two bytes, the size
// and the expiry.
func TestPageShowsWhereTheSessionLives(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode redistore.Mode) {
		store, _ := newTestStore(t, mode, nil)
		h := newApp(store.Store, store.logger, "a test miniredis")
		b := &browser{h: h}
		b.home(t)
		body := b.home(t)
		for _, want := range []string{"Where this session lives", "a test miniredis", mode.String() + " mode", "more bytes of the session ID, not shown", "Expires", "(in 720h0m0s)"} {
			wantContains(t, body, want)
		}
		id, err := store.SessionID(sessionName, b.cookie.Value)
		if err != nil {
			t.Fatal(err)
		}
		wantNotContains(t, body, id)
		raw, _ := hex.DecodeString(id)
		quoted := redisCLIQuote(string(raw))
		wantNotContains(t, html.UnescapeString(body), quoted[1:len(quoted)-1])
		wantContains(t, body, "shown as <code>redis-cli</code> shows them")
	})
}

// TestRedisCLIQuote: every byte is quoted as redis-cli 7.0.15 printed a
// key made of "k:" and the bytes 0 to 255 (redis-cli --no-raw KEYS '*').
func TestRedisCLIQuote(t *testing.T) {
	const redisCLI = `"k:\x00\x01\x02\x03\x04\x05\x06\a\b\t\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_` + "`" + `abcdefghijklmnopqrstuvwxyz{|}~\x7f\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98\x99\x9a\x9b\x9c\x9d\x9e\x9f\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xab\xac\xad\xae\xaf\xb0\xb1\xb2\xb3\xb4\xb5\xb6\xb7\xb8\xb9\xba\xbb\xbc\xbd\xbe\xbf\xc0\xc1\xc2\xc3\xc4\xc5\xc6\xc7\xc8\xc9\xca\xcb\xcc\xcd\xce\xcf\xd0\xd1\xd2\xd3\xd4\xd5\xd6\xd7\xd8\xd9\xda\xdb\xdc\xdd\xde\xdf\xe0\xe1\xe2\xe3\xe4\xe5\xe6\xe7\xe8\xe9\xea\xeb\xec\xed\xee\xef\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfd\xfe\xff"`
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, tc := range []struct{ in, want string }{
		{"k:" + string(all), redisCLI},
		{"", `""`},
		{"session:\x9c\x12", `"session:\x9c\x12"`},
		{"\xc3\xa9", `"\xc3\xa9"`}, // UTF-8 too: bytes, as redis-cli shows them
	} {
		got := redisCLIQuote(tc.in)
		if got != tc.want {
			t.Errorf("redisCLIQuote(%q) = %s, want %s", tc.in, got, tc.want)
		}
		if back, err := strconv.Unquote(got); err != nil || back != tc.in {
			t.Errorf("strconv.Unquote(%s) = %q, %v: want %q", got, back, err, tc.in)
		}
	}
}

// TestPageShowsKeysAsRedisCLIDoes: whatever bytes a session's ID puts in
// its key and field (control bytes, bytes that are not UTF-8), the page
// shows them quoted as redis-cli does, they read back as the stored name,
// and no raw control or non-UTF-8 byte reaches the HTML.
func TestPageShowsKeysAsRedisCLIDoes(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode redistore.Mode) {
		store, _ := newTestStore(t, mode, nil)
		h := newApp(store.Store, store.logger, "a test miniredis")
		// Sessions until their shown bytes have held both a control byte and
		// one that is not UTF-8 (a quarter and most of the IDs have one).
		var control, notUTF8 bool
		for n := 0; n < 200 && !(control && notUTF8); n++ {
			b := &browser{h: h}
			body := b.home(t)
			wantCleanHTML(t, body)
			id, err := store.SessionID(sessionName, b.cookie.Value)
			if err != nil {
				t.Fatal(err)
			}
			info, err := store.Lookup(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := hex.DecodeString(id)
			wantShown(t, "key", shownName(t, body, "Key"), info.Key, string(raw))
			if mode == redistore.HashMode {
				wantShown(t, "field", shownName(t, body, "Field"), info.Field, string(raw))
			}
			for _, c := range raw[:2] {
				control = control || c < 0x20 || c == 0x7f
				notUTF8 = notUTF8 || c >= 0x80
			}
		}
		if !control || !notUTF8 {
			t.Fatalf("200 sessions and no ID whose first two bytes hold a control byte (%v) or a byte that is not UTF-8 (%v)", control, notUTF8)
		}
	})
}

// wantCleanHTML checks that a page is UTF-8 with no control character
// but newlines.
func wantCleanHTML(t *testing.T, body string) {
	t.Helper()
	if !utf8.ValidString(body) {
		t.Fatalf("the page is not UTF-8:\n%q", body)
	}
	for _, r := range body {
		if r != '\n' && (r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0) {
			t.Fatalf("the page holds the control character %U:\n%q", r, body)
		}
	}
}

// shownName returns the page's cell for a key or field, as text.
func shownName(t *testing.T, body, row string) string {
	t.Helper()
	m := regexp.MustCompile(`<tr><th>` + row + `</th><td><code>([^<]*)</code>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s row on the page:\n%s", row, body)
	}
	return html.UnescapeString(m[1])
}

// wantShown checks a key or field as the page shows it: printable ASCII in
// redis-cli's quotes that read back as the stored name, cut after the
// session ID's first two bytes when the name holds the ID.
func wantShown(t *testing.T, what, shown, stored, rawID string) {
	t.Helper()
	quoted, hidden, cut := strings.Cut(shown, "…")
	for i := 0; i < len(quoted); i++ {
		if quoted[i] < 0x20 || quoted[i] >= 0x7f {
			t.Fatalf("%s %q is not printable ASCII", what, shown)
		}
	}
	back, err := strconv.Unquote(quoted)
	if err != nil {
		t.Fatalf("%s %q does not read back: %v", what, shown, err)
	}
	want := stored
	if strings.Contains(stored, rawID) {
		want = stored[:strings.Index(stored, rawID)+2]
		if !cut || hidden != " (14 more bytes of the session ID, not shown)" {
			t.Fatalf("%s %q does not say the ID's last 14 bytes are hidden", what, shown)
		}
	} else if cut {
		t.Fatalf("%s %q hides bytes of a name without the ID (%q)", what, shown, stored)
	}
	if back != want {
		t.Fatalf("%s %s reads back as %q, want %q", what, quoted, back, want)
	}
}
