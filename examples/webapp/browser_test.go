package main

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/redisession/redistore"
)

// browserPath finds a Chromium to drive. Without one the test is skipped,
// unless REDISTORE_REQUIRE_BROWSER=1 (CI) makes that a failure.
func browserPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("REDISTORE_REQUIRE_BROWSER") == "1" {
		t.Fatal("no chromium on PATH (apt-get install -y chromium), and REDISTORE_REQUIRE_BROWSER=1")
	}
	t.Skip("no chromium on PATH: apt-get install -y chromium to run the browser test")
	return ""
}

// TestInARealBrowser drives the demo in headless Chromium: a visit, a
// login, the devices and where the session lives, a logout. With
// DEMO_SCREENSHOT=file.png it saves the signed-in page there (the README's
// screenshot).
func TestInARealBrowser(t *testing.T) {
	path := browserPath(t)
	store, _ := newTestStore(t, redistore.HashMode, nil)
	srv := httptest.NewServer(newApp(store.Store, store.logger, "embedded miniredis"))
	defer srv.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Headless, chromedp.WindowSize(760, 560),
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	var body string
	text := func(what string) {
		t.Helper()
		var err error
		if body, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body"))); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	username := chromedp.CSS(`input[name=username]`)
	logout := chromedp.CSS(`form[action="/logout"] button`)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(username),
	); err != nil {
		t.Fatal(err)
	}
	text("first visit")
	for _, want := range []string{"visited this page 1 time", "Not logged in", "Where this session lives", "hash mode", "shown as redis-cli shows them"} {
		if !strings.Contains(body, want) {
			t.Fatalf("first page lacks %q:\n%s", want, body)
		}
	}
	// The bucket's key, its two bytes of the ID quoted as redis-cli does.
	if !regexp.MustCompile(`Key\s+"session:(\\x[0-9a-f]{2}|\\[abtnr"\\]|[ -!#-\[\]-~]){2}"`).MatchString(body) {
		t.Fatalf("the key is not shown quoted as redis-cli does:\n%s", body)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(username, "ada"),
		chromedp.Submit(username),
		chromedp.WaitVisible(logout),
	); err != nil {
		t.Fatalf("logging in: %v", err)
	}
	text("signed in")
	for _, want := range []string{"Logged in as ada", "visited this page 2 times", "Your devices", "this device"} {
		if !strings.Contains(body, want) {
			t.Fatalf("signed-in page lacks %q:\n%s", want, body)
		}
	}
	// The device as people know it: this browser (headless Chromium says
	// Chrome), its system, the address it came from, and when it was
	// last active.
	if !regexp.MustCompile(`Chrome on (Linux|macOS|Windows), 127\.0\.0\.1, active just now, this device`).MatchString(body) {
		t.Fatalf("the devices list does not show this browser, its address and this device:\n%s", body)
	}
	if file := os.Getenv("DEMO_SCREENSHOT"); file != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(logout),
		chromedp.WaitVisible(username),
	); err != nil {
		t.Fatalf("logging out: %v", err)
	}
	text("logged out")
	if !strings.Contains(body, "Not logged in") || !strings.Contains(body, "visited this page 1 time") {
		t.Fatalf("after logout:\n%s", body)
	}
}
