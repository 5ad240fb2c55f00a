package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redisession/redistore"
)

var inspectCommand = &command{
	name:    "inspect",
	args:    " <session-id-or-cookie-value>",
	summary: "show one session: where it lives, when it expires, how it is stored, and its values (secrets redacted)",
	setup:   setupInspect,
}

// defaultCookie is the cookie name the README and the examples use.
const defaultCookie = "session"

func setupInspect(fs *flag.FlagSet, _ *options) func(context.Context, *env, []string) error {
	cookie := fs.String("cookie", defaultCookie, "the session cookie's `name`, to decode a cookie value (with the keys in $"+envKeys+")")
	asJSON := jsonFlag(fs)
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 1 {
			return usageErrorf("inspect takes one argument, a session ID or a cookie value; got %d", len(args))
		}
		arg := strings.TrimSpace(args[0])
		id, source := "", argSource{}
		if lower := strings.ToLower(arg); redistore.ValidID(lower) {
			id = lower
		} else {
			// A value copied with its name ("session=MTc...") is fine too.
			arg = strings.TrimPrefix(arg, *cookie+"=")
			source.cookie = *cookie
			if err := checkCookieShape(arg); err != nil {
				return err
			}
		}
		if id == "" && strings.TrimSpace(e.getenv(envKeys)) == "" {
			return usageErrorf("the argument is not a session ID (%d lowercase hex digits), so it must be a cookie value, and decoding one needs the cookie keys in %s", redistore.IDLength, envKeys)
		}
		store, client, err := e.open(id == "", nil)
		if err != nil {
			return err
		}
		defer client.Close()
		if id == "" {
			if id, err = store.SessionID(*cookie, arg); err != nil {
				// The error never quotes the value; neither does this.
				return fmt.Errorf("the argument is neither a session ID nor a value of the cookie %q that %s decodes (wrong keys, wrong --cookie, or a truncated value): %w", *cookie, envKeys, err)
			}
		}
		info, lookupErr := store.Lookup(ctx, id)
		// What could be learned is shown, then the error, as for a value
		// that is not a session.
		if *asJSON {
			if err := e.printJSON(inspectDocument(id, source, info)); err != nil {
				return err
			}
		} else {
			printSession(e.stdout, id, source, info, time.Now())
		}
		if lookupErr == nil && !info.Found {
			if other, err := e.storeLike(client, modeOf(otherMode(store)), ""); err == nil {
				if oi, err := other.Lookup(ctx, id); err == nil && oi.Found {
					return fmt.Errorf("no session under --mode %s, but this ID has one under --mode %s: pass --mode %s", e.opts.mode, otherMode(store), otherMode(store))
				}
			}
		}
		return lookupErr
	}
}

// whatArgIs says what inspect's argument looks like.
var whatArgIs = fmt.Sprintf("a session ID is %d lowercase hex digits; a cookie value is the URL-safe base64 text of the session cookie (letters, digits, - and _, some 150 characters or more, e.g. MTcw...)", redistore.IDLength)

// checkCookieShape refuses, as a usage error, what cannot be a cookie
// value: empty, all hex digits (an ID of the wrong length), too short, or
// with characters base64 does not use.
func checkCookieShape(v string) error {
	if v == "" {
		return usageErrorf("the argument is empty: %s", whatArgIs)
	}
	hexOnly, base64 := true, true
	for _, c := range v {
		isHex := c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
		hexOnly = hexOnly && isHex
		base64 = base64 && (isHex || c >= 'g' && c <= 'z' || c >= 'G' && c <= 'Z' || c == '-' || c == '_' || c == '=')
	}
	switch {
	case hexOnly:
		return usageErrorf("the argument is %d hex digits, not a session ID: %s", len(v), whatArgIs)
	case !base64:
		return usageErrorf("the argument has characters no session ID or cookie value has: %s", whatArgIs)
	case len(v) < 40:
		return usageErrorf("the argument is %d characters, too short for a cookie value: %s", len(v), whatArgIs)
	}
	return nil
}

