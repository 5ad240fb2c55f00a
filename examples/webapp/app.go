package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/sessions"

	"github.com/redisession/redistore"
)

// sessionName is the name of the session cookie.
const sessionName = "demo_session"

// Keys of the session's Values.
const (
	keyVisits = "visits"
	keyUser   = "user"
)

// maxUsernameLength bounds a username, in characters.
const maxUsernameLength = 64

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>redistore demo</title></head>
<body>
<h1>redistore demo</h1>
<p>You have visited this page {{.Visits}} time{{if ne .Visits 1}}s{{end}} in this session.</p>
{{if .User -}}
<p>Logged in as <strong>{{.User}}</strong>.</p>
<form method="post" action="/logout"><button type="submit">Log out</button></form>
<h2>Your devices</h2>
<table>
<tr><th>Device</th><th>Signed in</th><th>Expires</th><th></th></tr>
{{range .Devices -}}
<tr data-handle="{{.Handle}}"><td>{{.Description}}</td><td>{{.Started}}</td><td>{{.Expires}}</td>
<td>{{if not .This}}<form method="post" action="/devices/signout"><input type="hidden" name="handle" value="{{.Handle}}"><button type="submit">Sign out</button></form>{{end}}</td></tr>
{{end -}}
</table>
{{if gt (len .Devices) 1}}<form method="post" action="/devices/signout-others"><button type="submit">Sign out all other devices</button></form>{{end}}
{{- else -}}
<p>Not logged in.</p>
<form method="post" action="/login">
<label>Username <input name="username" required maxlength="64" autocomplete="username"></label>
<button type="submit">Log in</button>
</form>
{{- end}}
{{with .Where -}}
<h2>Where this session lives</h2>
<table>
<tr><th>Redis</th><td>{{.Redis}}</td></tr>
<tr><th>Layout</th><td>{{.Mode}}</td></tr>
<tr><th>Key</th><td><code>{{.Key}}</code></td></tr>
{{if .Field}}<tr><th>Field</th><td><code>{{.Field}}</code></td></tr>{{end}}
<tr><th>Stored</th><td>{{.Size}}</td></tr>
<tr><th>Expires</th><td>{{.Expires}}</td></tr>
</table>
<p><small>The key{{if .Field}} and the field{{end}} are raw bytes, shown as <code>redis-cli</code> shows them: in quotes,
printable ASCII as is, any other byte as <code>\xNN</code> (<code>\n</code>, <code>\r</code>, <code>\t</code>, <code>\a</code>, <code>\b</code> for those,
<code>\"</code> and <code>\\</code> for a quote and a backslash).</small></p>
{{- end}}
<p><small>Demo only: logging in takes a name and no password.</small></p>
</body>
</html>
`))

// pageData is what the page shows.
type pageData struct {
	Visits  int
	User    string
	Devices []device
	Where   *where
}

// where is where the session lives in Redis, for the page: the key and
// field quoted as redis-cli quotes them, the session ID's bytes past the
// first two hidden.
type where struct {
	Redis, Mode, Key, Field, Size, Expires string
}

// device is one of the signed-in user's sessions, as the page lists it.
type device struct {
	Handle           string
	Description      string // "Firefox on Linux, 127.0.0.1, active 3 minutes ago, this device"
	Started, Expires string
	This             bool
}

// app serves the demo's pages from sessions kept in store.
type app struct {
	store  *redistore.Store
	logger *slog.Logger
	redis  string // which Redis, for the page (no password)
}

// newApp returns the demo's handler: GET / counts visits and shows the
// user, POST /login and POST /logout change it. Cross-origin POSTs are
// refused, so that another site cannot log a visitor in or out.
func newApp(store *redistore.Store, logger *slog.Logger, redis string) http.Handler {
	a := &app{store: store, logger: logger, redis: redis}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("POST /devices/signout", a.signOutDevice)
	mux.HandleFunc("POST /devices/signout-others", a.signOutOthers)
	return http.NewCrossOriginProtection().Handler(mux)
}

// session returns the request's session. A session that cannot be loaded
// (a tampered or outdated cookie, Redis unreachable) is replaced by a new
// one, as sessions.Store promises; the error is logged, never the cookie.
func (a *app) session(r *http.Request) *sessions.Session {
	s, err := a.store.Get(r, sessionName)
	if err != nil {
		a.logger.Warn("starting a new session: the request's session could not be loaded",
			"path", r.URL.Path, "err", err)
	}
	return s
}

// save saves the session, answering 500 and returning false when it fails.
func (a *app) save(w http.ResponseWriter, r *http.Request, s *sessions.Session) bool {
	return a.check(w, r, a.store.Save(r, w, s))
}

// check returns false, having answered, when saving failed: a session that
// ended while this request held it (a logout in another tab) saved nothing
// and sends the browser back to the start; any other failure is a 500.
func (a *app) check(w http.ResponseWriter, r *http.Request, err error) bool {
	switch {
	case err == nil:
		return true
	case errors.Is(err, redistore.ErrEnded):
		a.logger.Info("not saving: the session ended while the request held it", "path", r.URL.Path)
		http.Redirect(w, r, "/", http.StatusSeeOther)
	default:
		a.logger.Error("saving session", "path", r.URL.Path, "err", err)
		http.Error(w, "The session could not be saved. Please try again.", http.StatusInternalServerError)
	}
	return false
}

func (a *app) home(w http.ResponseWriter, r *http.Request) {
	s := a.session(r)
	visits, _ := s.Values[keyVisits].(int)
	visits++
	s.Values[keyVisits] = visits
	if !a.save(w, r, s) {
		return
	}
	user, _ := s.Values[keyUser].(string)
	data := pageData{Visits: visits, User: user}
	if user != "" {
		data.Devices = a.devices(r, s, user)
	}
	data.Where = a.where(r, s)
	var buf bytes.Buffer
	if err := page.Execute(&buf, data); err != nil {
		a.logger.Error("rendering page", "err", err)
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

func (a *app) login(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.PostFormValue("username"))
	if name == "" || utf8.RuneCountInString(name) > maxUsernameLength || !utf8.ValidString(name) {
		http.Error(w, "A username is 1 to 64 characters.", http.StatusBadRequest)
		return
	}
	s := a.session(r)
	s.Values[keyUser] = name
	// A new ID at login: an ID planted or seen before it opens nothing now.
	if !a.check(w, r, a.store.RegenerateID(r, w, s)) {
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (a *app) logout(w http.ResponseWriter, r *http.Request) {
	s := a.session(r)
	s.Options.MaxAge = -1
	if !a.save(w, r, s) {
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// devices lists the user's sessions, this one first. A failure to list
// them is logged and shows none: the page itself still works.
func (a *app) devices(r *http.Request, s *sessions.Session, user string) []device {
	list, err := a.store.UserSessions(r.Context(), user)
	if err != nil {
		a.logger.Warn("listing the user's sessions", "err", err)
	}
	this := a.store.Handle(s)
	var out []device
	now := time.Now()
	for _, us := range list {
		d := device{Handle: us.Handle, Expires: us.Expires.UTC().Format(time.DateTime + " UTC"), This: us.Handle == this, Started: "unknown"}
		d.Description = describe(us, d.This, now)
		if !us.Started.IsZero() {
			d.Started = us.Started.UTC().Format(time.DateTime + " UTC")
		}
		if d.This {
			out = append([]device{d}, out...)
		} else {
			out = append(out, d)
		}
	}
	return out
}

// signedIn returns the request's session and its user, or answers and
// returns "" when nobody is signed in.
func (a *app) signedIn(w http.ResponseWriter, r *http.Request) (*sessions.Session, string) {
	s := a.session(r)
	user, _ := s.Values[keyUser].(string)
	if user == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
	}
	return s, user
}

// signOutDevice ends one of the user's other sessions; a handle of another
// user's session does nothing.
func (a *app) signOutDevice(w http.ResponseWriter, r *http.Request) {
	_, user := a.signedIn(w, r)
	if user == "" {
		return
	}
	if err := a.store.DeleteUserSession(r.Context(), user, r.PostFormValue("handle")); err != nil {
		a.logger.Error("signing out a device", "err", err)
		http.Error(w, "The device could not be signed out. Please try again.", http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// signOutOthers ends every session of the user but this one.
func (a *app) signOutOthers(w http.ResponseWriter, r *http.Request) {
	s, user := a.signedIn(w, r)
	if user == "" {
		return
	}
	if _, err := a.store.DeleteUserSessions(r.Context(), user, a.store.Handle(s)); err != nil {
		a.logger.Error("signing out the other devices", "err", err)
		http.Error(w, "The other devices could not be signed out. Please try again.", http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// where describes where the session is stored, or nil when it cannot be
// looked up (the page still works).
func (a *app) where(r *http.Request, s *sessions.Session) *where {
	info, err := a.store.Lookup(r.Context(), s.ID)
	if err != nil || !info.Found {
		return nil
	}
	raw, _ := hex.DecodeString(s.ID)
	w := &where{Redis: a.redis, Mode: a.store.KeyType(), Key: hideID(info.Key, string(raw)), Field: hideID(info.Field, string(raw)),
		Size:    fmt.Sprintf("%d bytes (%d serialized, %s)", info.StoredBytes, info.SerializedBytes, map[bool]string{true: "LZ4-compressed", false: "not compressed"}[info.Compressed]),
		Expires: info.Expires.UTC().Format(time.DateTime+" UTC") + fmt.Sprintf(" (in %v)", time.Until(info.Expires).Round(time.Minute))}
	if w.Mode == "hash" {
		w.Mode = "hash mode (HashMode: sessions share buckets)"
	} else {
		w.Mode = "string mode (StringMode: a key per session)"
	}
	return w
}

// hideID quotes a key or field as redis-cli does, showing only the first
// two bytes of the session ID it holds.
func hideID(s, raw string) string {
	if s == "" {
		return ""
	}
	if i := strings.Index(s, raw); i >= 0 && raw != "" {
		shown := redisCLIQuote(s[:i+2]) + "…"
		if rest := s[i+len(raw):]; rest != "" {
			shown += redisCLIQuote(rest)
		}
		return fmt.Sprintf("%s (%d more bytes of the session ID, not shown)", shown, len(raw)-2)
	}
	return redisCLIQuote(s)
}

// redisCLIQuote quotes bytes as redis-cli prints a key or value (its
// sdscatrepr): in double quotes, printable ASCII as is, \n \r \t \a \b
// for those, \" and \\ for a quote and a backslash, and any other byte
// as \xNN. The result is printable ASCII, safe in a page and a log, and
// strconv.Unquote reads it back.
func redisCLIQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\a':
			b.WriteString(`\a`)
		case '\b':
			b.WriteString(`\b`)
		default:
			if c >= 0x20 && c < 0x7f {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, `\x%02x`, c)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
