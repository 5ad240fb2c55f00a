//go:build linux || darwin || freebsd || openbsd || dragonfly

package redistest

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// reserveMachineWide takes the machine-wide reservation of a port: a lock
// on a file named after it, held until the process exits (the kernel then
// releases it). It reports false when another process holds it, and true
// where no lock file can be opened (a temporary directory this user cannot
// write to): the process's own record and the listen check then decide.
func reserveMachineWide(port int) bool {
	dir := filepath.Join(os.TempDir(), "redistest-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true
	}
	os.Chmod(dir, 0o777|os.ModeSticky) // shared by every user's tests
	name := filepath.Join(dir, strconv.Itoa(port))
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDONLY, 0o666)
	if err != nil {
		// Another user's file in a sticky directory refuses O_CREATE where
		// fs.protected_regular is set; a plain open may still lock it.
		if f, err = os.Open(name); err != nil {
			return true
		}
	}
	// A flock belongs to the open file: held, it keeps every other open of
	// the file from locking it, in any process.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	locks = append(locks, f) // under reserved's lock
	return true
}

// locks are the open lock files of the ports this process reserved.
var locks []*os.File
