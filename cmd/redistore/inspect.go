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
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 1 {
			return usageErrorf("inspect takes one argument, a session ID or a cookie value; got %d", len(args))
		}
		arg := strings.TrimSpace(args[0])
		id, source := "", "a session ID"
		if lower := strings.ToLower(arg); redistore.ValidID(lower) {
			id = lower
		} else {
			// A value copied with its name ("session=MTc...") is fine too.
			arg = strings.TrimPrefix(arg, *cookie+"=")
			source = fmt.Sprintf("cookie %q", *cookie)
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
		printSession(e.stdout, id, source, info, time.Now())
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

// printSession describes a session without revealing it: the ID is cut
// short, the raw ID bytes in keys and fields are hidden, and values under
// names that look secret are redacted.
func printSession(w io.Writer, id, source string, info redistore.SessionInfo, now time.Time) {
	raw, _ := hex.DecodeString(id)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "session\t%s (from %s)\n", shortID(id), source)
	if info.Key != "" {
		fmt.Fprintf(tw, "key\t%s\n", quoteHidingID(info.Key, id, string(raw)))
	}
	if info.Field != "" {
		fmt.Fprintf(tw, "field\t%s\n", quoteHidingID(info.Field, id, string(raw)))
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

	type entry struct{ name, typ, value string }
	entries := make([]entry, 0, len(info.Values))
	for k, v := range info.Values {
		entries = append(entries, entry{showKey(k), fmt.Sprintf("%T", v), showEntry(k, v)})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, en := range entries {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", en.name, en.typ, en.value)
	}
	tw.Flush()
}

// quoteHidingID quotes a key or field, showing only the first two of the
// raw ID bytes (or four hex digits) it contains.
func quoteHidingID(s, id, raw string) string {
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
		return fmt.Sprintf("%s (%d bytes; the %d %s are not shown)", out, len(s), len(whole)-keep, what)
	}
	return strconv.Quote(s)
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
