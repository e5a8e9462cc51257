package integration

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/testserver"
)

// escapeProbe makes one attempt of the battery inside a sandbox and prints
// one RESULT line (see the file).
//
//go:embed testdata/escape.py
var escapeProbe string

// runscCache is where CI and the README's setup keep the pinned runsc.
const runscCache = "/var/cache/chaser-runsc"

// requireRunsc makes the battery's runsc half fail, instead of skip, when
// runsc is missing or the server cannot run a sandbox with it: CI sets
// CHASER_TEST_RUNSC=1 once runsc is supported. Read before TestMain drops
// CHASER_* variables.
var requireRunsc = os.Getenv("CHASER_TEST_RUNSC") == "1"

// escapeAttempt is one way out of a sandbox the battery tries: escape.py
// run with probe, as each of users ("" is the image's user, root for the
// host image), must print a result in want (an errno name, or "empty" for
// a read that saw no data), or, under runsc, in gvisor too. insideOK
// accepts a success inside the sandbox for an attempt whose harm would be
// on the host, which the test checks after the battery.
type escapeAttempt struct {
	name     string
	probe    []string
	users    []string
	want     []string
	gvisor   []string
	insideOK bool
	// gvisorOnly, when set, replaces want and gvisor under runsc: for a
	// file runc's view lacks (ENOENT there) that gVisor's must refuse.
	gvisorOnly []string
}

// bothUsers runs an attempt as root and as an unprivileged user.
var bothUsers = []string{"", "nobody"}

