package cookie

import (
	"encoding/hex"
	"testing"

	"github.com/gorilla/securecookie"
)

// newID returns an ID as the store makes them: 32 hexadecimal digits.
func newID() string { return hex.EncodeToString(securecookie.GenerateRandomKey(16)) }

func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func equal[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}
