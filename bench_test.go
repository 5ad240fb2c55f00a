package redistore

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/rueidis"
	"github.com/redisession/redistore/internal/envelope"
)

var sweepSessions = flag.Int("sessions", 1_000_000, "sessions for BenchmarkSweepMillion")

// sessionValues returns Values of about size bytes once gob-encoded: ten
// entries, alternating strings and ints, as in the comparison program.
func sessionValues(size int) map[any]any {
	v := map[any]any{}
	per := max(size/10-12, 1)
	for i := 0; i < 10; i++ {
		if i%2 == 0 {
			v[fmt.Sprintf("field%d", i)] = strings.Repeat(string(rune('a'+i)), per)
		} else {
			v[fmt.Sprintf("field%d", i)] = i * 1000003
		}
	}
	return v
}

func BenchmarkSerializers(b *testing.B) {
	for _, size := range []int{150, 1024, 8192} {
		values := sessionValues(size)
		for _, ser := range []struct {
			name string
			s    Serializer
		}{{"compact", CompactSerializer{}}, {"gob", GobSerializer{}}, {"json", JSONSerializer{}}} {
			enc, err := ser.s.Encode(nil, values)
			noErr(b, err)
			b.Run(fmt.Sprintf("%s/%dB/encode", ser.name, size), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(enc)))
				buf := make([]byte, 0, 2*len(enc))
				for b.Loop() {
					buf, _ = ser.s.Encode(buf[:0], values)
				}
			})
			b.Run(fmt.Sprintf("%s/%dB/decode", ser.name, size), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(enc)))
				data := string(enc)
				bi := ser.s.(builtin)
				for b.Loop() {
					m := make(map[any]any, 10)
					if err := bi.decodeString(data, m); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkEnvelope(b *testing.B) {
	for _, size := range []int{1024, 8192} {
		payload, _ := CompactSerializer{}.Encode(nil, sessionValues(size))
		env := string(envelope.Append(nil, payload, envelope.CodecCompact, envelope.LZ4{}, DefaultCompressMinLength, false, envelope.Meta{}))
		b.Run(fmt.Sprintf("seal/%dB", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			buf := make([]byte, 0, 2*len(payload))
			for b.Loop() {
				buf = envelope.Append(buf[:0], payload, envelope.CodecCompact, envelope.LZ4{}, DefaultCompressMinLength, false, envelope.Meta{})
			}
		})
		b.Run(fmt.Sprintf("open/%dB", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if _, err := envelope.Open(env, DefaultMaxLength, nil, nil, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchTarget is the real redis-server when there is one, miniredis
// otherwise (whose figures say little about Redis).
func benchTarget(b *testing.B) *target {
	if _, err := exec.LookPath("redis-server"); err != nil {
		b.Log("redis-server not found: measuring against miniredis")
		return newMiniTarget(b)
	}
	srv := installations(b)[0].server(b)
	c, err := NewClient("redis://" + srv.Addr)
	noErr(b, err)
	b.Cleanup(c.Close)
	return &target{client: c, addr: srv.Addr, prefix: randomPrefix()}
}

// BenchmarkStore measures the store's own requests, one at a time and in
// parallel, each goroutine with a 1 KB session of its own: Get alone, Get +
// Save of a changed session, and Get + Save of an unchanged one.
// server-µs/request is the redis-server's CPU time (INFO cpu) per request,
// on the real server.
func BenchmarkStore(b *testing.B) {
	tg := benchTarget(b)
	for _, layout := range []struct {
		mode   Mode
		sealed bool
	}{{HashMode, false}, {StringMode, false}, {HashMode, true}, {StringMode, true}} {
		mode, prefix := layout.mode, layout.mode.String()
		cfg := Config{Mode: mode}
		if layout.sealed {
			cfg.EncryptionKeys, prefix = testSealKeys[:1], prefix+"-sealed"
		}
		s := newStore(b, tg, cfg)
		var cookies sync.Map // goroutine's first cookie, so they do not share a session
		cookieFor := func(slot *http.Cookie) *http.Cookie {
			if slot != nil {
				return slot
			}
			br := newBrowser()
			sess, r := br.get(b, s, "sid")
			for k, v := range sessionValues(1024) {
				sess.Values[k] = v
			}
			br.save(b, s, r, sess)
			c := br.cookies["sid"]
			cookies.Store(c.Value, c)
			return c
		}
		run := func(name string, save, change bool) {
			b.Run(prefix+"/"+name, func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := 0.0
				if tg.mini == nil {
					cpu0 = serverCPU(b, tg)
				}
				b.RunParallel(func(pb *testing.PB) {
					n := 0
					w := httptest.NewRecorder()
					cookie := cookieFor(nil)
					for pb.Next() {
						r := httptest.NewRequest("GET", "/", nil)
						r.AddCookie(cookie)
						sess, err := s.Get(r, "sid")
						if err != nil || sess.IsNew {
							b.Fatalf("Get: %v (new: %v)", err, sess.IsNew)
						}
						if !save {
							continue
						}
						if change {
							n++
							sess.Values["field1"] = n
						}
						w.Header().Del("Set-Cookie")
						if err := s.Save(r, w, sess); err != nil {
							b.Fatal(err)
						}
					}
				})
				if tg.mini == nil {
					b.ReportMetric((serverCPU(b, tg)-cpu0)*1e6/float64(b.N), "server-µs/request")
				}
			})
		}
		run("get", false, false)
		run("get+save-changed", true, true)
		run("get+save-unchanged", true, false)
	}
}

// commandUsec returns the server's cumulative microseconds and calls of a
// command, from INFO commandstats.
func commandUsec(b *testing.B, tg *target, cmd string) (usec, calls float64) {
	info, err := tg.client.Do(context.Background(), tg.client.B().Info().Section("commandstats").Build()).ToString()
	noErr(b, err)
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_"+cmd+":") {
			continue
		}
		for _, kv := range strings.Split(strings.TrimSpace(strings.SplitN(line, ":", 2)[1]), ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "usec":
				usec, _ = strconv.ParseFloat(v, 64)
			case "calls":
				calls, _ = strconv.ParseFloat(v, 64)
			}
		}
	}
	return usec, calls
}

// BenchmarkHashModeCleaning measures, on the real server, what keeping
// buckets clean costs Redis per request (a Get and a Save of a changed
// session), in buckets of about 15 sessions, as the 65536 default buckets
// hold at a million sessions:
//
//   - get: a Get alone (one HGET);
//   - steady: Get and Save when nothing in the bucket has expired, the usual
//     case: the Save's script checks the session is as loaded and writes;
//   - due: Get and Save when the marker has passed, so the Save's script
//     also scans the bucket (the HSET that sets the marker back is counted);
//   - script: Get and Save with cleaning off, for reference.
//
// script-µs/save is the time the server spent in the Save's script
// (EVALSHA in INFO commandstats, which includes the commands the script
// runs); read-µs/get the time of a Get's HGET.
func BenchmarkHashModeCleaning(b *testing.B) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		b.Skip("needs redis-server")
	}
	tg := benchTarget(b)
	for _, variant := range []string{"get", "steady", "due", "script"} {
		tg.prefix = randomPrefix()
		s := newStore(b, tg, Config{FieldTTL: FieldTTLOff, HashKeyGenerator: func(id string) (string, error) {
			return tg.prefix + id[:3], nil // 4096 buckets
		}})
		withoutCleaning(s, variant == "script")
		browsers := fill(b, s, 4096*15, 3600)
		buckets := make([]string, len(browsers))
		for i, br := range browsers {
			sess, _ := br.get(b, s, "sid")
			loc, _ := s.locate(sess.ID)
			buckets[i] = loc.key
		}
		b.Run(variant, func(b *testing.B) {
			e0, _ := commandUsec(b, tg, "evalsha")
			h0, hc0 := commandUsec(b, tg, "hget")
			i := 0
			for b.Loop() {
				br := browsers[i%len(browsers)]
				if variant == "due" {
					tg.do(b, "HSET", buckets[i%len(browsers)], "", "\x00\x00\x00\x00")
				}
				i++
				sess, r := br.get(b, s, "sid")
				if variant == "get" {
					continue
				}
				sess.Values["n"] = fmt.Sprint(variant, i)
				noErr(b, s.Save(r, httptest.NewRecorder(), sess))
			}
			e1, _ := commandUsec(b, tg, "evalsha")
			h1, hc1 := commandUsec(b, tg, "hget")
			if variant == "get" {
				b.ReportMetric((h1-h0)/(hc1-hc0), "read-µs/get")
			} else {
				b.ReportMetric((e1-e0)/float64(i), "script-µs/save")
			}
		})
	}
}

