package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/redis/rueidis"

	"github.com/redisession/redistore"
)

// maxHintKeys bounds the keys a mismatch hint looks at.
const maxHintKeys = 10000

// minHintKeys is how many keys shaped like sessions a prefix needs before
// it is suggested.
const minHintKeys = 3

// otherMode is the --mode that is not the store's.
func otherMode(s *redistore.Store) string {
	if s.KeyType() == "hash" {
		return "string"
	}
	return "hash"
}

// storeLike returns a store of the command's Config with another mode or
// prefix, to ask it which keys it would own.
func (e *env) storeLike(client rueidis.Client, mode redistore.Mode, prefix string) (*redistore.Store, error) {
	cfg, err := e.config(false)
	if err != nil {
		return nil, err
	}
	cfg.Client, cfg.Mode, cfg.Legacy = client, mode, nil
	if prefix != "" {
		cfg.KeyPrefix = prefix
	}
	if mode == redistore.StringMode {
		cfg.Buckets = 0
	} else if cfg.Buckets == 0 {
		cfg.Buckets = e.opts.buckets
	}
	return redistore.New(cfg)
}

func modeOf(name string) redistore.Mode {
	if name == "string" {
		return redistore.StringMode
	}
	return redistore.HashMode
}

var errEnough = errors.New("enough keys")

// mismatch looks at the keys under the prefix and, when none is the
// store's, says which flag to change. sure: keys shaped like the other
// mode's are there (an error); otherwise the hint is a warning: keys under
// the prefix that are no store's, or a guess at the prefix from the
// database's other keys. "" when nothing looks wrong.
func (e *env) mismatch(ctx context.Context, client rueidis.Client, s *redistore.Store) (hint string, sure bool) {
	prefix := e.opts.prefix
	var keys []string
	err := redistore.ScanBuckets()(ctx, client, prefix, func(batch []string) error {
		keys = append(keys, batch...)
		if len(keys) >= maxHintKeys {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return "", false
	}
	if len(keys) == 0 {
		if p := e.likelyPrefix(ctx, client, prefix); p != "" {
			return fmt.Sprintf("no keys under %q, but keys shaped like sessions under %q: if that is the store's Config.KeyPrefix, pass --prefix %q", prefix, p, p), false
		}
		return "", false
	}
	other, err := e.storeLike(client, modeOf(otherMode(s)), "")
	if err != nil {
		return "", false
	}
	types := typesOf(ctx, client, keys)
	var owned, others, indexes int
	for i, k := range keys {
		switch {
		case s.IsIndexKey(k):
			indexes++
		case s.OwnsKey(k) && types[i] == s.KeyType():
			owned++
		case other.OwnsKey(k) && types[i] == other.KeyType():
			others++
		}
	}
	switch {
	case owned > 0 || indexes == len(keys):
		return "", false
	case others > 0:
		return fmt.Sprintf("none of the %d keys under %q is a %s-mode store's, and %d are shaped like a %s-mode store's: is the store in %s mode? try --mode %s",
			len(keys), prefix, s.KeyType(), others, otherMode(s), otherMode(s), otherMode(s)), true
	}
	return fmt.Sprintf("none of the %d keys under %q is shaped like a %s-mode store's (a wrong --buckets, custom key generators, or another application writing under the prefix?)", len(keys), prefix, s.KeyType()), false
}

// typesOf returns the TYPE of each key ("" where it could not be read).
func typesOf(ctx context.Context, client rueidis.Client, keys []string) []string {
	out := make([]string, len(keys))
	for start := 0; start < len(keys); start += 500 {
		end := min(start+500, len(keys))
		cmds := make(rueidis.Commands, 0, end-start)
		for _, k := range keys[start:end] {
			cmds = append(cmds, client.B().Type().Key(k).Build())
		}
		for i, r := range client.DoMulti(ctx, cmds...) {
			out[start+i], _ = r.ToString()
		}
	}
	return out
}

// likelyPrefix returns, among the database's first keys, the prefix (up to
// a ':' or '_') under which most keys have the shape of a store's keys
// (with the default generators, in either mode), if at least minHintKeys
// do; "" otherwise.
func (e *env) likelyPrefix(ctx context.Context, client rueidis.Client, prefix string) string {
	groups := map[string][]string{} // first segment -> up to 100 of its keys
	common := map[string]string{}
	var cursor uint64
	for seen := 0; seen < maxHintKeys; {
		s, err := client.Do(ctx, client.B().Scan().Cursor(cursor).Count(1000).Build()).AsScanEntry()
		if err != nil {
			return ""
		}
		for _, k := range s.Elements {
			if i := strings.IndexAny(k, ":_"); i > 0 {
				g := k[:i+1]
				if c, ok := common[g]; !ok {
					common[g] = k
				} else {
					common[g] = sharedPrefix(c, k)
				}
				if len(groups[g]) < 100 {
					groups[g] = append(groups[g], k)
				}
			}
		}
		seen += len(s.Elements)
		if cursor = s.Cursor; cursor == 0 {
			break
		}
	}
	type candidate struct {
		prefix string
		shaped int
	}
	var found []candidate
	for g, ks := range groups {
		// The group's keys share their prefix up to its last separator
		// (what follows is the keys' own bytes).
		c := common[g]
		if i := strings.LastIndexAny(c, ":_"); i >= len(g)-1 {
			c = c[:i+1]
		}
		if c == prefix {
			continue
		}
		hash, err1 := e.storeLike(client, redistore.HashMode, c)
		str, err2 := e.storeLike(client, redistore.StringMode, c)
		if err1 != nil || err2 != nil {
			continue
		}
		n := 0
		for _, k := range ks {
			if hash.OwnsKey(k) || str.OwnsKey(k) {
				n++
			}
		}
		if n >= minHintKeys {
			found = append(found, candidate{c, n})
		}
	}
	sort.Slice(found, func(i, j int) bool {
		return found[i].shaped > found[j].shaped || found[i].shaped == found[j].shaped && found[i].prefix < found[j].prefix
	})
	if len(found) == 0 {
		return ""
	}
	return found[0].prefix
}

func sharedPrefix(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return a[:n]
}

// tell returns a hint that is sure as the command's error, and writes a
// guess as a warning.
func (e *env) tell(hint string, sure bool) error {
	switch {
	case hint == "":
		return nil
	case sure:
		return fmt.Errorf("%s", hint)
	}
	fmt.Fprintln(e.stderr, "redistore: warning: "+hint)
	return nil
}
