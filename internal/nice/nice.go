// Package nice sets a process's nice value. Linux keeps it per thread
// (setpriority(2) with PRIO_PROCESS takes a thread id), and a thread made
// later inherits its maker's: Set changes every thread there is now.
package nice

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// Set gives every thread of process pid (0: this process) the nice value
// n. Raising it needs no privilege, lowering it CAP_SYS_NICE. It returns
// the first error and still tries the other threads.
func Set(pid, n int) error {
	dir := "/proc/self/task"
	if pid != 0 {
		dir = fmt.Sprintf("/proc/%d/task", pid)
	}
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var first error
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, n); err != nil && first == nil {
			first = fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	return first
}
