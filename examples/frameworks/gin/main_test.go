package main

import (
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/redisession/redistore"
	"github.com/redisession/redistore/examples/frameworks/internal/demotest"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	gin.DefaultWriter = io.Discard // gin.Default's request log
	os.Exit(m.Run())
}

func TestApp(t *testing.T) {
	demotest.Run(t, sessionName, func(rs *redistore.Store) http.Handler { return newApp(rs) })
}

func TestSessionsLastAWeek(t *testing.T) {
	rs, mr := demotest.Store(t)
	b := &demotest.Browser{T: t, App: newApp(rs), Name: sessionName}
	b.Get("/")
	if c := b.Cookie; c.MaxAge != sessionOptions.MaxAge || c.Path != "/" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
		t.Fatalf("cookie %+v, want the attributes of sessionOptions %+v", c, sessionOptions)
	}

	mr.FastForward(6 * 24 * time.Hour)
	if got, want := b.Get("/"), "visits: 2, user: \"\"\n"; got != want {
		t.Fatalf("six days later: %q, want %q", got, want)
	}
	mr.FastForward(7*24*time.Hour + time.Minute) // a week and a minute after the last visit
	if got, want := b.Get("/"), "visits: 1, user: \"\"\n"; got != want {
		t.Fatalf("a week after the last visit: %q, want %q (redistore's default keeps 30 days)", got, want)
	}
}
