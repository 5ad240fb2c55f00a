package redistore

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
	"github.com/redisession/redistore/internal/envelope"
)

// DefaultStatsSample is how many keys Stats samples when asked for 0.
const DefaultStatsSample = 200

// Stats describes what a Store holds in Redis, for operators and metrics.
// Counting walks every key under the prefix (SCAN, then pipelined TYPE and
// HLEN); encodings, memory and value sizes come from a random sample.
type Stats struct {
	Mode   Mode
	Prefix string
	// Keys is the number of keys under the prefix that belong to the
	// layout: buckets in HashMode, sessions in StringMode.
	Keys int
	// Sessions is the number of sessions stored, including expired ones
	// not yet removed (see Expired).
	Sessions int
	// OtherKeys counts keys under the prefix that are not the layout's:
	// not named as its keys are (see Store.OwnsKey), or of a type it does
	// not use. Something else writes under the prefix; Sweep skips these
	// keys, and Stats counts none of their contents as sessions.
	OtherKeys int
	// UserIndexKeys counts the user index keys under the prefix (see
	// Config.UserKey and IsIndexKey), and UserIndexEntries their entries
	// (sessions listed, ended ones not yet dropped included).
	UserIndexKeys, UserIndexEntries int
	// PerBucket is a histogram of sessions per bucket (HashMode).
	PerBucket []Bucket
	// Sampled is the number of keys sampled for what follows.
	Sampled int
	// Encodings counts OBJECT ENCODING over the sample (listpack, hashtable,
	// raw, embstr...). Empty where the server lacks the command.
	Encodings map[string]int
	// BytesPerSession is MEMORY USAGE over the sampled keys divided by the
	// sessions in them; 0 where the server lacks the command.
	BytesPerSession float64
	// ValueBytes and MaxValueBytes are the mean and largest stored value in
	// the sample: what hash-max-listpack-value must exceed (HashMode).
	ValueBytes    float64
	MaxValueBytes int
	// Compressors counts the sampled sessions by the compressor that wrote
	// them: "lz4", "zstd", an application's Name (or its ID in hex when it
	// is not this store's), "none" for those stored plain.
	Compressors map[string]int
	// SealedBy counts the sampled sessions by the key that sealed them: its
	// fingerprint (EncryptionKeyID), or "clear" for values stored in clear.
	// RingKeys are the fingerprints of the store's Config.EncryptionKeys,
	// the sealing key first: a fingerprint in SealedBy that is not among
	// them reads as ErrCorrupt, and a key other than the first may leave
	// the ring once no session is sealed by it (see Store.Rekey).
	SealedBy map[string]int
	RingKeys []string
	// Expired is the share of sampled sessions that have expired but are
	// still stored (HashMode without field TTLs; Sweep removes them).
	Expired float64
	// LegacyKeys counts the boj/redistore sessions not moved yet (with
	// Config.Legacy).
	LegacyKeys int
	// ListpackEntries is the server's hash-max-listpack-entries, or 0 where
	// it cannot be read (CONFIG refused).
	ListpackEntries int
	// Warnings say, in a sentence each, what in these figures needs an
	// operator's attention: buckets nearing the size at which they stop
	// saving memory, or past the size writes clean in one go.
	Warnings []string
	// Duration is how long Stats took.
	Duration time.Duration
}

// Bucket is one bar of the sessions-per-bucket histogram: Buckets buckets
// hold between Min and Max sessions. The last bar has no upper bound: its
// Max is math.MaxInt.
type Bucket struct {
	Min, Max int
	Buckets  int
}

// bars are the histogram's upper bounds.
var bars = []int{0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, math.MaxInt}

