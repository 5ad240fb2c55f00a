package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/internal/topology"
)

var doctorCommand = &command{
	name:    "doctor",
	summary: "check the Redis server's configuration for sessions; exit status 1 when a check fails",
	setup:   setupDoctor,
}

func setupDoctor(fs *flag.FlagSet, _ *options) func(context.Context, *env, []string) error {
	// The largest value matters here, so the sample is larger than stats's.
	sample := fs.Int("sample", 1000, "sample `N` keys for value sizes and encodings")
	asJSON := jsonFlag(fs)
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) > 0 {
			return usageErrorf("doctor takes no arguments, got %q", args[0])
		}
		if *sample <= 0 {
			return usageErrorf("--sample %d: sample at least 1 key", *sample)
		}
		var cfg redistore.Config
		store, client, err := e.open(false, func(c *redistore.Config) { cfg = *c })
		if err != nil {
			return err
		}
		defer client.Close()
		if err := client.Do(ctx, client.B().Ping().Build()).Error(); err != nil {
			return fmt.Errorf("the server does not answer PING: %w", err)
		}
		d := gather(ctx, client, store, cfg, *sample, e)
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted before the checks were done: %w", ctx.Err())
		}
		findings := make([]finding, len(checks))
		for i, check := range checks {
			findings[i] = check(d)
		}
		failed := 0
		for _, f := range findings {
			if !*asJSON {
				fmt.Fprintf(e.stdout, "%-4s  %-25s  %s\n", f.status, f.check, f.msg)
			}
			if f.status == statusFail {
				failed++
			}
		}
		if *asJSON {
			if err := e.printJSON(doctorDocument(findings)); err != nil {
				return err
			}
		}
		if failed > 0 {
			return fmt.Errorf("%d of %d checks failed", failed, len(findings))
		}
		return nil
	}
}

const (
	statusOK   = "OK"
	statusWarn = "WARN"
	statusFail = "FAIL"
)

type finding struct {
	status, check, msg string
}

func judged(status, check, format string, args ...any) finding {
	return finding{status, check, fmt.Sprintf(format, args...)}
}

// doctorJSON is what doctor --json prints: the findings, in the order the
// text prints them. The exit status is the text's: 1 when a check fails.
// Its field names are part of the command's interface: add fields, never
// rename.
type doctorJSON struct {
	Findings []findingJSON `json:"findings"`
}

