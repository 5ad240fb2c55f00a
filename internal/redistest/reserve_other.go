//go:build !unix

package redistest

// reserve is a no-op where there is no flock: the listen check alone
// decides whether a port is free.
func reserve(port int) bool { return true }