// escapeAttempts lists the battery. Why each accepted errno is the right
// reason:
//   - EPERM: a missing capability or Docker's seccomp profile (which
//     refuses these calls with EPERM), or the devices cgroup for mknod;
//   - EACCES: file permissions for `nobody`, and /proc/1 of the agent,
//     which is non-dumpable (only CAP_SYS_PTRACE reaches it);
//   - EROFS: /proc/sys, /proc/sysrq-trigger, sysfs and cgroupfs are
//     mounted read-only (under gVisor, which ignores readonlyPaths, all
//     of /proc is);
//   - ENOENT: masked or absent files (this kernel has no /proc/kcore and
//     no sysrq; /dev holds only the safe devices);
//   - ENOSYS: a call gVisor does not implement, or a kernel without it;
//   - ECONNREFUSED: the sandbox's own loopback, where nothing listens;
//   - ETXTBSY, EBUSY: the agent binary is running (it cannot be opened
//     for writing) and is a mount point (it cannot be replaced);
//   - under gVisor, what its sentry answers for what it does not have or
//     implement (measured with the pinned runsc and Docker's seccomp
//     profile applied by --oci-seccomp, without which gVisor answers
//     these itself): ENXIO for a host device node, ENODEV for
//     perf_event_open, ENOTSUP for open_by_handle_at, EACCES for the
//     keyring, ENOENT for /proc files and cgroup files it does not have
//     (it shows a cgroup v2 view), EXDEV for a rename onto a mount point.
func escapeAttempts(marker, dataDir, usrFile, usrNew, apiPort string) []escapeAttempt {
	return []escapeAttempt{
		{name: "mount a tmpfs", probe: []string{"mount"}, users: bothUsers, want: []string{"EPERM"}},
		{name: "remount /proc/sys read-write", probe: []string{"remount-proc-sys"}, users: bothUsers, want: []string{"EPERM"}},
		{name: "umount the mask of /proc/kcore", probe: []string{"umount-mask"}, users: bothUsers, want: []string{"EPERM"}, gvisor: []string{"EINVAL", "ENOENT"}},
		{name: "unshare a user namespace", probe: []string{"unshare-user"}, users: bothUsers, want: []string{"EPERM"}},
		{name: "unshare a mount namespace", probe: []string{"unshare-mount"}, users: bothUsers, want: []string{"EPERM"}},
		{name: "unshare a network namespace", probe: []string{"unshare-net"}, users: bothUsers, want: []string{"EPERM"}},
		{name: "write /proc/sys/kernel/core_pattern", probe: []string{"proc-sys-core-pattern"}, users: bothUsers, want: []string{"EROFS", "EACCES"}, gvisor: []string{"ENOENT"}},
		{name: "write /proc/sys/kernel/hostname", probe: []string{"proc-sys-hostname"}, users: bothUsers, want: []string{"EROFS", "EACCES"}},
		{name: "write /proc/sysrq-trigger", probe: []string{"sysrq-trigger"}, users: bothUsers, want: []string{"EROFS", "EACCES", "ENOENT"}},
		{name: "write the memory cgroup's limit", probe: []string{"cgroup-limit"}, users: bothUsers, want: []string{"EROFS", "EACCES"}, gvisor: []string{"ENOENT"}},
		{name: "write the pids cgroup's limit", probe: []string{"cgroup-pids"}, users: bothUsers, want: []string{"EROFS", "EACCES"}, gvisor: []string{"ENOENT"}},
		{name: "write the cgroup's release_agent", probe: []string{"cgroup-release-agent"}, users: bothUsers, want: []string{"EROFS", "EACCES", "ENOENT"}},
		{name: "write /sys/kernel/uevent_helper", probe: []string{"uevent-helper"}, users: bothUsers, want: []string{"EROFS", "EACCES", "ENOENT"}},
		{name: "make a child cgroup", probe: []string{"cgroup-mkdir"}, users: bothUsers, want: []string{"EROFS", "EACCES"}, gvisor: []string{"ENOENT"}},
		// gVisor shows its cgroup v2 view (runsc --in-sandbox-cgroup=v2,
		// the one it mounts read-only), where the v1 paths above are
		// absent: the same attempts on its files. This hybrid host gives
		// runc sandboxes the v1 view, without these files (ENOENT).
		{name: "write the cgroup v2 memory limit", probe: []string{"cgroup2-limit"}, users: bothUsers, want: []string{"EROFS", "EACCES", "ENOENT"}, gvisorOnly: []string{"EROFS", "EACCES"}},
		{name: "make a child cgroup in the v2 view", probe: []string{"cgroup2-mkdir"}, users: bothUsers, want: []string{"EROFS", "EACCES", "ENOENT"}, gvisorOnly: []string{"EROFS", "EACCES"}},
		{name: "read /proc/kcore", probe: []string{"kcore"}, users: bothUsers, want: []string{"empty", "ENOENT", "EACCES"}},
		{name: "read masked /proc files", probe: []string{"masked", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats", "/proc/timer_stats"}, users: bothUsers, want: []string{"empty"}},
		{name: "read /dev/kmsg", probe: []string{"dev-kmsg"}, users: bothUsers, want: []string{"ENOENT"}},
		{name: "read /proc/kmsg", probe: []string{"proc-kmsg"}, users: bothUsers, want: []string{"EPERM", "EACCES"}, gvisor: []string{"ENOENT"}},
		{name: "read /dev/mem", probe: []string{"dev-mem"}, users: bothUsers, want: []string{"ENOENT"}},
		// Root holds CAP_MKNOD (Docker's set: dpkg and tar may make
		// nodes), so the node is made; the devices cgroup refuses to open
		// it (EPERM), and the probe reports the open.
		{name: "mknod the host's disk and read it", probe: []string{"mknod"}, users: bothUsers, want: []string{"EPERM"}, gvisor: []string{"ENXIO"}},
		{name: "open a raw IP socket", probe: []string{"raw-socket"}, users: bothUsers, want: []string{"EPERM"}},
		{name: "open a packet socket", probe: []string{"packet-socket"}, users: bothUsers, want: []string{"EPERM"}},
		{name: "ptrace the agent", probe: []string{"ptrace-agent"}, users: bothUsers, want: []string{"EPERM"}},
		{name: "open the agent's memory", probe: []string{"agent-memory"}, users: bothUsers, want: []string{"EACCES", "EPERM"}},
		// Under runsc the agent binds its socket in a directory shared
		// with the host; the runtime moves it out once the agent listens
		// (oci.waitSocket), so that root, whom CAP_DAC_OVERRIDE lets into
		// that mode-0700 directory, finds nothing there either.
		{name: "reach the agent's socket", probe: []string{"agent-socket"}, users: bothUsers, want: []string{"EACCES", "EPERM", "ENOENT"}},
		{name: "init_module", probe: []string{"init-module"}, users: bothUsers, want: []string{"EPERM", "ENOSYS"}},
		{name: "finit_module", probe: []string{"finit-module"}, users: bothUsers, want: []string{"EPERM", "ENOSYS"}},
		{name: "bpf", probe: []string{"bpf"}, users: bothUsers, want: []string{"EPERM"}, gvisor: []string{"ENOSYS"}},
		{name: "perf_event_open", probe: []string{"perf-event-open"}, users: bothUsers, want: []string{"EPERM"}, gvisor: []string{"ENOSYS", "ENODEV"}},
		{name: "keyctl (add_key)", probe: []string{"keyctl"}, users: bothUsers, want: []string{"EPERM"}, gvisor: []string{"ENOSYS", "EACCES"}},
		{name: "userfaultfd", probe: []string{"userfaultfd"}, users: bothUsers, want: []string{"EPERM"}, gvisor: []string{"ENOSYS"}},
		{name: "open_by_handle_at (shocker)", probe: []string{"open-by-handle"}, users: bothUsers, want: []string{"EPERM"}, gvisor: []string{"ENOSYS", "ENOTSUP"}},
		{name: "kexec_load", probe: []string{"kexec-load"}, users: bothUsers, want: []string{"EPERM"}, gvisor: []string{"ENOSYS"}},
		{name: "setuid(0) as nobody", probe: []string{"setuid-root"}, users: []string{"nobody"}, want: []string{"EPERM"}},
		// The server's API on the host's loopback: the sandbox has a
		// loopback of its own.
		{name: "connect to the server's API port", probe: []string{"connect", "127.0.0.1", apiPort}, users: bothUsers, want: []string{"ECONNREFUSED"}},
		// A host file through /proc/1/root, /proc/self/root, /proc/*/cwd and
		// every host directory mountinfo names (mountinfo itself shows host
		// paths, as documented: only their content must stay out of reach).
		{name: "read a host file by every path", probe: []string{"host-files", marker, dataDir}, users: bothUsers, want: []string{"ENOENT", "EACCES"}},
		{name: "read a host file out of a chroot", probe: []string{"chroot-breakout", marker}, users: bothUsers, want: []string{"ENOENT", "EPERM"}},
		// The host image's /usr is the host's, under an overlay: writes
		// land in the sandbox's upper layer (checked on the host after).
		{name: "append to a file of the host's /usr", probe: []string{"write-usr", usrFile}, users: bothUsers, want: []string{"EACCES", "EROFS"}, insideOK: true},
		{name: "create a file in the host's /usr", probe: []string{"write-usr", usrNew}, users: bothUsers, want: []string{"EACCES", "EROFS"}, insideOK: true},
		{name: "write the agent binary", probe: []string{"replace-agent", "write"}, users: bothUsers, want: []string{"ETXTBSY", "EROFS", "EACCES"}},
		// O_TRUNC asks the mount for write access first: EROFS.
		{name: "truncate the agent binary", probe: []string{"replace-agent", "truncate"}, users: bothUsers, want: []string{"EROFS", "EACCES"}},
		// gVisor checks that source and target share a mount before it
		// looks at the target: the agent binary is a mount of its own, so
		// the rename is refused with EXDEV (before EBUSY, as Linux would).
		{name: "rename over the agent binary", probe: []string{"replace-agent", "rename"}, users: bothUsers, want: []string{"EBUSY", "EROFS", "EACCES"}, gvisor: []string{"EXDEV"}},
		{name: "remove the agent binary", probe: []string{"replace-agent", "unlink"}, users: bothUsers, want: []string{"EBUSY", "EROFS", "EACCES"}},
		{name: "write the agent through /proc/1/exe", probe: []string{"replace-agent", "exe"}, users: bothUsers, want: []string{"EACCES", "ETXTBSY", "EPERM"}},
	}
}

// TestEscapeBattery tries the ways out of a sandbox of issue 14 against
// each runtime, as root and as nobody, and checks that each fails for the
// right reason (never for a missing tool), that no host data is visible,
// and that the host is unchanged afterwards. It logs how many attempts
// were tried and blocked per runtime.
//
// runc-userns is runc with root remapped to an unprivileged host range
// (--userns-remap): the same attempts must fail, and root inside must be
// the range's base on the host.
func TestEscapeBattery(t *testing.T) {
	for _, rt := range []string{"runc", "runsc", "runc-userns"} {
		t.Run(rt, func(t *testing.T) { escapeBattery(t, rt) })
	}
}

// unavailable skips the runsc half with why, or fails it when CI requires
// runsc (CHASER_TEST_RUNSC=1).
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if requireRunsc {
		t.Fatalf(format, args...)
	}
	t.Skipf(format+" (set CHASER_TEST_RUNSC=1 to make this a failure)", args...)
}

// escapeServer starts a server with runtime rt and an account on it, and
// creates the battery's sandbox.
func escapeServer(t *testing.T, rt string) (s *Server, key, id string) {
	if rt == "runsc" {
		if _, err := exec.LookPath("runsc"); err != nil {
			if _, err := os.Stat(filepath.Join(runscCache, "runsc")); err != nil {
				unavailable(t, "runsc: not on PATH nor in %s (the README's setup installs it)", runscCache)
			}
			t.Setenv("PATH", runscCache+":"+os.Getenv("PATH"))
		}
	}
	args := []string{"--runtime", rt}
	if rt == "runc-userns" {
		args = []string{"--runtime", "runc", "--userns-remap", usernsRange}
	}
	ts, err := testserver.Start("", args...)
	if err != nil {
		if rt == "runsc" {
			unavailable(t, "runsc: the server does not start with --runtime runsc: %v", err)
		}
		t.Fatal(err)
	}
	s = &Server{ts}
	s.stopAtEnd(t)
	key = s.account(t, "paid")
	c := s.Client(key)
	sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		if rt == "runsc" {
			unavailable(t, "runsc: the server cannot run a sandbox under runsc yet: %v: %s", err, lastError(s.Log()))
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteSession(context.Background(), sess.ID) })
	return s, key, sess.ID
}