// argSource is what inspect's argument was: a session ID, or a value of
// the named cookie.
type argSource struct{ cookie string }

func (a argSource) String() string {
	if a.cookie == "" {
		return "a session ID"
	}
	return fmt.Sprintf("cookie %q", a.cookie)
}

// printSession describes a session without revealing it: the ID is cut
// short, the raw ID bytes in keys and fields are hidden, and values under
// names that look secret are redacted.
func printSession(w io.Writer, id string, source argSource, info redistore.SessionInfo, now time.Time) {
	raw, _ := hex.DecodeString(id)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "session\t%s (from %s)\n", shortID(id), source)
	if info.Key != "" {
		fmt.Fprintf(tw, "key\t%s\n", hideID(info.Key, id, string(raw)))
	}
	if info.Field != "" {
		fmt.Fprintf(tw, "field\t%s\n", hideID(info.Field, id, string(raw)))
	}
	if !info.Found {
		fmt.Fprintf(tw, "found\tno: Redis holds no session with this ID (expired and removed, logged out, or never saved)\n")
		tw.Flush()
		return
	}
	fmt.Fprintf(tw, "found\tyes\n")
	switch {
	case info.Expires.IsZero() && info.Field != "":
		// A HashMode value too short to hold its expiry: Lookup says why.
	case info.Expires.IsZero():
		fmt.Fprintf(tw, "expires\tnever: the key has no TTL\n")
	case info.Expired:
		fmt.Fprintf(tw, "expires\texpired at %s, %s ago; never served, and still stored until a write to its bucket or a sweep removes it\n",
			info.Expires.UTC().Format(time.DateTime+" MST"), human(now.Sub(info.Expires)))
	default:
		fmt.Fprintf(tw, "expires\t%s, in %s\n", info.Expires.UTC().Format(time.DateTime+" MST"), human(info.Expires.Sub(now)))
	}
	if info.Codec != "" {
		fmt.Fprintf(tw, "codec\t%s\n", info.Codec)
		compression := "none"
		if info.Compressed {
			compression = strings.ToUpper(info.Compressor)
		}
		fmt.Fprintf(tw, "compression\t%s\n", compression)
		fmt.Fprintf(tw, "size\t%d B stored, %d B serialized\n", info.StoredBytes, info.SerializedBytes)
	} else {
		fmt.Fprintf(tw, "size\t%d B stored\n", info.StoredBytes)
	}
	if info.Values == nil {
		tw.Flush()
		return
	}
	fmt.Fprintf(tw, "values\t%d\n", len(info.Values))
	tw.Flush()

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, en := range entries(info.Values) {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", en.name, en.typ, en.value)
	}
	tw.Flush()
}

// entry is one of a session's values as inspect shows it, secrets
// redacted.
type entry struct {
	key              any
	name, typ, value string
	redacted         bool // the whole value, under a secret-looking name
}

