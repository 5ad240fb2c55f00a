package main

import (
	"testing"

	"github.com/redisession/redistore/examples/frameworks/internal/demotest"
)

func TestApp(t *testing.T) {
	demotest.Run(t, sessionName, newApp)
}
