package oci

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// weighParent gives the cgroup every sandbox of this runtime sits in
// (parent) the CPU weight shares (cgroup v1 cpu.shares; on cgroup v2 the
// equivalent cpu.weight), against the host's other tasks. runc makes the
// parent when it makes the first sandbox and never sets its weight: left
// alone it weighs 1024, one task's worth, however many sandboxes and cores
// there are. It only does so when the server's own tasks sit in the root
// CPU cgroup, as they do when nothing (systemd on cgroup v2, a container)
// gave the server a cgroup of its own: the parent then competes with the
// server task by task. Beside a server in a cgroup of its own, a heavier
// parent would take the server's share instead; it is left alone and
// weighParent says so.
func weighParent(parent string, shares uint64) error {
	if self, err := ownCPUCgroup(); err != nil {
		return err
	} else if self != "/" {
		return fmt.Errorf("the server runs in CPU cgroup %s, not the root: the sandboxes' weight is left at the kernel's default", self)
	}
	if _, err := os.Stat("/sys/fs/cgroup/cpu/cpu.shares"); err == nil {
		dir := filepath.Join("/sys/fs/cgroup/cpu", parent)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "cpu.shares"), []byte(strconv.FormatUint(shares, 10)), 0o644)
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		return fmt.Errorf("no cgroup cpu controller found")
	}
	dir := filepath.Join("/sys/fs/cgroup", parent)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// runc's conversion of shares [2, 262144] to weight [1, 10000].
	weight := 1 + ((shares-2)*9999)/262142
	return os.WriteFile(filepath.Join(dir, "cpu.weight"), []byte(strconv.FormatUint(weight, 10)), 0o644)
}

// ownCPUCgroup is this process's cgroup in the CPU controller's hierarchy
// (cgroup v1), or its cgroup v2 path when no v1 hierarchy has the CPU
// controller.
func ownCPUCgroup() (string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	defer f.Close()
	v2 := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			v2 = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "cpu" {
				return parts[2], nil
			}
		}
	}
	if v2 == "" {
		return "", fmt.Errorf("no CPU cgroup in /proc/self/cgroup")
	}
	return v2, sc.Err()
}
