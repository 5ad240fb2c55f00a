// Package redistoreotel reports what a redistore session store does as
// OpenTelemetry metrics and spans. It is a module of its own, so that the
// redistore module does not depend on OpenTelemetry.
//
//	obs, err := redistoreotel.New() // the global MeterProvider and TracerProvider
//	store, err := redistore.New(redistore.Config{Client: client, KeyPairs: keys, Observer: obs})
//
// Metrics (attributes: redistore.operation, redistore.mode,
// redistore.outcome, and error.type on failures; never a session ID, a
// cookie, a value or, unless Config.ObserveUserIDs, a user):
//
//	redistore.operation.duration      histogram, s   every Get, Save, Delete, Sweep and user method
//	redistore.session.serialized.size histogram, By  sessions loaded (get) and written (save), serialized
//	redistore.session.stored.size     histogram, By  the same, as stored in Redis (after compression)
//	redistore.save.merges             counter        merges of concurrent changes before a Save wrote
//	redistore.sweep.removed           counter        expired sessions a Sweep deleted
//	redistore.sweep.buckets           counter        buckets a Sweep visited
//
// Spans are named "redistore.get", "redistore.save", ...: children of the
// span in the operation's context, with the same attributes, and an error
// status on failure. A Get or Save is one span; with rueidisotel's client,
// its Redis commands are spans of their own beside it.
package redistoreotel

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/redisession/redistore"
)

// ScopeName is the instrumentation scope of the meter and the tracer.
const ScopeName = "github.com/redisession/redistore/redistoreotel"

// Attribute keys.
const (
	KeyOperation = attribute.Key("redistore.operation")
	KeyMode      = attribute.Key("redistore.mode")
	KeyOutcome   = attribute.Key("redistore.outcome")
	KeyErrorType = attribute.Key("error.type")
	KeyMerges    = attribute.Key("redistore.merges")
	KeySessions  = attribute.Key("redistore.sessions")
	KeyUser      = attribute.Key("redistore.user")
)

// Option configures New.
type Option func(*config)

type config struct {
	meters  metric.MeterProvider
	tracers trace.TracerProvider
	metrics bool
	spans   bool
}

// WithMeterProvider sets the MeterProvider (default: otel.GetMeterProvider()).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.meters = mp }
}

// WithTracerProvider sets the TracerProvider (default: otel.GetTracerProvider()).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tracers = tp }
}

// WithoutMetrics records spans only.
func WithoutMetrics() Option { return func(c *config) { c.metrics = false } }

// WithoutSpans records metrics only.
func WithoutSpans() Option { return func(c *config) { c.spans = false } }

// Observer is a redistore.Observer that records metrics and spans.
type Observer struct {
	tracer trace.Tracer // nil: no spans

	duration   metric.Float64Histogram // nil: no metrics
	serialized metric.Int64Histogram
	stored     metric.Int64Histogram
	merges     metric.Int64Counter
	removed    metric.Int64Counter
	buckets    metric.Int64Counter
}

var _ redistore.Observer = (*Observer)(nil)

