package main

import (
	"net/http"
	"testing"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/examples/frameworks/internal/demotest"
)

func TestApp(t *testing.T) {
	demotest.Run(t, sessionName, func(store *redistore.Store) http.Handler { return newApp(store) })
}
