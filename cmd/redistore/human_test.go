package main

import (
	"testing"
	"time"
)

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                       "0 seconds",
		time.Second:                             "1 second",
		59*time.Minute + 59*time.Second:         "59 minutes 59 seconds",
		59*time.Minute + 59600*time.Millisecond: "1 hour",
		720*time.Hour - time.Second:             "30 days",
		50 * time.Hour:                          "2 days 2 hours",
		-90 * time.Second:                       "-1 minute 30 seconds",
		25 * time.Hour:                          "1 day 1 hour",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
}