// Stats walks the keys under the store's prefix and samples sample of them
// (DefaultStatsSample when 0) for encodings, memory and value sizes. It reads
// only; on a large database it takes a while (about a second per few hundred
// thousand keys) and can be canceled with ctx.
func (s *Store) Stats(ctx context.Context, sample int) (Stats, error) {
	start := time.Now()
	if sample <= 0 {
		sample = DefaultStatsSample
	}
	c := &statsCounter{s: s, ctx: ctx, want: sample, perBucket: map[int]int{},
		st: Stats{Mode: s.layout.mode(), Prefix: s.prefix, Encodings: map[string]int{}, Compressors: map[string]int{}, SealedBy: map[string]int{}}}
	if s.ring != nil {
		for i := range s.ring.Len() {
			c.st.RingKeys = append(c.st.RingKeys, s.ring.ID(i))
		}
	}
	if err := ScanBuckets()(ctx, s.bounded(), s.prefix, c.count); err != nil {
		return c.st, redisError("counting sessions", err)
	}
	st := &c.st
	st.PerBucket = histogram(c.perBucket)
	if s.legacy != nil {
		err := ScanBuckets()(ctx, s.bounded(), s.legacy.KeyPrefix, func(keys []string) error {
			st.LegacyKeys += len(keys)
			return nil
		})
		if err != nil {
			return *st, redisError("counting boj/redistore sessions", err)
		}
	}
	if err := s.sample(ctx, st, c.picked); err != nil {
		return *st, err
	}
	if c.buckets {
		st.ListpackEntries = s.listpackEntries(ctx)
		st.Warnings = bucketWarnings(*st)
		hb, ok := s.layout.(*hashLayout)
		if ok && hb.fieldTTL == FieldTTLOn && hb.server.Load() == 0 {
			cctx, cancel := s.callContext(ctx)
			hb.learnServer(s.client.Do(cctx, s.client.B().Info().Section("server").Build()))
			cancel()
		}
		if ok && hb.fieldTTL == FieldTTLOn && hb.server.Load() == serverValkey {
			st.Warnings = append(st.Warnings, "FieldTTLOn on Valkey: a hash whose fields have TTLs is a hashtable there (it has no listpackex), about 45 bytes a session more than a compact bucket (145 against 100 at 1 M sessions of 150 B); FieldTTLAuto sets none on Valkey, and writes clean their buckets instead")
		}
	}
	st.Warnings = append(st.Warnings, sealingWarnings(*st)...)
	st.Duration = time.Since(start)
	return *st, nil
}

// sealedByName names the key that sealed a stored value from its first
// bytes: its fingerprint, "clear" for a value in clear, "unknown" for one
// that does not read.
func sealedByName(head string) string {
	if len(head) < expiryLen {
		return "unknown"
	}
	h, err := envelope.ReadHeader(head[expiryLen:])
	switch {
	case err != nil:
		return "unknown"
	case !h.Sealed:
		return "clear"
	case h.KeyID() == "":
		return "unknown"
	}
	return hex.EncodeToString([]byte(h.KeyID()))
}