// serverCPU returns the CPU seconds the server has used, from INFO cpu.
func serverCPU(b *testing.B, tg *target) float64 {
	info, err := tg.client.Do(context.Background(), tg.client.B().Info().Section("cpu").Build()).ToString()
	noErr(b, err)
	total := 0.0
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return total
}

// BenchmarkSweepMillion times one full Sweep over a million sessions in the
// 65536 default buckets on a real redis-server (-sessions to change the
// count), a tenth of them expired, and reports the server's CPU time for
// it. The sessions are written straight into the buckets, in the store's
// layout, to keep the setup short; the server is one of the test's own.
//
//	go test -run '^$' -bench SweepMillion -benchtime 1x .
func BenchmarkSweepMillion(b *testing.B) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		b.Skip("needs redis-server")
	}
	tg := benchTarget(b)
	s := newStore(b, tg, Config{})
	payload, _ := CompactSerializer{}.Encode(nil, sessionValues(150))
	env := string(envelope.Append(nil, payload, envelope.CodecCompact, envelope.LZ4{}, DefaultCompressMinLength, false, envelope.Meta{}))
	now := tg.now().Unix()
	ctx := context.Background()
	cmds := make(rueidis.Commands, 0, 1000)
	for i := 0; i < *sweepSessions; i++ {
		loc, err := s.locate(newID())
		noErr(b, err)
		exp := now + 3600
		if i%10 == 0 {
			exp = now - 10
		}
		var e [4]byte
		binary.BigEndian.PutUint32(e[:], uint32(exp))
		cmds = append(cmds, tg.client.B().Hset().Key(loc.key).FieldValue().FieldValue(loc.field, string(e[:])+env).Build())
		if len(cmds) == cap(cmds) || i == *sweepSessions-1 {
			for _, r := range tg.client.DoMulti(ctx, cmds...) {
				noErr(b, r.Error())
			}
			cmds = cmds[:0]
		}
	}
	b.ResetTimer()
	for b.Loop() {
		cpu := serverCPU(b, tg)
		st, err := s.Sweep(ctx)
		noErr(b, err)
		b.ReportMetric(serverCPU(b, tg)-cpu, "server-cpu-s")
		b.ReportMetric(float64(st.Buckets), "buckets")
		b.ReportMetric(float64(st.Removed), "removed")
	}
}

