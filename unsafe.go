package redistore

import "unsafe"

// bytesToString returns a string sharing b's memory. The caller must never
// modify b afterwards.
func bytesToString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// stringBytes returns a byte slice sharing s's memory, for code that only
// reads it (decoders, and Redis command arguments that are copied to the
// socket before the call returns).
func stringBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
