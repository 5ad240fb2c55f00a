package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Do sends one command over a fresh connection and returns the whole reply,
// as RESP2 decodes it: a string (simple or bulk), an int64, nil, or an []any
// of these. An error reply comes back as a ReplyError; one inside an array
// (EXEC) stays in the array as a ReplyError, and Do returns the array with
// the first of them. It is for test setup (CONFIG SET, DEBUG SLEEP) and
// inspection, not for data.
func Do(addr string, args ...string) (any, error) {
	return DoWithin(addr, 5*time.Second, args...)
}

// DoWithin is Do, giving up after timeout.
func DoWithin(addr string, timeout time.Duration, args ...string) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	return readReply(bufio.NewReader(conn), 0)
}

// ReplyError is an error reply from the server, as Do returns it: its text
// is the reply's ("ERR unknown command ...", "MOVED 3999 127.0.0.1:7001").
type ReplyError string

func (e ReplyError) Error() string { return string(e) }

func readReply(r *bufio.Reader, depth int) (any, error) {
	if depth > 8 {
		return nil, errors.New("redistest: reply nested too deep")
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return nil, errors.New("redistest: empty reply line")
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		if depth > 0 {
			return ReplyError(body), nil
		}
		return nil, ReplyError(body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		var firstErr error
		for i := range out {
			if out[i], err = readReply(r, depth+1); err != nil {
				return nil, err
			}
			if e, ok := out[i].(ReplyError); ok && firstErr == nil {
				firstErr = e
			}
		}
		if depth == 0 && firstErr != nil {
			return out, firstErr
		}
		return out, nil
	}
	return nil, fmt.Errorf("redistest: unexpected reply %q", line)
}

// Info runs INFO section and returns its fields ("role" -> "master").
func Info(addr, section string) (map[string]string, error) {
	v, err := Do(addr, "INFO", section)
	if err != nil {
		return nil, err
	}
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("redistest: INFO replied %T", v)
	}
	return fields(s), nil
}

// fields parses "name:value" lines, as INFO and CLUSTER INFO reply.
func fields(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// pairs turns a flat [name value name value ...] reply, as SENTINEL MASTER
// gives in RESP2, into a map.
func pairs(v any) map[string]string {
	a, _ := v.([]any)
	m := map[string]string{}
	for i := 0; i+1 < len(a); i += 2 {
		k, _ := a[i].(string)
		m[k] = fmt.Sprint(a[i+1])
	}
	return m
}