// compressiblePayload is a serialized session of about size bytes whose
// strings are words (a cart, a wizard's answers); randomPayload's are random
// letters and digits, as in the comparison program's default.
func benchPayload(size int, words bool) []byte {
	vocabulary := strings.Fields("cart item order account settings theme dark light language english page home profile admin editor viewer flash message saved quantity price total shipping address")
	v := map[any]any{}
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	for i := 0; ; i++ {
		var sb strings.Builder
		for sb.Len() < 90 {
			if words {
				sb.WriteString(vocabulary[rng.IntN(len(vocabulary))] + " ")
			} else {
				sb.WriteByte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[rng.IntN(62)])
			}
		}
		v["k"+strconv.Itoa(i)] = sb.String()
		if b, _ := (CompactSerializer{}).Encode(nil, v); len(b) >= size {
			return b
		}
	}
}

// testStoreDecompress is the decompressor of a store with the default
// compressor and MaxLength maxLength.
func testStoreDecompress(t testing.TB, maxLength int) envelope.Decompressor {
	t.Helper()
	s := &Store{compressor: LZ4(), zstd: envelope.NewZstdDecoder(maxLength)}
	return s.decompress
}

// BenchmarkCompressors measures each compressor on 1, 8 and 32 KB
// sessions, compressible and random: encode and decode time per session,
// and stored bytes (stored-B/op: the envelope as Redis keeps it).
func BenchmarkCompressors(b *testing.B) {
	zf, _ := Zstd(ZstdFastest)
	zb, _ := Zstd(ZstdBetter)
	comps := []struct {
		name string
		c    Compressor
		min  int
	}{{"none", LZ4(), -1}, {"lz4", LZ4(), 0}, {"zstd-fastest", zf, 0}, {"zstd-better", zb, 0}}
	dec := testStoreDecompress(b, DefaultMaxLength)
	for _, kind := range []string{"text", "random"} {
		for _, size := range []int{1 << 10, 8 << 10, 32 << 10} {
			payload := benchPayload(size, kind == "text")
			for _, c := range comps {
				env := string(envelope.Append(nil, payload, envelope.CodecCompact, c.c, c.min, false, envelope.Meta{}))
				name := fmt.Sprintf("%s/%dKB/%s", kind, size>>10, c.name)
				b.Run(name+"/encode", func(b *testing.B) {
					b.SetBytes(int64(len(payload)))
					buf := make([]byte, 0, 2*len(payload))
					for b.Loop() {
						buf = envelope.Append(buf[:0], payload, envelope.CodecCompact, c.c, c.min, false, envelope.Meta{})
					}
					b.ReportMetric(float64(len(env)), "stored-B/op")
				})
				b.Run(name+"/decode", func(b *testing.B) {
					b.SetBytes(int64(len(payload)))
					for b.Loop() {
						if _, err := envelope.Open(env, DefaultMaxLength, dec, nil, nil); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