// lastError returns the cause the server logged last (its err=…), cut
// short.
func lastError(log string) string {
	i := strings.LastIndex(log, " err=")
	if i < 0 {
		return "(the server logged no error)"
	}
	e, _, _ := strings.Cut(log[i+1:], "\n")
	if len(e) > 300 {
		e = e[:300] + "…"
	}
	return e
}

func escapeBattery(t *testing.T, rt string) {
	s, key, id := escapeServer(t, rt)
	c := s.Client(key)

	// Host data the sandbox must never see: a marker file, of one name, in
	// a temporary directory and in the server's data dir (which holds the
	// sandbox's layers, an ancestor of every overlay directory mountinfo
	// shows).
	token := "chaser-escape-" + hex.EncodeToString(randomBytes(t, 12))
	hostDir := t.TempDir()
	name := "marker-" + token[len(token)-8:]
	marker := filepath.Join(hostDir, name)
	for _, p := range []string{marker, filepath.Join(s.DataDir, name)} {
		if err := os.WriteFile(p, []byte(token+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// What the battery must leave unchanged on the host.
	agentPath := filepath.Join(filepath.Dir(binary), "chaser-agent")
	usrFile := "/usr/share/common-licenses/GPL-3"
	usrNew := "/usr/share/chaser-escape-new-" + hex.EncodeToString(randomBytes(t, 8))
	t.Cleanup(func() { os.Remove(usrNew) }) // only there if the battery failed
	hostState := func() map[string]string {
		m := map[string]string{}
		for _, p := range []string{agentPath, usrFile, usrNew} {
			if b, err := os.ReadFile(p); err != nil {
				m[p] = "missing"
			} else {
				m[p] = sha(b)
			}
		}
		entries, _ := os.ReadDir(hostDir)
		for _, e := range entries {
			m[hostDir] += e.Name() + " "
		}
		return m
	}
	before := hostState()
	if before[usrFile] == "missing" || before[agentPath] == "missing" {
		t.Fatalf("the host lacks %s or %s, which the battery checks", usrFile, agentPath)
	}

	tried, blocked := 0, 0
	tally := func(what string, ok bool, format string, args ...any) {
		tried++
		switch {
		case !ok:
			t.Errorf("%s: not blocked for a right reason: "+format, append([]any{what}, args...)...)
		case testing.Verbose():
			t.Logf("%-50s %s", what, fmt.Sprintf(format, args...))
		}
		if ok {
			blocked++
		}
	}
	noToken := func(b []byte) bool { return !bytes.Contains(b, []byte(token)) }

	// 1. Attempts from a command run by the exec API.
	_, apiPort, _ := strings.Cut(s.Addr, ":")
	for _, a := range escapeAttempts(marker, s.DataDir, usrFile, usrNew, apiPort) {
		for _, user := range a.users {
			what := a.name
			if user != "" {
				what += " (as " + user + ")"
			}
			res, err := c.Exec(t.Context(), id, api.ExecRequest{Argv: append([]string{"python3", "-c", escapeProbe}, a.probe...), User: user})
			if err != nil {
				t.Fatalf("%s: exec: %v", what, err)
			}
			line, _, _ := strings.Cut(res.Stdout, "\n")
			result, found := strings.CutPrefix(line, "RESULT ")
			if res.ExitCode != 0 || !found {
				// A missing python3 or a crashed probe is a failure, not a pass.
				t.Errorf("%s: the probe did not run: exit %d, stdout %q, stderr %q", what, res.ExitCode, res.Stdout, res.Stderr)
				tried++
				continue
			}
			if !noToken([]byte(res.Stdout + res.Stderr)) {
				tally(what, false, "host data visible: %s", result)
				continue
			}
			got, _, _ := strings.Cut(strings.TrimPrefix(result, "errno="), " ")
			accepted := a.want
			if rt == "runsc" {
				accepted = append(slices.Clone(a.want), a.gvisor...)
				if a.gvisorOnly != nil {
					accepted = a.gvisorOnly
				}
			}
			switch {
			case slices.Contains(accepted, got):
				tally(what, true, "%s", result)
			case got == "ok" && a.insideOK && user == "":
				tally(what, true, "%s (inside the sandbox only: the host is checked below)", result)
			default:
				tally(what, false, "%s, want one of %v", result, accepted)
			}
		}
	}

	// Under the remap, root inside is no root on the host: the agent and
	// the commands it starts are host uids of the range.
	if rt == "runc-userns" {
		uid := agentHostUID(t, s, id)
		tally("the agent's host uid", uid >= usernsBase, "uid %d (range base %d)", uid, usernsBase)
	}

	// 2. The privileges of a command: the sandbox's and nothing more.
	forbidden := map[int]string{2: "CAP_DAC_READ_SEARCH", 12: "CAP_NET_ADMIN", 13: "CAP_NET_RAW", 16: "CAP_SYS_MODULE", 17: "CAP_SYS_RAWIO",
		19: "CAP_SYS_PTRACE", 21: "CAP_SYS_ADMIN", 22: "CAP_SYS_BOOT", 24: "CAP_SYS_RESOURCE", 25: "CAP_SYS_TIME", 33: "CAP_MAC_ADMIN",
		34: "CAP_SYSLOG", 38: "CAP_PERFMON", 39: "CAP_BPF"}
	for _, user := range bothUsers {
		what := "a command's privileges"
		if user != "" {
			what += " (as " + user + ")"
		}
		res, err := c.Exec(t.Context(), id, api.ExecRequest{Argv: []string{"cat", "/proc/self/status"}, User: user})
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("%s: %v %+v", what, err, res)
		}
		status := map[string]string{}
		for _, l := range strings.Split(res.Stdout, "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok {
				status[k] = strings.TrimSpace(v)
			}
		}
		var bad []string
		for _, field := range []string{"CapEff", "CapPrm", "CapBnd", "CapAmb"} {
			v, err := strconv.ParseUint(status[field], 16, 64)
			if err != nil {
				t.Fatalf("%s: %s: %q", what, field, status[field])
			}
			for bit, capName := range forbidden {
				if v&(1<<bit) != 0 {
					bad = append(bad, field+" has "+capName)
				}
			}
			if user != "" && field != "CapBnd" && v != 0 {
				bad = append(bad, fmt.Sprintf("%s is %x for %s", field, v, user))
			}
		}
		if nnp, ok := status["NoNewPrivs"]; nnp != "1" && (ok || rt == "runc") {
			bad = append(bad, "NoNewPrivs is "+strconv.Quote(nnp))
		}
		if user != "" && (!strings.HasPrefix(status["Uid"], "65534\t65534\t65534") || !strings.HasPrefix(status["Gid"], "65534\t65534\t65534")) {
			bad = append(bad, "Uid is "+status["Uid"]+", Gid "+status["Gid"])
		}
		if user != "" && slices.Contains(strings.Fields(status["Groups"]), "0") {
			bad = append(bad, "in group 0: "+status["Groups"])
		}
		slices.Sort(bad)
		tally(what, len(bad) == 0, "%s", strings.Join(append(bad, "CapEff "+status["CapEff"]), ", "))
	}

	// What the sandbox keeps without CAP_NET_RAW: ping's ICMP datagram
	// socket, for every user.
	for _, user := range bothUsers {
		ping := "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP); print('ok')"
		if res, err := c.Exec(t.Context(), id, api.ExecRequest{Argv: []string{"python3", "-c", ping}, User: user}); err != nil || res.Stdout != "ok\n" {
			t.Errorf("an ICMP datagram socket (ping) as %q: %v %q %q", user, err, res.Stdout, res.Stderr)
		}
	}

	// And threads: glibc starts them with clone3, which the seccomp profile
	// refuses with ENOSYS so that glibc falls back to clone (under gVisor
	// through SCMP_ACT_TRACE: see oci.enosysByTrace); EPERM would leave no
	// thread startable.
	for _, user := range bothUsers {
		thread := "import threading; t = threading.Thread(target=print, args=('ok',)); t.start(); t.join()"
		if res, err := c.Exec(t.Context(), id, api.ExecRequest{Argv: []string{"python3", "-c", thread}, User: user}); err != nil || res.Stdout != "ok\n" {
			t.Errorf("start a thread as %q: %v %q %q", user, err, res.Stdout, res.Stderr)
		}
	}

	// 3. The file API: symlinks and .. leading out, and the agent binary.
	// A symlink planted inside resolves inside (magic links are refused),
	// .. is refused, and the agent is a read-only mount point.
	s.run(t, key, id, strings.Join([]string{
		"ln -s /proc/1/root" + marker + " /tmp/esc-magic",
		"ln -s ../../../../../../../.." + marker + " /tmp/esc-up",
		"ln -s /proc/1/root" + hostDir + " /tmp/esc-dir",
		"ln -s /proc/1/root" + hostDir + "/escaped-link /tmp/esc-target",
		"ln -s /.chaser /tmp/esc-agent",
		"echo x > /tmp/esc-file",
	}, " && "))
	q := url.QueryEscape
	files := []struct {
		what, method, path, body string
		want                     []int
	}{
		{"download a host file by its path", "GET", "/download?path=" + q(marker), "", []int{404}},
		{"download through /proc/1/root", "GET", "/download?path=" + q("/proc/1/root"+marker), "", []int{400, 404}},
		{"download through /proc/self/root", "GET", "/download?path=" + q("/proc/self/root"+marker), "", []int{400, 404}},
		{"download with ..", "GET", "/download?path=" + q("/tmp/../../.."+marker), "", []int{400}},
		{"download a relative path", "GET", "/download?path=" + q("../../.."+marker), "", []int{400}},
		{"download a symlink to /proc/1/root", "GET", "/download?path=/tmp/esc-magic", "", []int{400, 404}},
		{"download a symlink climbing with ..", "GET", "/download?path=/tmp/esc-up", "", []int{404}},
		{"download through a symlinked directory", "GET", "/download?path=" + q("/tmp/esc-dir/"+name), "", []int{400, 404}},
		{"stat through /proc/1/root", "GET", "/files/stat?path=" + q("/proc/1/root"+marker), "", []int{400, 404}},
		{"list a host directory through /proc/1/root", "GET", "/files?path=" + q("/proc/1/root"+hostDir), "", []int{400, 404}},
		{"list through a symlinked directory", "GET", "/files?path=/tmp/esc-dir", "", []int{400, 404}},
		{"upload through /proc/1/root", "POST", "/upload?path=" + q("/proc/1/root"+hostDir+"/escaped"), "x", []int{400, 403, 404}},
		{"upload through a symlinked directory", "POST", "/upload?path=" + q("/tmp/esc-dir/escaped"), "x", []int{400, 403, 404}},
		{"upload with ..", "POST", "/upload?path=" + q(hostDir+"/../"+filepath.Base(hostDir)+"/escaped"), "x", []int{400}},
		// A symlink at the target is replaced, never written through: 200,
		// and the host directory stays as it was (checked below).
		{"upload onto a symlink leading out", "POST", "/upload?path=/tmp/esc-target", "x", []int{200, 400, 403}},
		{"mkdir through /proc/1/root", "POST", "/files/mkdir", `{"path":"/proc/1/root` + hostDir + `/escaped-dir"}`, []int{400, 403, 404}},
		{"upload over the agent", "POST", "/upload?path=/.chaser/agent", "x", []int{403}},
		{"upload over the agent through a symlink", "POST", "/upload?path=/tmp/esc-agent/agent", "x", []int{403}},
		{"move over the agent", "POST", "/files/move", `{"from":"/tmp/esc-file","to":"/.chaser/agent","overwrite":true}`, []int{403}},
		{"delete the agent", "DELETE", "/files?path=/.chaser/agent", "", []int{403}},
	}
	for _, f := range files {
		ct := "application/octet-stream"
		if strings.HasPrefix(f.body, "{") {
			ct = "application/json"
		}
		status, _, body := s.send(t, key, f.method, "/v1/sessions/"+id+f.path, ct, strings.NewReader(f.body))
		what := "file API: " + f.what
		switch {
		case !noToken(body):
			tally(what, false, "%d with host data: %q", status, body)
		case slices.Contains(f.want, status):
			tally(what, true, "%d", status)
		default:
			tally(what, false, "%d %s, want one of %v", status, bytes.TrimSpace(body), f.want)
		}
	}

	// 4. The host afterwards: the agent binary, the host's /usr and the
	// marker's directory are as they were.
	after := hostState()
	for p, h := range before {
		tally("host unchanged: "+p, after[p] == h, "before %s, after %s", h, after[p])
	}

	t.Logf("runtime %s: %d tried, %d blocked", rt, tried, blocked)
}
