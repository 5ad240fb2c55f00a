package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/redistoreotel"
)

// stdoutInterval is how often -metrics stdout prints.
const stdoutInterval = 10 * time.Second

// metrics sets up what -metrics names: "" or "none" nothing; "stdout" the
// store's metrics printed as JSON every stdoutInterval; "prometheus" a
// /metrics endpoint for Prometheus to scrape, through OpenTelemetry's
// Prometheus exporter. It returns the store's observer (nil for none), the
// handler to serve at /metrics (nil unless prometheus) and a function that
// flushes and stops the exporter.
func metrics(kind string, stdout io.Writer) (redistore.Observer, http.Handler, func(context.Context) error, error) {
	var reader sdkmetric.Reader
	var handler http.Handler
	switch kind {
	case "", "none":
		return nil, nil, func(context.Context) error { return nil }, nil
	case "stdout":
		exp, err := stdoutmetric.New(stdoutmetric.WithWriter(stdout))
		if err != nil {
			return nil, nil, nil, err
		}
		reader = sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(stdoutInterval))
	case "prometheus":
		registry := prometheus.NewRegistry()
		exp, err := otelprom.New(otelprom.WithRegisterer(registry))
		if err != nil {
			return nil, nil, nil, err
		}
		reader = exp
		handler = promhttp.HandlerFor(registry, promhttp.HandlerOpts{})
	default:
		return nil, nil, nil, fmt.Errorf("-metrics %q: use none, stdout or prometheus", kind)
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	obs, err := redistoreotel.New(redistoreotel.WithMeterProvider(provider), redistoreotel.WithoutSpans())
	if err != nil {
		return nil, nil, nil, err
	}
	return obs, handler, provider.Shutdown, nil
}