// entries returns the session's values as inspect shows them, by name.
func entries(values map[any]any) []entry {
	out := make([]entry, 0, len(values))
	for k, v := range values {
		out = append(out, entry{k, showKey(k), fmt.Sprintf("%T", v), showEntry(k, v), sensitive(k)})
	}
	slices.SortFunc(out, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	return out
}

// hiddenName is a key or field as inspect shows it: quoted, the session
// ID in it cut to its first bytes.
type hiddenName struct {
	shown  string // quoted, "…" in place of the hidden bytes
	bytes  int    // the name's length
	hidden int    // how many of the ID's bytes (or digits) are not shown
	what   string // "raw ID bytes" or "ID digits"
}

func (h hiddenName) String() string {
	if h.hidden == 0 {
		return h.shown
	}
	return fmt.Sprintf("%s (%d bytes; the %d %s are not shown)", h.shown, h.bytes, h.hidden, h.what)
}

// hideID quotes a key or field, showing only the first two of the raw ID
// bytes (or four hex digits) it contains.
func hideID(s, id, raw string) hiddenName {
	for _, whole := range []string{raw, id} {
		if whole == "" {
			continue
		}
		i := strings.Index(s, whole)
		if i < 0 {
			continue
		}
		keep := 2
		what := "raw ID bytes"
		if whole == id {
			keep, what = 4, "ID digits"
		}
		out := strconv.Quote(s[:i+keep]) + "…"
		if rest := s[i+len(whole):]; rest != "" {
			out += strconv.Quote(rest)
		}
		return hiddenName{out, len(s), len(whole) - keep, what}
	}
	return hiddenName{shown: strconv.Quote(s), bytes: len(s)}
}

// inspectJSON is what inspect --json prints: the session as the text
// shows it, never the whole session ID, the cookie value or a key. Its
// field names are part of the command's interface: add fields, never
// rename.
type inspectJSON struct {
	// Session is the session ID cut short: its first 4 hex digits and "…".
	Session string `json:"session"`
	// From is "id" or "cookie": what the argument was; Cookie names the
	// cookie ("" for an ID).
	From   string `json:"from"`
	Cookie string `json:"cookie"`
	// Key is where the session lives: its key in StringMode, its bucket
	// in HashMode. Field is its field in the bucket; null in StringMode.
	Key   nameJSON  `json:"key"`
	Field *nameJSON `json:"field"`
	// Found is whether Redis holds a value there, expired or not.
	Found   bool `json:"found"`
	Expired bool `json:"expired"`
	// Expires and Started are RFC 3339, UTC; null when not known (a key
	// without a TTL never expires).
	Expires *string `json:"expires"`
	Started *string `json:"started"`
	// Codec is the serializer that wrote the values ("compact", "gob",
	// "json", "application"); Compressor is "lz4", "zstd", ... or "none".
	// Both are "" when the value could not be read.
	Codec           string `json:"codec"`
	Compressor      string `json:"compressor"`
	StoredBytes     int    `json:"stored_bytes"`
	SerializedBytes int    `json:"serialized_bytes"`
	// Values are the session's values, sorted as the text lists them; []
	// when there are none or they could not be decoded.
	Values []valueJSON `json:"values"`
}

// nameJSON is a key or field name as the text shows it: Go-quoted, with
// the session ID's bytes past the first few replaced by "…".
type nameJSON struct {
	Shown string `json:"shown"`
	// Bytes is the name's length; HiddenBytes how many of them (bytes of
	// the raw ID, or hex digits of the ID) are not shown.
	Bytes       int `json:"bytes"`
	HiddenBytes int `json:"hidden_bytes"`
}

// valueJSON is one of the session's values. Name is its key (a key that
// is not a string as the text shows it); Type its Go type; Value the
// text's rendering of it, in Go syntax (strings quoted), cut at 200 bytes,
// with values under secret-looking names, nested ones too, as
// "[redacted, N bytes]". Redacted is true when the whole value is.
type valueJSON struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Value    string `json:"value"`
	Redacted bool   `json:"redacted"`
}

func inspectDocument(id string, source argSource, info redistore.SessionInfo) inspectJSON {
	raw, _ := hex.DecodeString(id)
	doc := inspectJSON{
		Session:         shortID(id),
		From:            "id",
		Cookie:          source.cookie,
		Key:             nameDocument(hideID(info.Key, id, string(raw))),
		Found:           info.Found,
		Expired:         info.Expired,
		Expires:         jsonTime(info.Expires),
		Started:         jsonTime(info.Started),
		Codec:           info.Codec,
		StoredBytes:     info.StoredBytes,
		SerializedBytes: info.SerializedBytes,
		Values:          []valueJSON{},
	}
	if source.cookie != "" {
		doc.From = "cookie"
	}
	if info.Field != "" {
		f := nameDocument(hideID(info.Field, id, string(raw)))
		doc.Field = &f
	}
	if info.Codec != "" {
		doc.Compressor = "none"
		if info.Compressed {
			doc.Compressor = info.Compressor
		}
	}
	for _, en := range entries(info.Values) {
		name, ok := en.key.(string)
		if !ok {
			name = en.name
		}
		doc.Values = append(doc.Values, valueJSON{Name: name, Type: en.typ, Value: en.value, Redacted: en.redacted})
	}
	return doc
}