// findingJSON is one check's finding. Status is "OK", "WARN" or "FAIL".
type findingJSON struct {
	Check   string `json:"check"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func doctorDocument(findings []finding) doctorJSON {
	doc := doctorJSON{Findings: make([]findingJSON, 0, len(findings))}
	for _, f := range findings {
		doc.Findings = append(doc.Findings, findingJSON{Check: f.check, Status: f.status, Message: f.msg})
	}
	return doc
}

// checks judge the facts, one finding each, in the order doctor prints them.
var checks = []func(*facts) finding{
	checkServer,
	checkScripting,
	checkFieldExpiry,
	checkListpackValue,
	checkListpackEntries,
	checkEviction,
	checkPersistence,
	checkDatabase,
	checkPrefix,
}

// configNames are the settings the checks read, asked for once.
var configNames = []string{
	"hash-max-listpack-value", "hash-max-ziplist-value",
	"hash-max-listpack-entries", "hash-max-ziplist-entries",
	"maxmemory-policy", "save",
}

// configReply is what CONFIG GET said of one setting.
type configReply struct {
	value string
	found bool
	err   error
}

// facts is what doctor learns of the server and the store, gathered once;
// the checks judge it without sending anything.
type facts struct {
	prefix  string
	keyType string // the Redis type of the layout's keys (Store.KeyType)
	mode    string // the store's mode, for messages

	config  map[string]configReply
	hexpire bool // the server knows HEXPIRE
	cas     bool // the server knows DELIFEQ (compare-and-set for strings, Valkey 8.1+)
	// scriptErr is the server's answer to a script that does nothing
	// (nil: it runs scripts).
	scriptErr error

	info    map[string]string // INFO server, memory, persistence and stats
	infoErr error

	stats    redistore.Stats
	statsErr error

	// The keys under the prefix, from a SCAN of their names.
	underPrefix int
	indexKeys   int // user index keys (Config.UserKey) among them
	// prefixHint, with no key under the prefix, is a prefix under which
	// keys have the shape of sessions: likely the store's, if the flag is
	// wrong.
	prefixHint string
	misnamed   int // not named as the layout names its keys
	// Of the first maxClassified misnamed keys: how many have the layout's
	// type (buckets a sweep would clean, or strings read as sessions) and
	// how many another, with an example of each.
	misnamedSame, misnamedOther int
	exampleSame, exampleOther   string
	scanErr                     error

	dbsize    int64 // after the SCAN
	churn     int64 // how much DBSIZE moved during the SCAN
	dbsizeErr error
}

// gather asks the server everything the checks need.
func gather(ctx context.Context, client rueidis.Client, store *redistore.Store, cfg redistore.Config, sample int, e *env) *facts {
	d := &facts{prefix: cfg.KeyPrefix, keyType: store.KeyType(), mode: cfg.Mode.String(), info: map[string]string{}, config: map[string]configReply{}}
	for _, section := range []string{"server", "memory", "persistence", "stats"} {
		res, err := client.Do(ctx, client.B().Info().Section(section).Build()).ToString()
		if err != nil {
			d.infoErr = err
			continue
		}
		for _, line := range strings.Split(res, "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.HasPrefix(k, "#") {
				d.info[k] = v
			}
		}
	}
	for _, name := range configNames {
		m, err := client.Do(ctx, client.B().ConfigGet().Parameter(name).Build()).AsStrMap()
		v, found := m[name]
		d.config[name] = configReply{v, found && err == nil, err}
	}
	d.hexpire = hasCommand(ctx, client, d, "HEXPIRE", 7, 4, 9)
	d.cas = hasCommand(ctx, client, d, "DELIFEQ", 99, 0, 9) // Valkey 8.1+; the fallback says 9
	d.scriptErr = client.Do(ctx, client.B().Eval().Script("return 1").Numkeys(0).Build()).Error()
	d.stats, d.statsErr = store.Stats(ctx, sample)
	before, _ := dbsize(ctx, client)

	var misnamed []string
	d.scanErr = redistore.ScanBuckets()(ctx, client, d.prefix, func(keys []string) error {
		d.underPrefix += len(keys)
		for _, k := range keys {
			if store.IsIndexKey(k) {
				d.indexKeys++
				continue
			}
			if !store.OwnsKey(k) {
				d.misnamed++
				if len(misnamed) < maxClassified {
					misnamed = append(misnamed, k)
				}
			}
		}
		return nil
	})
	if d.scanErr == nil && d.underPrefix == 0 {
		d.prefixHint = e.likelyPrefix(ctx, client, d.prefix)
	}
	d.dbsize, d.dbsizeErr = dbsize(ctx, client)
	d.churn = max(d.dbsize-before, before-d.dbsize)
	d.classify(ctx, client, misnamed)
	return d
}

// maxClassified bounds the misnamed keys whose TYPE the doctor asks.
const maxClassified = 1000

// classify sorts misnamed keys by whether they have the layout's type.
func (d *facts) classify(ctx context.Context, client rueidis.Client, keys []string) {
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 100)]
		keys = keys[len(batch):]
		cmds := make(rueidis.Commands, len(batch))
		for i, k := range batch {
			cmds[i] = client.B().Type().Key(k).Build()
		}
		for i, res := range client.DoMulti(ctx, cmds...) {
			typ, err := res.ToString()
			switch {
			case err != nil || typ == "none": // gone, or unknown
			case typ == d.keyType:
				d.misnamedSame++
				if d.exampleSame == "" {
					d.exampleSame = batch[i]
				}
			default:
				d.misnamedOther++
				if d.exampleOther == "" {
					d.exampleOther = batch[i]
				}
			}
		}
	}
}

// dbsize sums DBSIZE over the primaries (in Redis Cluster, Nodes lists
// replicas too).
func dbsize(ctx context.Context, client rueidis.Client) (int64, error) {
	nodes, err := topology.Primaries(ctx, client)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, n := range nodes {
		size, err := n.Do(ctx, n.B().Dbsize().Build()).AsInt64()
		if err != nil {
			return 0, fmt.Errorf("DBSIZE: %w", err)
		}
		total += size
	}
	return total, nil
}

// configGet returns what CONFIG GET said of a setting: found is false when
// the server does not know it; err is set when it refuses CONFIG (managed
// services, proxies, a renamed command).
func (d *facts) configGet(name string) (value string, found bool, err error) {
	r := d.config[name]
	return r.value, r.found, r.err
}

// configInt reads the first of names the server knows, as a number.
func (d *facts) configInt(names ...string) (name string, value int, err error) {
	for _, name := range names {
		v, found, err := d.configGet(name)
		if err != nil {
			return name, 0, err
		}
		if found {
			n, err := strconv.Atoi(v)
			if err != nil {
				return name, 0, fmt.Errorf("CONFIG GET %s returned %q", name, v)
			}
			return name, n, nil
		}
	}
	return names[0], 0, fmt.Errorf("the server knows neither %s", strings.Join(names, " nor "))
}

// why says briefly why something could not be read.
func why(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "unknown command"):
		return "CONFIG is disabled on this server"
	case strings.HasPrefix(msg, "NOPERM"):
		return "this user may not run it"
	}
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 80 {
		msg = msg[:80] + "…"
	}
	return msg
}

// serverName returns "Redis" or "Valkey" and the version INFO reports.
func (d *facts) serverName() (name, version string) {
	if strings.EqualFold(d.info["server_name"], "valkey") || d.info["valkey_version"] != "" {
		v := d.info["valkey_version"]
		if v == "" {
			v = d.info["redis_version"]
		}
		return "Valkey", v
	}
	return "Redis", d.info["redis_version"]
}

// versionAtLeast compares a dotted version with major.minor.
func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	ma, err1 := strconv.Atoi(parts[0])
	mi := 0
	var err2 error
	if len(parts) > 1 {
		mi, err2 = strconv.Atoi(parts[1])
	}
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

func checkServer(d *facts) finding {
	const check = "server"
	name, version := d.serverName()
	if version == "" {
		if d.infoErr != nil {
			return judged(statusWarn, check, "could not read the version (INFO: %s): redistore needs Redis 6 or later", why(d.infoErr))
		}
		return judged(statusWarn, check, "INFO server names no version: redistore needs Redis 6 or later, or a server compatible with it")
	}
	desc := name + " " + version
	if m := d.info["redis_mode"]; m != "" {
		desc += ", " + m
	}
	if name == "Redis" && !versionAtLeast(version, 6, 0) {
		return judged(statusWarn, check, "%s: redistore needs Redis 6 or later; upgrade the server", desc)
	}
	return judged(statusOK, check, "%s", desc)
}

// checkScripting: every write of HashMode, and StringMode's writes that
// change a user's index, are Lua scripts; StringMode's other writes use
// compare-and-set where the server has it.
func checkScripting(d *facts) finding {
	const check = "scripting"
	err := d.scriptErr
	switch {
	case err == nil:
		if d.keyType == "string" && d.cas {
			return judged(statusOK, check, "the server runs Lua scripts; StringMode's writes that leave users' indexes alone use its compare-and-set instead (SET IFEQ, DELIFEQ)")
		}
		return judged(statusOK, check, "the server runs Lua scripts, as every write needs")
	case !refusesScripts(err):
		return judged(statusWarn, check, "could not run a script that does nothing (%s): every write of HashMode, and of StringMode where users' indexes change, is a Lua script", why(err))
	case d.keyType == "string" && d.cas:
		return judged(statusWarn, check, "the server refuses Lua scripts (%s): StringMode's writes use compare-and-set (SET IFEQ, DELIFEQ) and work, except where a write changes a user's index (Config.UserKey): those fail with ErrNoScripting. Enable the Lua engine or allow @scripting to the ACL user to use UserKey", why(err))
	case d.keyType == "string":
		return judged(statusFail, check, "the server refuses Lua scripts (%s) and has no compare-and-set for strings (SET IFEQ, Valkey 8.1+): every conditional write fails with ErrNoScripting. Enable the Lua engine (Valkey 9: a build with Lua, or its Lua module loaded) or allow @scripting to the ACL user", why(err))
	}
	return judged(statusFail, check, "the server refuses Lua scripts (%s): every HashMode write fails with ErrNoScripting. Enable the Lua engine (Valkey 9: a build with Lua, or its Lua module loaded) or allow @scripting to the ACL user; or use StringMode without UserKey on a server with SET IFEQ (Valkey 8.1+)", why(err))
}

// refusesScripts reports whether a server's error says it runs no scripts.
func refusesScripts(err error) bool {
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "scripting engine") || strings.Contains(m, "noperm") && (strings.Contains(m, "eval") || strings.Contains(m, "script"))
}

// hasCommand asks the server whether it knows a command, and falls back on
// its version when COMMAND INFO is refused: the Redis and Valkey versions
// that brought it.
func hasCommand(ctx context.Context, client rueidis.Client, d *facts, cmd string, redisMajor, redisMinor, valkeyMajor int) bool {
	arr, err := client.Do(ctx, client.B().CommandInfo().CommandName(cmd).Build()).ToArray()
	if err == nil && len(arr) == 1 {
		return !arr[0].IsNil()
	}
	name, version := d.serverName()
	if name == "Valkey" {
		return versionAtLeast(version, valkeyMajor, 0)
	}
	return versionAtLeast(version, redisMajor, redisMinor)
}

func checkFieldExpiry(d *facts) finding {
	const check = "field expiry"
	if d.keyType != "hash" {
		return judged(statusOK, check, "not needed in StringMode: Redis expires each session's key")
	}
	var msg string
	name, _ := d.serverName()
	switch {
	case d.hexpire && name == "Valkey":
		msg = "HEXPIRE available, but Valkey keeps a hash whose fields have TTLs as a hashtable (it has no listpackex): FieldTTL Auto (the default) sets no field TTLs here, and writes clean their buckets instead; run `redistore sweep` from cron (hourly, say) for buckets nobody writes to. FieldTTLOn would cost about 45 bytes a session (145 against 100 at 1 M sessions of 150 B, hash-max-listpack-value raised)"
	case d.hexpire:
		msg = "HEXPIRE available: with FieldTTL Auto (the default) each session's field gets a TTL (HSET, then HEXPIRE, in the write's script) and Redis removes expired sessions from their buckets itself; buckets with field TTLs are listpackex, kept compact by the same hash-max-listpack-value"
		if n := d.stats.Encodings["listpackex"]; d.statsErr == nil && d.stats.Sampled > 0 && n == 0 && d.stats.Encodings["listpack"] > 0 {
			msg += fmt.Sprintf("; none of the %d sampled buckets has field TTLs: the application runs FieldTTLOff, or an older redistore", d.stats.Sampled)
		}
	default:
		msg = "no HEXPIRE (it needs Redis 7.4+ or Valkey 9+): an expired session stays in its bucket, never served, until a write to the bucket or a sweep removes it; run `redistore sweep` from cron, hourly say"
	}
	if d.statsErr == nil && d.stats.Sampled > 0 && d.stats.Expired > 0.25 {
		return judged(statusWarn, check, "%.0f%% of the sampled sessions have expired and are still stored: run `redistore sweep` (and from cron); %s",
			100*d.stats.Expired, msg)
	}
	return judged(statusOK, check, "%s", msg)
}

// listpackFor suggests a hash-max-listpack-value for values of up to n
// bytes: a quarter more, rounded up to a power of two, at least 1024.
func listpackFor(n int) int {
	v := 1024
	for v < n+n/4 {
		v *= 2
	}
	return v
}

func checkListpackValue(d *facts) finding {
	const check = "hash-max-listpack-value"
	if d.keyType != "hash" {
		return judged(statusOK, check, "not used in StringMode")
	}
	largest, sampled := d.stats.MaxValueBytes, d.stats.Sampled
	if d.statsErr != nil {
		largest, sampled = 0, 0
	}
	hashtables := d.stats.Encodings["hashtable"]
	name, limit, err := d.configInt("hash-max-listpack-value", "hash-max-ziplist-value")
	if err != nil {
		if largest > 0 {
			return judged(statusWarn, check, "could not read it (%s): make sure it is at least %d, above the largest sampled session value (%d B), or buckets become hashtables and HashMode saves no memory",
				why(err), listpackFor(largest), largest)
		}
		return judged(statusWarn, check, "could not read it (%s): make sure it is above your largest session value (1024 suits most), or buckets become hashtables and HashMode saves no memory", why(err))
	}
	already := ""
	server, _ := d.serverName()
	if hashtables > 0 {
		already = fmt.Sprintf("; %d of %d sampled buckets %s hashtables already: a live hashtable stays one, but Redis makes it a listpack again when it loads it (a restart with RDB or AOF persistence, or DEBUG RELOAD), and a bucket that empties or expires starts again as a listpack", hashtables, sampled, isAre(hashtables))
		if server == "Valkey" {
			already += " (unless its fields have TTLs, FieldTTLOn: Valkey keeps those hashes as hashtables whatever this setting)"
		}
	}
	compact := "buckets stay compact listpacks (listpackex with field TTLs)"
	if server == "Valkey" {
		compact = "buckets stay compact listpacks (without field TTLs, which FieldTTL Auto sets none of on Valkey)"
	}
	switch {
	case d.statsErr != nil:
		return judged(statusWarn, check, "%s is %d; could not sample the session values to compare it with (%s): it should be above the largest (1024 suits most)", name, limit, why(d.statsErr))
	case largest == 0:
		return judged(statusOK, check, "%s is %d; no sessions sampled to compare it with (most sessions are longer than 64 B; 1024 suits most)", name, limit)
	case largest > limit:
		cost := ""
		if listpackFor(largest) > 8192 {
			cost = " (listpacks this large make each write to a bucket move more memory; StringMode may suit sessions this big)"
		}
		return judged(statusWarn, check, "%s is %d, but sampled session values reach %d B (%.0f B on average): a bucket holding a longer value turns from a listpack into a hashtable, and HashMode's memory saving is lost%s. Run: redis-cli CONFIG SET %s %d, and put it in redis.conf (or CONFIG REWRITE) so that a restart keeps it%s",
			name, limit, largest, d.stats.ValueBytes, already, name, listpackFor(largest), cost)
	case hashtables > 0:
		return judged(statusWarn, check, "%s is %d, above the largest sampled session value (%d B), so new buckets stay compact listpacks%s. Until then those buckets cost about twice the memory; to convert them now, restart Redis with persistence on (or run DEBUG RELOAD, which blocks the server while it reloads)",
			name, limit, largest, already)
	default:
		return judged(statusOK, check, "%s is %d, above the largest sampled session value (%d B): %s", name, limit, largest, compact)
	}
}

func checkListpackEntries(d *facts) finding {
	const check = "hash-max-listpack-entries"
	if d.keyType != "hash" {
		return judged(statusOK, check, "not used in StringMode")
	}
	fullest, bounded := 0, true // the lower bound of the top histogram bar
	if d.statsErr == nil && len(d.stats.PerBucket) > 0 {
		top := d.stats.PerBucket[len(d.stats.PerBucket)-1]
		fullest = top.Max
		if top.Max == math.MaxInt {
			fullest, bounded = top.Min, false
		}
	}
	span := strconv.Itoa(fullest)
	if !bounded {
		span = "more than " + strconv.Itoa(fullest-1)
	}
	name, limit, err := d.configInt("hash-max-listpack-entries", "hash-max-ziplist-entries")
	if err != nil {
		if fullest <= 512 && bounded {
			return judged(statusOK, check, "could not read it (%s); the fullest buckets hold up to %s sessions, within the default 512", why(err), span)
		}
		return judged(statusWarn, check, "could not read it (%s); the fullest buckets hold %s sessions: make sure it is above that, or they are hashtables", why(err), span)
	}
	if fullest > limit {
		suggest := 512
		for suggest < 2*fullest {
			suggest *= 2
		}
		return judged(statusWarn, check, "%s is %d, but the fullest buckets hold up to %s sessions: those are hashtables and save no memory. Run: redis-cli CONFIG SET %s %d, and put it in redis.conf; or spread sessions over more buckets (Config.Buckets and --buckets; a change logs everyone out)",
			name, limit, span, name, suggest)
	}
	if d.statsErr == nil && d.stats.Keys > 0 {
		if avg := float64(d.stats.Sessions) / float64(d.stats.Keys); avg >= 0.75*float64(limit) {
			return judged(statusWarn, check, "%s is %d, and buckets hold %.0f sessions on average: as sessions grow the buckets become hashtables and save no memory. Use more buckets (Config.Buckets and --buckets; a change logs everyone out), or raise %s",
				name, limit, avg, name)
		}
	}
	return judged(statusOK, check, "%s is %d; the fullest buckets hold up to %s sessions", name, limit, span)
}

func checkEviction(d *facts) finding {
	const check = "maxmemory-policy"
	policy, maxmemory := d.info["maxmemory_policy"], d.info["maxmemory"]
	if policy == "" {
		v, found, err := d.configGet("maxmemory-policy")
		switch {
		case err != nil:
			return judged(statusWarn, check, "could not read it (%s): noeviction, with enough maxmemory, is what sessions need", why(err))
		case !found:
			return judged(statusWarn, check, "the server reports no eviction policy: noeviction, with enough maxmemory, is what sessions need")
		}
		policy = v
	}
	switch {
	case strings.HasPrefix(policy, "allkeys-"):
		return judged(statusWarn, check, "%s evicts any key when memory is full, live sessions included, silently: users are logged out. Run: redis-cli CONFIG SET maxmemory-policy noeviction, give Redis enough maxmemory, and put both in redis.conf; a full Redis then refuses writes (Save returns ErrUnavailable) instead of dropping sessions", policy)
	case strings.HasPrefix(policy, "volatile-"):
		what := "the sessions"
		if d.keyType == "hash" {
			what = "whole buckets of sessions at once"
		}
		return judged(statusOK, check, "%s: every session has a TTL, so when memory is full this evicts %s too, and users are logged out; noeviction with enough maxmemory is preferable, so that a full Redis refuses writes instead", policy, what)
	case policy == "noeviction":
		note := ""
		if maxmemory == "0" {
			note = "; maxmemory is not set, so watch the host's memory"
		}
		return judged(statusOK, check, "noeviction: a full Redis refuses writes (Save returns ErrUnavailable) rather than drop sessions%s", note)
	default:
		return judged(statusWarn, check, "%s is a policy this check does not know: make sure it never evicts sessions (noeviction does not)", policy)
	}
}

func checkPersistence(d *facts) finding {
	const check = "persistence"
	if d.info["aof_enabled"] == "1" {
		if s := d.info["aof_last_write_status"]; s != "" && s != "ok" {
			return judged(statusWarn, check, "AOF is on, but its last write failed (aof_last_write_status:%s): check the disk and the server's log", s)
		}
		return judged(statusOK, check, "AOF is on: sessions survive a restart")
	}
	save, found, err := d.configGet("save")
	switch {
	case err == nil && found && strings.TrimSpace(save) != "":
		if s := d.info["rdb_last_bgsave_status"]; s != "" && s != "ok" {
			return judged(statusWarn, check, "RDB snapshots are on (save %q), but the last one failed (rdb_last_bgsave_status:%s): check the disk and the server's log", save, s)
		}
		return judged(statusOK, check, "RDB snapshots are on (save %q)%s: a restart loses at most the sessions written since the last one", save, d.lastSave())
	case err == nil:
		return judged(statusWarn, check, "neither AOF nor RDB snapshots are on: a restart loses every session and logs everyone out. Run: redis-cli CONFIG SET appendonly yes (or CONFIG SET save \"3600 1 300 100 60 10000\"), and put it in redis.conf")
	default:
		if n, _ := strconv.Atoi(d.info["rdb_saves"]); n > 0 {
			return judged(statusOK, check, "AOF is off and the save configuration could not be read (%s), but the server has taken %d RDB snapshots since it started%s", why(err), n, d.lastSave())
		}
		return judged(statusWarn, check, "AOF is off and the save configuration could not be read (%s): make sure RDB snapshots or AOF are on, or a restart logs everyone out", why(err))
	}
}

// lastSave describes when the last RDB snapshot was taken.
func (d *facts) lastSave() string {
	sec, err := strconv.ParseInt(d.info["rdb_last_save_time"], 10, 64)
	if err != nil || sec <= 0 {
		return ""
	}
	ago := time.Since(time.Unix(sec, 0)).Round(time.Second)
	if ago < 0 {
		return "" // the clocks disagree
	}
	return ", the last " + human(ago) + " ago"
}

func checkDatabase(d *facts) finding {
	const check = "database"
	if d.dbsizeErr != nil || d.scanErr != nil {
		err := d.dbsizeErr
		if err == nil {
			err = d.scanErr
		}
		return judged(statusWarn, check, "could not count the keys (%s)", why(err))
	}
	others := int(d.dbsize) - d.underPrefix
	legacy := ""
	if d.statsErr == nil && d.stats.LegacyKeys > 0 {
		// boj/redistore's sessions, under --legacy-prefix, are the
		// application's too, on their way over.
		others -= d.stats.LegacyKeys
		legacy = fmt.Sprintf(" or boj/redistore's (%d not moved yet)", d.stats.LegacyKeys)
	}
	// DBSIZE and SCAN are not one snapshot: allow for the keys written and
	// removed meanwhile, and for expired keys that DBSIZE still counts and
	// SCAN does not return (INFO's expired_stale_perc estimates them).
	stale, _ := strconv.ParseFloat(d.info["expired_stale_perc"], 64)
	slack := int(d.churn) + int(math.Ceil(float64(d.dbsize)*stale/100))
	if others <= slack {
		return judged(statusOK, check, "%d keys, all under %s%s: the database is the sessions' own", d.dbsize, strconv.Quote(d.prefix), legacy)
	}
	return judged(statusWarn, check, "%d of the %d keys %s not under %s: other applications share the database, so their FLUSHDB or an allkeys eviction takes the sessions with it, and every sweep and stats SCANs their keys too. Give the sessions a database (redis://host/1) or a server of their own",
		others, d.dbsize, isAre(others), strconv.Quote(d.prefix))
}

func checkPrefix(d *facts) finding {
	const check = "key prefix"
	if d.scanErr != nil {
		return judged(statusWarn, check, "could not list the keys under %s (%s)", strconv.Quote(d.prefix), why(d.scanErr))
	}
	layout := "buckets"
	if d.keyType != "hash" {
		layout = "sessions"
	}
	if d.underPrefix == 0 {
		if d.prefixHint != "" {
			return judged(statusWarn, check, "no keys under %s, but keys shaped like sessions under %s: if that is the store's Config.KeyPrefix, pass --prefix %s", strconv.Quote(d.prefix), strconv.Quote(d.prefixHint), strconv.Quote(d.prefixHint))
		}
		return judged(statusOK, check, "no keys under %s: no session stored yet", strconv.Quote(d.prefix))
	}
	if d.statsErr != nil && d.misnamed == 0 {
		return judged(statusWarn, check, "%d keys under %s, all named like %s; could not check their types (%s)", d.underPrefix, strconv.Quote(d.prefix), layout, why(d.statsErr))
	}
	// Stats counts as other both the keys named like the layout's of
	// another type and every misnamed key; the classification of the
	// misnamed ones says which of those have the layout's type.
	otherTypes := max(0, d.stats.OtherKeys-d.misnamed) + d.misnamedOther
	if d.statsErr != nil {
		otherTypes = d.misnamedOther
	}
	if otherTypes == 0 && d.misnamedSame == 0 {
		if d.indexKeys > 0 {
			return judged(statusOK, check, "%d keys under %s: %d %s of a %s-mode store and %d user index keys (Config.UserKey)",
				d.underPrefix, strconv.Quote(d.prefix), d.underPrefix-d.indexKeys, layout, d.mode, d.indexKeys)
		}
		return judged(statusOK, check, "%d keys under %s, all %s of a %s-mode store", d.underPrefix, strconv.Quote(d.prefix), layout, d.mode)
	}
	var parts []string
	if n := otherTypes; n > 0 {
		part := fmt.Sprintf("%d %s not of type %s", n, isAre(n), d.keyType)
		if d.exampleOther != "" {
			part += " (e.g. " + d.example(d.exampleOther) + ")"
		}
		parts = append(parts, part)
	}
	if n := d.misnamedSame; n > 0 {
		noun := d.keyType
		if n != 1 {
			noun += map[string]string{"hash": "es", "string": "s"}[noun]
		}
		parts = append(parts, fmt.Sprintf("%d %s not named like its %s (e.g. %s)", n, noun, layout, d.example(d.exampleSame)))
	}
	risk := "the store and the other writer can break each other's keys (a session saved where another type sits fails with WRONGTYPE)"
	if otherTypes == 0 {
		// Only keys of the layout's type named otherwise: the store reads,
		// counts and sweeps none of them, but the next such key the other
		// writer names like the layout's is taken for one.
		risk = fmt.Sprintf("the store, stats and sweep skip those keys today, but a key the other writer names like the store's %s is read as one (and, for a hash, swept)", layout)
	}
	hint := ""
	if d.stats.Keys == 0 && d.stats.OtherKeys > 0 {
		other := "string"
		if d.keyType != "hash" {
			other = "hash"
		}
		hint = fmt.Sprintf(" (is the store in %s mode? try --mode %s)", other, other)
	}
	status := statusFail
	if otherTypes == 0 {
		status = statusWarn // nothing breaks today
	}
	return judged(status, check, "keys under %s that are not this %s-mode store's (with the default key generators): %s%s. KeyPrefix must be the sessions' alone: %s. Move those keys, or give the store a prefix of its own",
		strconv.Quote(d.prefix), d.mode, strings.Join(parts, ", "), hint, risk)
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// example quotes a key under the prefix for a message, cut to a readable
// length, and, where what follows the prefix could be a session ID (16
// bytes or more, raw bytes or hex digits: a StringMode key of another
// type, say), cut to its first two bytes: the command never prints a
// session ID.
func (d *facts) example(k string) string {
	rest, ok := strings.CutPrefix(k, d.prefix)
	if ok && mayHoldID(rest) {
		return strconv.Quote(d.prefix+rest[:2]) + fmt.Sprintf("… (%d bytes)", len(k))
	}
	if len(k) > 48 {
		return strconv.Quote(k[:48]) + "…"
	}
	return strconv.Quote(k)
}

// mayHoldID reports whether s could hold a session ID: 16 bytes or more,
// with bytes that are not printable ASCII, or hex digits only.
func mayHoldID(s string) bool {
	if len(s) < 16 {
		return false
	}
	hex := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return true
		}
		hex = hex && ('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F')
	}
	return hex
}