// New returns an Observer for redistore.Config.Observer.
func New(opts ...Option) (*Observer, error) {
	c := &config{metrics: true, spans: true}
	for _, o := range opts {
		o(c)
	}
	if c.meters == nil {
		c.meters = otel.GetMeterProvider()
	}
	if c.tracers == nil {
		c.tracers = otel.GetTracerProvider()
	}
	o := &Observer{}
	if c.spans {
		o.tracer = c.tracers.Tracer(ScopeName)
	}
	if !c.metrics {
		return o, nil
	}
	m := c.meters.Meter(ScopeName)
	var err error
	if o.duration, err = m.Float64Histogram("redistore.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of the session store's operations: Get, Save, Delete, Sweep and the user methods."),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)); err != nil {
		return nil, fmt.Errorf("redistoreotel: %w", err)
	}
	sizes := metric.WithExplicitBucketBoundaries(64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
	if o.serialized, err = m.Int64Histogram("redistore.session.serialized.size", metric.WithUnit("By"),
		metric.WithDescription("Size of the sessions loaded and written, serialized."), sizes); err != nil {
		return nil, fmt.Errorf("redistoreotel: %w", err)
	}
	if o.stored, err = m.Int64Histogram("redistore.session.stored.size", metric.WithUnit("By"),
		metric.WithDescription("Size of the sessions loaded and written, as stored in Redis (after compression)."), sizes); err != nil {
		return nil, fmt.Errorf("redistoreotel: %w", err)
	}
	if o.merges, err = m.Int64Counter("redistore.save.merges", metric.WithUnit("{merge}"),
		metric.WithDescription("Times a Save merged its changes into what concurrent requests had stored.")); err != nil {
		return nil, fmt.Errorf("redistoreotel: %w", err)
	}
	if o.removed, err = m.Int64Counter("redistore.sweep.removed", metric.WithUnit("{session}"),
		metric.WithDescription("Expired sessions deleted by Sweep.")); err != nil {
		return nil, fmt.Errorf("redistoreotel: %w", err)
	}
	if o.buckets, err = m.Int64Counter("redistore.sweep.buckets", metric.WithUnit("{bucket}"),
		metric.WithDescription("Buckets visited by Sweep.")); err != nil {
		return nil, fmt.Errorf("redistoreotel: %w", err)
	}
	return o, nil
}

// Observe records one event.
func (o *Observer) Observe(ctx context.Context, e redistore.Event) {
	attrs := make([]attribute.KeyValue, 0, 5)
	attrs = append(attrs, KeyOperation.String(e.Op.String()), KeyMode.String(e.Mode.String()), KeyOutcome.String(e.Outcome.String()))
	if e.Error != redistore.ErrorNone {
		attrs = append(attrs, KeyErrorType.String(e.Error.String()))
	}
	if o.duration != nil {
		set := metric.WithAttributeSet(attribute.NewSet(attrs...))
		o.duration.Record(ctx, e.Duration.Seconds(), set)
		if e.StoredBytes > 0 {
			sizeSet := metric.WithAttributeSet(attribute.NewSet(attrs[:3]...))
			o.serialized.Record(ctx, int64(e.SerializedBytes), sizeSet)
			o.stored.Record(ctx, int64(e.StoredBytes), sizeSet)
		}
		if e.Merges > 0 {
			o.merges.Add(ctx, int64(e.Merges), set)
		}
		if e.Op == redistore.OpSweep {
			modeSet := metric.WithAttributeSet(attribute.NewSet(attrs[1]))
			o.removed.Add(ctx, int64(e.Removed), modeSet)
			o.buckets.Add(ctx, int64(e.Buckets), modeSet)
		}
	}
	if o.tracer != nil {
		o.span(ctx, e, attrs)
	}
}

// span records the operation as a span that began at e.Start.
func (o *Observer) span(ctx context.Context, e redistore.Event, attrs []attribute.KeyValue) {
	if e.Merges > 0 {
		attrs = append(attrs, KeyMerges.Int(e.Merges))
	}
	switch e.Op {
	case redistore.OpSweep, redistore.OpUserSessions, redistore.OpDeleteUserSessions, redistore.OpSessions, redistore.OpDeleteSessions:
		attrs = append(attrs, KeySessions.Int(e.Sessions))
	}
	if e.User != "" {
		attrs = append(attrs, KeyUser.String(e.User))
	}
	_, span := o.tracer.Start(ctx, "redistore."+e.Op.String(), trace.WithTimestamp(e.Start),
		trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	if e.Outcome == redistore.OutcomeError || e.Outcome == redistore.OutcomeConflict {
		span.SetStatus(codes.Error, e.Error.String())
	}
	span.End(trace.WithTimestamp(e.Start.Add(e.Duration)))
}