func nameDocument(h hiddenName) nameJSON {
	return nameJSON{Shown: h.shown, Bytes: h.bytes, HiddenBytes: h.hidden}
}

// sensitiveWords mark value names whose values are not shown.
var sensitiveWords = []string{"token", "secret", "password", "passwd", "csrf", "key", "auth"}

func sensitive(name any) bool {
	n := strings.ToLower(fmt.Sprint(name))
	for _, w := range sensitiveWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

func redacted(v any) string {
	n := 0
	switch x := v.(type) {
	case string:
		n = len(x)
	case []byte:
		n = len(x)
	default:
		n = len(fmt.Sprint(v))
	}
	return fmt.Sprintf("[redacted, %d bytes]", n)
}

// maxShown bounds how much of one value is printed.
const maxShown = 200

// showEntry formats one of the session's values.
func showEntry(k, v any) string {
	if sensitive(k) {
		return redacted(v)
	}
	s := show(reflect.ValueOf(v), 0)
	if len(s) > maxShown {
		cut := maxShown
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = fmt.Sprintf("%s… (%d bytes more)", s[:cut], len(s)-cut)
	}
	return s
}

func showKey(k any) string {
	if s, ok := k.(string); ok {
		return strconv.Quote(s)
	}
	return show(reflect.ValueOf(k), 0)
}

// show formats a value on one line, quoting strings so that nothing in a
// session can move the terminal's cursor, and redacting the secret-looking
// entries of nested maps too.
func show(v reflect.Value, depth int) string {
	if !v.IsValid() {
		return "nil"
	}
	if depth > 4 {
		return "…"
	}
	if v.CanInterface() {
		switch x := v.Interface().(type) {
		case string:
			return strconv.Quote(x)
		case []byte:
			return "[]byte(" + strconv.Quote(string(x)) + ")"
		case time.Time:
			return x.Format(time.RFC3339Nano)
		}
	}
	switch v.Kind() {
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return "nil"
		}
		return show(v.Elem(), depth)
	case reflect.Map:
		type kv struct{ k, v string }
		var parts []kv
		iter := v.MapRange()
		for iter.Next() {
			k, val := iter.Key(), iter.Value()
			var vs string
			if k.CanInterface() && sensitive(k.Interface()) && val.CanInterface() {
				vs = redacted(val.Interface())
			} else {
				vs = show(val, depth+1)
			}
			parts = append(parts, kv{show(k, depth+1), vs})
		}
		slices.SortFunc(parts, func(a, b kv) int { return strings.Compare(a.k, b.k) })
		out := make([]string, len(parts))
		for i, p := range parts {
			out[i] = p.k + ": " + p.v
		}
		return "{" + strings.Join(out, ", ") + "}"
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return "[]"
		}
		out := make([]string, v.Len())
		for i := range out {
			out[i] = show(v.Index(i), depth+1)
		}
		return "[" + strings.Join(out, ", ") + "]"
	case reflect.Struct:
		var out []string
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			val := v.Field(i)
			vs := show(val, depth+1)
			if sensitive(f.Name) && val.CanInterface() {
				vs = redacted(val.Interface())
			}
			out = append(out, f.Name+": "+vs)
		}
		return v.Type().String() + "{" + strings.Join(out, ", ") + "}"
	}
	s := fmt.Sprintf("%+v", v)
	if v.CanInterface() {
		s = fmt.Sprintf("%+v", v.Interface())
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
