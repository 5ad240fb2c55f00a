package redistoreotel_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gorilla/sessions"
	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/redistoreotel"
)

// fixture is a store on miniredis observed into an in-memory reader and
// span recorder.
type fixture struct {
	store  *redistore.Store
	mini   *miniredis.Miniredis
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
}

func newFixture(t *testing.T, mode redistore.Mode, opts ...redistoreotel.Option) *fixture {
	t.Helper()
	f := &fixture{mini: miniredis.RunT(t), reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{f.mini.Addr()}, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	obs, err := redistoreotel.New(append([]redistoreotel.Option{
		redistoreotel.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(f.reader))),
		redistoreotel.WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(f.spans))),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	f.store, err = redistore.New(redistore.Config{Client: c, KeyPairs: [][]byte{[]byte("0123456789abcdef0123456789abcdef")},
		Mode: mode, Observer: obs, UserKey: "user"})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// request runs one request: Get, then fn, then Save unless fn returns
// false. It returns the cookie the response set (or the one given).
func (f *fixture) request(t *testing.T, cookie *http.Cookie, fn func(*sessions.Session) bool) (*http.Cookie, error) {
	t.Helper()
	r := httptest.NewRequest("GET", "/", nil)
	if cookie != nil {
		r.AddCookie(cookie)
	}
	s, _ := f.store.Get(r, "sid")
	if fn != nil && !fn(s) {
		return cookie, nil
	}
	w := httptest.NewRecorder()
	err := f.store.Save(r, w, s)
	if cs := w.Result().Cookies(); len(cs) > 0 {
		cookie = cs[0]
	}
	return cookie, err
}

func (f *fixture) metrics(t *testing.T) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := f.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != redistoreotel.ScopeName {
			t.Fatalf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// count returns the number of recordings of the duration histogram with
// the given attributes (exactly those).
func count(t *testing.T, ms map[string]metricdata.Metrics, attrs ...attribute.KeyValue) uint64 {
	t.Helper()
	want := attribute.NewSet(attrs...)
	h, ok := ms["redistore.operation.duration"].Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("redistore.operation.duration is %T", ms["redistore.operation.duration"].Data)
	}
	for _, dp := range h.DataPoints {
		if dp.Attributes.Equals(&want) {
			return dp.Count
		}
	}
	return 0
}

func op(operation, mode, outcome string, errorType ...string) []attribute.KeyValue {
	kv := []attribute.KeyValue{redistoreotel.KeyOperation.String(operation), redistoreotel.KeyMode.String(mode), redistoreotel.KeyOutcome.String(outcome)}
	for _, e := range errorType {
		kv = append(kv, redistoreotel.KeyErrorType.String(e))
	}
	return kv
}

// TestMetrics drives each outcome and checks the data points it produced.
func TestMetrics(t *testing.T) {
	for _, mode := range []redistore.Mode{redistore.HashMode, redistore.StringMode} {
		t.Run(mode.String(), func(t *testing.T) {
			f := newFixture(t, mode)
			m := mode.String()
			cookie, err := f.request(t, nil, func(s *sessions.Session) bool {
				s.Values["user"] = "alice"
				s.Values["cart"] = strings.Repeat("an item, ", 100) // compressible
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			f.request(t, cookie, nil) // unchanged: skipped
			f.request(t, cookie, func(s *sessions.Session) bool { s.Values["n"] = 1; return true })

			// Two requests at once: the later merges.
			ra, rb := httptest.NewRequest("GET", "/", nil), httptest.NewRequest("GET", "/", nil)
			ra.AddCookie(cookie)
			rb.AddCookie(cookie)
			a, _ := f.store.Get(ra, "sid")
			b, _ := f.store.Get(rb, "sid")
			a.Values["a"] = 1
			b.Values["b"] = 2
			if err := f.store.Save(ra, httptest.NewRecorder(), a); err != nil {
				t.Fatal(err)
			}
			if err := f.store.Save(rb, httptest.NewRecorder(), b); err != nil {
				t.Fatal(err)
			}

			// A tampered cookie, then a logout with a request in flight.
			bad := *cookie
			bad.Value = "x" + bad.Value
			f.request(t, &bad, func(*sessions.Session) bool { return false })
			rl := httptest.NewRequest("GET", "/", nil)
			rl.AddCookie(cookie)
			late, _ := f.store.Get(rl, "sid")
			if _, err := f.request(t, cookie, func(s *sessions.Session) bool { s.Options.MaxAge = -1; return true }); err != nil {
				t.Fatal(err)
			}
			late.Values["x"] = 1
			if err := f.store.Save(rl, httptest.NewRecorder(), late); !errors.Is(err, redistore.ErrEnded) {
				t.Fatalf("late Save: %v", err)
			}
			f.request(t, cookie, func(*sessions.Session) bool { return false }) // the ended session: a miss
			if _, err := f.store.UserSessions(context.Background(), "alice"); err != nil {
				t.Fatal(err)
			}
			if mode == redistore.HashMode {
				if _, err := f.store.Sweep(context.Background()); err != nil {
					t.Fatal(err)
				}
			}

			ms := f.metrics(t)
			for _, c := range []struct {
				what  string
				attrs []attribute.KeyValue
				want  uint64
			}{
				{"Get without a cookie", op("get", m, "new"), 1},
				{"Get of a stored session", op("get", m, "hit"), 6},
				{"Get of an ended session", op("get", m, "miss"), 1},
				{"Get with a tampered cookie", op("get", m, "error", "invalid_cookie"), 1},
				{"Save of new and changed sessions", op("save", m, "written"), 4},
				{"Save unchanged", op("save", m, "skipped"), 1},
				{"logout", op("save", m, "deleted"), 1},
				{"Save of an ended session", op("save", m, "ended", "ended"), 1},
				{"UserSessions", op("user_sessions", m, "done"), 1},
			} {
				if got := count(t, ms, c.attrs...); got != c.want {
					t.Errorf("%s: %d recordings, want %d", c.what, got, c.want)
				}
			}
			if mode == redistore.HashMode {
				if got := count(t, ms, op("sweep", m, "done")...); got != 1 {
					t.Errorf("Sweep: %d recordings", got)
				}
				if _, ok := ms["redistore.sweep.buckets"]; !ok {
					t.Error("no redistore.sweep.buckets")
				}
			}
			merges := ms["redistore.save.merges"].Data.(metricdata.Sum[int64])
			if len(merges.DataPoints) != 1 || merges.DataPoints[0].Value != 1 {
				t.Errorf("merges: %+v", merges.DataPoints)
			}
			for _, name := range []string{"redistore.session.serialized.size", "redistore.session.stored.size"} {
				h := ms[name].Data.(metricdata.Histogram[int64])
				var n uint64
				for _, dp := range h.DataPoints {
					n += dp.Count
				}
				if n != 10 { // 6 hits and 4 writes
					t.Errorf("%s: %d recordings, want 10", name, n)
				}
				if ms[name].Unit != "By" {
					t.Errorf("%s unit %q", name, ms[name].Unit)
				}
			}
			if u := ms["redistore.operation.duration"].Unit; u != "s" {
				t.Errorf("duration unit %q", u)
			}
		})
	}
}

// TestSpans: each operation is one span, a child of the request's, with
// its attributes, and an error status on failure; no span holds an ID.
func TestSpans(t *testing.T) {
	f := newFixture(t, redistore.HashMode, redistoreotel.WithoutMetrics())
	parentTP := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(f.spans))
	ctx, parent := parentTP.Tracer("test").Start(context.Background(), "request")
	r := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
	s, _ := f.store.Get(r, "sid")
	s.Values["user"] = "alice"
	w := httptest.NewRecorder()
	if err := f.store.Save(r, w, s); err != nil {
		t.Fatal(err)
	}
	id := s.ID
	cookie := w.Result().Cookies()[0]
	bad := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
	bad.AddCookie(&http.Cookie{Name: "sid", Value: "x" + cookie.Value})
	f.store.Get(bad, "sid")
	parent.End()

	ended := f.spans.Ended()
	var names []string
	for _, sp := range ended {
		names = append(names, sp.Name())
		for _, kv := range sp.Attributes() {
			if strings.Contains(kv.Value.Emit(), id) || strings.Contains(kv.Value.Emit(), cookie.Value) {
				t.Fatalf("span %s holds the session ID or cookie", sp.Name())
			}
		}
		if sp.Name() == "request" {
			continue
		}
		if sp.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("%s is not a child of the request's span", sp.Name())
		}
		if !sp.EndTime().After(sp.StartTime()) && sp.EndTime() != sp.StartTime() {
			t.Errorf("%s ends before it starts", sp.Name())
		}
	}
	want := "redistore.get,redistore.save,redistore.get,request"
	if strings.Join(names, ",") != want {
		t.Fatalf("spans %q, want %q", names, want)
	}
	if st := ended[2].Status(); st.Code != codes.Error || st.Description != "invalid_cookie" {
		t.Errorf("failed Get's status: %+v", st)
	}
	if st := ended[1].Status(); st.Code == codes.Error {
		t.Errorf("Save's status: %+v", st)
	}
	if d := ended[1].EndTime().Sub(ended[1].StartTime()); d <= 0 || d > 5*time.Second {
		t.Errorf("Save span lasted %v", d)
	}
}
