package redistoreotel_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/rueidis"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/redistoreotel"
)

// A store whose operations are OpenTelemetry metrics, read here with the
// SDK's manual reader (an application would use a Prometheus or OTLP
// exporter).
func ExampleNew() {
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{mr.Addr()}, DisableCache: true})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	reader := sdkmetric.NewManualReader()
	obs, err := redistoreotel.New(redistoreotel.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	if err != nil {
		log.Fatal(err)
	}
	store, err := redistore.New(redistore.Config{Client: client, KeyPairs: [][]byte{[]byte("a 32-byte hash key, from secrets")}, Observer: obs})
	if err != nil {
		log.Fatal(err)
	}

	r := httptest.NewRequest("GET", "/", nil)
	session, _ := store.Get(r, "session")
	session.Values["visits"] = 1
	if err := store.Save(r, httptest.NewRecorder(), session); err != nil {
		log.Fatal(err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		log.Fatal(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if h, ok := m.Data.(metricdata.Histogram[float64]); ok {
			for _, dp := range h.DataPoints {
				op, _ := dp.Attributes.Value(redistoreotel.KeyOperation)
				outcome, _ := dp.Attributes.Value(redistoreotel.KeyOutcome)
				fmt.Println(m.Name, op.AsString(), outcome.AsString(), dp.Count)
			}
		}
	}
	// Unordered output:
	// redistore.operation.duration get new 1
	// redistore.operation.duration save written 1
}