// sealingWarnings say what in the sample stands between the store and its
// EncryptionKeys: values sealed by keys it does not have, and values an old
// key (or none) sealed, which `redistore rekey` re-seals.
func sealingWarnings(st Stats) []string {
	var out []string
	var foreign, stale, clear int
	for id, n := range st.SealedBy {
		i := slices.Index(st.RingKeys, id)
		switch {
		case id == "clear":
			clear += n
		case id == "unknown":
		case i < 0:
			foreign += n
		case i > 0:
			stale += n
		}
	}
	if foreign > 0 && len(st.RingKeys) > 0 {
		out = append(out, fmt.Sprintf("%s in the sample %s sealed by a key not in EncryptionKeys: %s as ErrCorrupt (a new, empty session); put the key back after the first to read them",
			plural(foreign, "session"), isAre(foreign), map[bool]string{true: "it reads", false: "they read"}[foreign == 1]))
	}
	if stale > 0 {
		out = append(out, fmt.Sprintf("%s in the sample %s sealed by a key that is not the first in EncryptionKeys: `redistore rekey` re-seals every session with the first, after which the others can go",
			plural(stale, "session"), isAre(stale)))
	}
	if clear > 0 && len(st.RingKeys) > 0 {
		out = append(out, fmt.Sprintf("%s in the sample %s stored in clear: each is sealed at its next write, or now by `redistore rekey`",
			plural(clear, "session"), isAre(clear)))
	}
	return out
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// statsCounter counts the keys a SCAN lists, and keeps a reservoir sample
// of the layout's keys.
type statsCounter struct {
	s         *Store
	ctx       context.Context
	st        Stats
	perBucket map[int]int // sessions per bucket -> buckets
	buckets   bool        // the layout's keys are buckets
	want      int         // the sample's size
	picked    []string
	seen      int
}

// count asks the layout what each key holds, in one round trip a batch.
func (c *statsCounter) count(keys []string) error {
	keys, err := c.countIndexes(keys)
	if err != nil {
		return err
	}
	owned := keys[:0:0]
	for _, k := range keys {
		if c.s.layout.ownsKey(k) {
			owned = append(owned, k)
		} else {
			c.st.OtherKeys++ // not named as the layout names its keys: Sweep skips it too
		}
	}
	keys = owned
	if len(keys) == 0 {
		return nil
	}
	var cmds rueidis.Commands
	var per int
	for _, k := range keys {
		kc := c.s.layout.countCommands(k)
		per = len(kc)
		cmds = append(cmds, kc...)
	}
	cctx, cancel := c.s.callContext(c.ctx)
	res := c.s.client.DoMulti(cctx, cmds...)
	cancel()
	for i, k := range keys {
		kc, err := c.s.layout.count(res[i*per : (i+1)*per])
		switch {
		case err != nil:
			return err
		case kc.gone:
			continue
		case !kc.owned:
			c.st.OtherKeys++
			continue
		}
		if kc.bucket {
			c.buckets = true
			c.perBucket[kc.sessions]++
		}
		c.st.Keys++
		c.st.Sessions += kc.sessions
		c.seen++
		if len(c.picked) < c.want {
			c.picked = append(c.picked, k)
		} else if j := rand.IntN(c.seen); j < c.want {
			c.picked[j] = k
		}
	}
	return nil
}

// countIndexes counts the user index keys among keys, and returns the
// others.
func (c *statsCounter) countIndexes(keys []string) ([]string, error) {
	var cmds rueidis.Commands
	rest := keys[:0:0]
	for _, k := range keys {
		if isIndexKey(k, c.s.prefix) {
			cmds = append(cmds, c.s.client.B().Hlen().Key(k).Build(), c.s.client.B().Hexists().Key(k).Field(indexCursor).Build())
		} else {
			rest = append(rest, k)
		}
	}
	if len(cmds) == 0 {
		return keys, nil
	}
	cctx, cancel := c.s.callContext(c.ctx)
	defer cancel()
	res := c.s.client.DoMulti(cctx, cmds...)
	for i := 0; i+1 < len(res); i += 2 {
		n, err := res[i].AsInt64()
		if cursor, _ := res[i+1].AsInt64(); err == nil {
			n -= cursor // the cleaning cursor is not an entry
		}
		if err != nil {
			if _, ok := rueidis.IsRedisErr(err); ok {
				c.st.OtherKeys++ // shaped like an index, not a hash
				continue
			}
			return nil, err
		}
		if n > 0 {
			c.st.UserIndexKeys++
			c.st.UserIndexEntries += int(n)
		}
	}
	return rest, nil
}

// defaultListpackEntries is Redis's default hash-max-listpack-entries.
const defaultListpackEntries = 512

// listpackEntries reads hash-max-listpack-entries, or 0 when the server
// does not say.
func (s *Store) listpackEntries(ctx context.Context) int {
	cctx, cancel := s.callContext(ctx)
	defer cancel()
	for _, name := range []string{"hash-max-listpack-entries", "hash-max-ziplist-entries"} {
		m, err := s.client.Do(cctx, s.client.B().ConfigGet().Parameter(name).Build()).AsStrMap()
		if v, ok := m[name]; err == nil && ok {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
	}
	return 0
}

// bucketWarnings compares the average bucket with the two sizes that
// matter: where Redis gives up the compact listpack encoding, and where a
// write stops cleaning the bucket in one go.
func bucketWarnings(st Stats) []string {
	if st.Keys == 0 {
		return nil
	}
	avg := float64(st.Sessions) / float64(st.Keys)
	limit, known := st.ListpackEntries, true
	if limit <= 0 {
		limit, known = defaultListpackEntries, false
	}
	var out []string
	if avg >= 0.75*float64(limit) {
		setting := fmt.Sprintf("hash-max-listpack-entries (%d)", limit)
		if !known {
			setting = fmt.Sprintf("hash-max-listpack-entries (unreadable here; %d by default)", limit)
		}
		out = append(out, fmt.Sprintf("buckets hold %.0f sessions on average, near %s: past it a bucket becomes a hashtable and HashMode's memory saving is gone; use more Config.Buckets (a change logs everyone out) or raise the setting", avg, setting))
	}
	if avg > cleanLimit {
		out = append(out, fmt.Sprintf("buckets hold %.0f sessions on average, more than the %d a write cleans in one go: writes clean them a chunk at a time, so expired sessions stay longer; use more Config.Buckets, or run Sweep periodically", avg, cleanLimit))
	}
	return out
}

func histogram(perBucket map[int]int) []Bucket {
	var out []Bucket
	lo := 0
	for _, hi := range bars {
		b := Bucket{Min: lo, Max: hi}
		for n, count := range perBucket {
			if n >= lo && n <= hi {
				b.Buckets += count
			}
		}
		if b.Buckets > 0 {
			out = append(out, b)
		}
		lo = hi + 1
	}
	return out
}

// sample fills in what Stats learns from the sampled keys.
func (s *Store) sample(ctx context.Context, st *Stats, keys []string) error {
	st.Sampled = len(keys)
	if len(keys) == 0 {
		return nil
	}
	cctx, cancel := s.callContext(ctx)
	now, err := serverTime(s.client.Do(cctx, s.client.B().Time().Build()))
	cancel()
	if err != nil {
		return redisError("reading the server's clock", err)
	}
	per := 2 + len(s.layout.sampleCommands(""))
	cmds := make(rueidis.Commands, 0, per*len(keys))
	for _, k := range keys {
		cmds = append(cmds, s.client.B().ObjectEncoding().Key(k).Build(), s.client.B().MemoryUsage().Key(k).Build())
		cmds = append(cmds, s.layout.sampleCommands(k)...)
	}
	cctx, cancel = s.callContext(ctx)
	res := s.client.DoMulti(cctx, cmds...)
	cancel()
	for _, r := range res {
		if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) {
			if _, answered := rueidis.IsRedisErr(err); !answered {
				return redisError("sampling keys", err) // no answer: no figures
			}
		}
	}
	var memory, sessions, values, valueBytes, expired int
	memoryKnown := true
	for i := range keys {
		res := res[per*i : per*i+per]
		if enc, err := res[0].ToString(); err == nil {
			st.Encodings[enc]++
		}
		mem, err := res[1].AsInt64()
		if err != nil {
			memoryKnown = false
		}
		memory += int(mem)
		sm := s.layout.sampled(res[2:], now)
		for _, h := range sm.heads {
			st.Compressors[s.compressorName(h)]++
			st.SealedBy[sealedByName(h)]++
		}
		sessions += sm.sessions
		expired += sm.expired
		for _, n := range sm.valueBytes {
			values++
			valueBytes += n
			st.MaxValueBytes = max(st.MaxValueBytes, n)
		}
	}
	if memoryKnown && sessions > 0 {
		st.BytesPerSession = float64(memory) / float64(sessions)
	}
	if values > 0 {
		st.ValueBytes = float64(valueBytes) / float64(values)
		st.Expired = float64(expired) / float64(values)
	}
	return nil
}

// String formats the stats for a terminal.
func (st Stats) String() string {
	out := fmt.Sprintf("%s mode, prefix %q: %s in %s", st.Mode, st.Prefix, plural(st.Sessions, "session"), plural(st.Keys, "key"))
	if st.OtherKeys > 0 {
		out += fmt.Sprintf(", and %s under the prefix that %s not the store's", plural(st.OtherKeys, "key"), map[bool]string{true: "is", false: "are"}[st.OtherKeys == 1])
	}
	out += "\n"
	if st.UserIndexKeys > 0 {
		out += fmt.Sprintf("user index: %s, %s\n", plural(st.UserIndexKeys, "user"), plural(st.UserIndexEntries, "entry"))
	}
	if len(st.Compressors) > 0 {
		names := make([]string, 0, len(st.Compressors))
		for n := range st.Compressors {
			names = append(names, n)
		}
		slices.Sort(names)
		out += "compressors in the sample:"
		for _, n := range names {
			out += fmt.Sprintf(" %s %d", n, st.Compressors[n])
		}
		out += "\n"
	}
	if _, onlyClear := st.SealedBy["clear"]; len(st.SealedBy) > 0 && (len(st.RingKeys) > 0 || !onlyClear || len(st.SealedBy) > 1) {
		ids := make([]string, 0, len(st.SealedBy))
		for id := range st.SealedBy {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, func(a, b string) int { return cmp.Compare(ringOrder(st, a), ringOrder(st, b)) })
		out += "sealed in the sample:"
		for _, id := range ids {
			out += fmt.Sprintf(" %s %d", id, st.SealedBy[id])
			switch i := slices.Index(st.RingKeys, id); {
			case i == 0:
				out += " (the first key)"
			case i > 0:
				out += fmt.Sprintf(" (key %d)", i+1)
			case id != "clear" && id != "unknown" && len(st.RingKeys) > 0:
				out += " (not in the ring)"
			}
			out += ","
		}
		out = strings.TrimSuffix(out, ",")
		if len(st.RingKeys) == 0 {
			out += " (no EncryptionKeys given to check them against)"
		}
		out += "\n"
	}
	if len(st.PerBucket) > 0 {
		out += "sessions per bucket:\n"
		most := 0
		for _, b := range st.PerBucket {
			most = max(most, b.Buckets)
		}
		for _, b := range st.PerBucket {
			label := fmt.Sprintf("%d-%d", b.Min, b.Max)
			if b.Min == b.Max {
				label = fmt.Sprint(b.Min)
			} else if b.Max == math.MaxInt {
				label = fmt.Sprintf("%d+", b.Min)
			}
			bar := make([]byte, max(1, 40*b.Buckets/max(most, 1)))
			for i := range bar {
				bar[i] = '#'
			}
			out += fmt.Sprintf("  %8s  %8d  %s\n", label, b.Buckets, bar)
		}
	}
	if st.LegacyKeys > 0 {
		out += plural(st.LegacyKeys, "session") + " from boj/redistore not moved yet\n"
	}
	for _, w := range st.Warnings {
		out += "warning: " + w + "\n"
	}
	if st.Sampled > 0 {
		encs := make([]string, 0, len(st.Encodings))
		for e, n := range st.Encodings {
			encs = append(encs, fmt.Sprintf("%s %d", e, n))
		}
		slices.Sort(encs)
		out += fmt.Sprintf("sample of %s: encodings %v; values %.0f B on average, %d B at most",
			plural(st.Sampled, "key"), encs, st.ValueBytes, st.MaxValueBytes)
		if st.BytesPerSession > 0 {
			out += fmt.Sprintf("; %.0f B of Redis memory per session", st.BytesPerSession)
		}
		if len(st.PerBucket) > 0 { // buckets keep expired sessions a while
			out += fmt.Sprintf("; %.1f%% expired, awaiting removal", 100*st.Expired)
		}
		out += "\n"
	}
	return out
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if base, ok := strings.CutSuffix(noun, "y"); ok && base != "" && !strings.ContainsRune("aeiou", rune(base[len(base)-1])) {
		return fmt.Sprintf("%d %sies", n, base) // entry, entries; key, keys
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// compressorName names the compressor of a stored value from its first
// bytes (expiry, envelope header, metadata block, compressor byte).
func (s *Store) compressorName(head string) string {
	if len(head) < expiryLen {
		return "unknown"
	}
	h, err := envelope.ReadHeader(head[expiryLen:])
	switch {
	case err != nil:
		return "unknown"
	case h.Compressor == 0:
		return "none"
	case h.Compressor == CompressorLZ4:
		return "lz4"
	case h.Compressor == CompressorZstd:
		return "zstd"
	case h.Compressor == s.compressor.ID():
		return s.compressor.Name()
	}
	return fmt.Sprintf("%#x", h.Compressor)
}

// ringOrder orders sealing keys as the ring does, then the others.
func ringOrder(st Stats, id string) int {
	if i := slices.Index(st.RingKeys, id); i >= 0 {
		return i
	}
	return len(st.RingKeys) + 1
}
