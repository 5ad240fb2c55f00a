//go:build unix

package redistest

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// reservations holds the lock files of the ports this process reserved,
// open until it exits; the kernel then releases their locks.
var reservations struct {
	sync.Mutex
	files []*os.File
}

// reserve takes the machine-wide reservation of a port, reporting false when
// another process, or this one, holds it. Where no lock file can be made
// (a temporary directory this user cannot write to) a port counts as
// reserved: the listen check alone then decides.
func reserve(port int) bool {
	dir := filepath.Join(os.TempDir(), "redistest-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true
	}
	os.Chmod(dir, 0o777|os.ModeSticky) // shared by every user's tests
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDONLY, 0o666)
	if err != nil {
		return true
	}
	// flock locks belong to the open file: a second open in this process
	// conflicts with the first, as another process's would.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	reservations.Lock()
	reservations.files = append(reservations.files, f)
	reservations.Unlock()
	return true
}
