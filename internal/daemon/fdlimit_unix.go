//go:build unix

package daemon

import "syscall"

// raiseFileLimit raises the soft limit on open files to the hard limit and
// returns it: every connection, sandbox agent socket and layer file holds a
// descriptor, and the soft limit is often 1024. (Go's runtime raises it too
// since 1.19; doing it here also covers a soft limit lowered after start
// and tells the caller the number.)
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}

// fileLimit returns the hard limit on open files (what raiseFileLimit
// raises to), or 0 when unknown.
func fileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return lim.Max
}
