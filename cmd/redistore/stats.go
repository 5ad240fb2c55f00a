package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"time"

	"github.com/redisession/redistore"
)

var statsCommand = &command{
	name:    "stats",
	summary: "count the sessions and sample how Redis stores them",
	setup:   setupStats,
}

func setupStats(fs *flag.FlagSet, _ *options) func(context.Context, *env, []string) error {
	sample := fs.Int("sample", redistore.DefaultStatsSample, "sample `N` keys for encodings, memory and value sizes")
	asJSON := jsonFlag(fs)
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) > 0 {
			return usageErrorf("stats takes no arguments, got %q", args[0])
		}
		if *sample <= 0 {
			return usageErrorf("--sample %d: sample at least 1 key", *sample)
		}
		store, client, err := e.open(false, nil)
		if err != nil {
			return err
		}
		defer client.Close()
		st, err := store.Stats(ctx, *sample)
		if err != nil {
			return err
		}
		var hintErr error
		if st.Keys == 0 {
			hintErr = e.tell(e.mismatch(ctx, client, store))
		}
		if *asJSON {
			if err := e.printJSON(statsDocument(st)); err != nil {
				return err
			}
			return hintErr
		}
		fmt.Fprint(e.stdout, st)
		fmt.Fprintf(e.stdout, "took %v\n", st.Duration.Round(time.Millisecond))
		return hintErr
	}
}

// statsJSON is the machine-readable form of redistore.Stats. Its field
// names are part of the command's interface: add fields, never rename.
type statsJSON struct {
	Mode      string `json:"mode"`
	Prefix    string `json:"prefix"`
	Keys      int    `json:"keys"`
	Sessions  int    `json:"sessions"`
	OtherKeys int    `json:"other_keys"`
	// UserIndexKeys and UserIndexEntries describe Config.UserKey's index.
	UserIndexKeys    int            `json:"user_index_keys"`
	UserIndexEntries int            `json:"user_index_entries"`
	PerBucket        []barJSON      `json:"per_bucket"`
	Sampled          int            `json:"sampled"`
	Encodings        map[string]int `json:"encodings"`
	// Compressors counts the sampled sessions by compressor ("lz4", "zstd", "none").
	Compressors map[string]int `json:"compressors"`
	// SealedBy counts the sampled sessions by the fingerprint of the key
	// that sealed them ("clear": stored in clear); RingKeys are the
	// fingerprints of $REDISTORE_ENCRYPTION_KEYS, the sealing key first.
	SealedBy map[string]int `json:"sealed_by"`
	RingKeys []string       `json:"ring_keys"`
	// BytesPerSession is 0 where the server lacks MEMORY USAGE.
	BytesPerSession float64 `json:"bytes_per_session"`
	ValueBytes      float64 `json:"value_bytes"`
	MaxValueBytes   int     `json:"max_value_bytes"`
	ExpiredShare    float64 `json:"expired_share"`
	LegacyKeys      int     `json:"legacy_keys"`
	// ListpackEntries is 0 where the server refuses CONFIG GET.
	ListpackEntries int      `json:"listpack_entries"`
	Warnings        []string `json:"warnings"`
	DurationMS      float64  `json:"duration_ms"`
}

// barJSON is one bar of the sessions-per-bucket histogram: Buckets buckets
// hold Min to Max sessions. Max is null for the open-ended last bar.
type barJSON struct {
	Min     int  `json:"min"`
	Max     *int `json:"max"`
	Buckets int  `json:"buckets"`
}

func statsDocument(st redistore.Stats) statsJSON {
	doc := statsJSON{
		Mode:             st.Mode.String(),
		Prefix:           st.Prefix,
		Keys:             st.Keys,
		Sessions:         st.Sessions,
		OtherKeys:        st.OtherKeys,
		UserIndexKeys:    st.UserIndexKeys,
		UserIndexEntries: st.UserIndexEntries,
		PerBucket:        []barJSON{},
		Sampled:          st.Sampled,
		Encodings:        st.Encodings,
		Compressors:      st.Compressors,
		SealedBy:         st.SealedBy,
		RingKeys:         append([]string{}, st.RingKeys...),
		BytesPerSession:  st.BytesPerSession,
		ValueBytes:       st.ValueBytes,
		MaxValueBytes:    st.MaxValueBytes,
		ExpiredShare:     st.Expired,
		LegacyKeys:       st.LegacyKeys,
		ListpackEntries:  st.ListpackEntries,
		Warnings:         append([]string{}, st.Warnings...),
		DurationMS:       float64(st.Duration.Microseconds()) / 1000,
	}
	if doc.Encodings == nil {
		doc.Encodings = map[string]int{}
	}
	if doc.Compressors == nil {
		doc.Compressors = map[string]int{}
	}
	if doc.SealedBy == nil {
		doc.SealedBy = map[string]int{}
	}
	for _, b := range st.PerBucket {
		bar := barJSON{Min: b.Min, Buckets: b.Buckets}
		if b.Max != math.MaxInt { // the last bar has no bound
			hi := b.Max
			bar.Max = &hi
		}
		doc.PerBucket = append(doc.PerBucket, bar)
	}
	return doc
}
