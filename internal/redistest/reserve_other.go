//go:build !(linux || darwin || freebsd || openbsd || dragonfly)

package redistest

// reserveMachineWide has no lock to take here: the process's own record and
// the listen check alone decide whether a port is free.
func reserveMachineWide(port int) bool { return true }
