package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/redis/rueidis"

	"github.com/redisession/redistore"
)

// maxHintKeys bounds the keys a mismatch hint looks at.
const maxHintKeys = 10000

// otherMode is the --mode that is not the store's.
func otherMode(s *redistore.Store) string {
	if s.KeyType() == "hash" {
		return "string"
	}
	return "hash"
}

// mismatch explains why the keys under the prefix are not the store's, or
// why there are none, naming the flag to change; "" when nothing looks
// wrong. owned is how many keys are the store's, others how many keys under
// the prefix are of another type. sure says the keys are another mode's;
// otherwise the hint is a guess at the prefix, from other keys' names.
func mismatch(ctx context.Context, client rueidis.Client, s *redistore.Store, prefix string, owned, others int) (hint string, sure bool) {
	switch {
	case owned > 0:
		return "", false
	case others > 0:
		return fmt.Sprintf("none of the keys under %q is a %s of a %s-mode store, and %d are of another type: is the store in %s mode? try --mode %s",
			prefix, s.KeyType(), s.KeyType(), others, otherMode(s), otherMode(s)), true
	}
	if p := likelyPrefix(ctx, client, prefix); p != "" {
		return fmt.Sprintf("no keys under %q, but many under %q: if that is the store's Config.KeyPrefix, pass --prefix %q", prefix, p, p), false
	}
	return "", false
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

// likelyPrefix returns the most common key prefix (up to and including its
// first ':' or '_') among the database's first keys, other than prefix.
func likelyPrefix(ctx context.Context, client rueidis.Client, prefix string) string {
	counts := map[string]int{}
	common := map[string]string{} // the longest prefix the group's keys share
	var cursor uint64
	seen := 0
	for seen < maxHintKeys {
		e, err := client.Do(ctx, client.B().Scan().Cursor(cursor).Count(1000).Build()).AsScanEntry()
		if err != nil {
			return ""
		}
		for _, k := range e.Elements {
			if i := strings.IndexAny(k, ":_"); i > 0 {
				g := k[:i+1]
				counts[g]++
				if c, ok := common[g]; !ok {
					common[g] = k
				} else {
					common[g] = sharedPrefix(c, k)
				}
			}
		}
		seen += len(e.Elements)
		if cursor = e.Cursor; cursor == 0 {
			break
		}
	}
	found := map[string]int{}
	best := make([]string, 0, len(counts))
	for g, n := range counts {
		// The group's keys share their prefix up to its last separator
		// (what follows is the keys' own bytes).
		c := common[g]
		if i := strings.LastIndexAny(c, ":_"); i >= len(g)-1 {
			c = c[:i+1]
		}
		if c != prefix {
			found[c] = n
			best = append(best, c)
		}
	}
	sort.Slice(best, func(i, j int) bool {
		return found[best[i]] > found[best[j]] || found[best[i]] == found[best[j]] && best[i] < best[j]
	})
	if len(best) == 0 || found[best[0]] < 2 {
		return ""
	}
	return best[0]
}

func sharedPrefix(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return a[:n]
}
