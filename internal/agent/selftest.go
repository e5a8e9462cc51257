package agent

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent/process"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// selfTestTools are looked for by running them with their version flag.
var selfTestTools = []struct {
	name string
	args []string
}{
	{"bash", []string{"--version"}},
	{"sh", nil}, // no version flag; found is enough
	{"node", []string{"--version"}},
	{"npm", []string{"--version"}},
	{"python3", []string{"--version"}},
	{"pip", []string{"--version"}},
	{"pip3", []string{"--version"}},
	{"git", []string{"--version"}},
	{"go", []string{"version"}},
	{"gcc", []string{"--version"}},
	{"make", []string{"--version"}},
	{"curl", []string{"--version"}},
	{"wget", []string{"--version"}},
	{"java", []string{"-version"}},
	{"rustc", []string{"--version"}},
}

// toolTimeout bounds one tool's version run (npm is slow to start).
const toolTimeout = 15 * time.Second

// chaserMarkers are the environment variables every sandbox has.
var chaserMarkers = []string{"CHASER", "CHASER_SESSION_ID", "CHASER_WORKSPACE_ID", "CHASER_IMAGE", "CHASER_RUNTIME"}

// selfTest serves POST /v1/self-test: what a command in this sandbox sees.
func (a *Agent) selfTest(w http.ResponseWriter, r *http.Request) {
	httpjson.Write(w, http.StatusOK, a.SelfTest(r.Context()))
}

// SelfTest inspects the sandbox from inside. Tools are run through the
// process manager (never exec.Cmd.Wait: the agent is PID 1).
func (a *Agent) SelfTest(ctx context.Context) api.SelfTest {
	start := time.Now()
	env := envMap(a.environ())
	// What a command gets, by the rules every command follows: the
	// image's user, its working directory, its HOME.
	st := api.SelfTest{
		SessionID: env["CHASER_SESSION_ID"],
		User:      a.user.user.String(),
		Home:      env["HOME"],
		Runtime:   env["CHASER_RUNTIME"],
		Env:       map[string]string{},
		Tools:     make([]api.Tool, len(selfTestTools)),
	}
	if cwd, err := a.workdir(a.user, ""); err == nil {
		st.Cwd = cwd
	} else {
		st.Cwd = a.cwd
	}
	st.Hostname, _ = os.Hostname()
	for _, k := range chaserMarkers {
		if v, ok := env[k]; ok {
			st.Env[k] = v
		}
	}
	st.Path = []api.PathEntry{}
	for _, dir := range strings.Split(env["PATH"], ":") {
		if dir == "" {
			continue
		}
		fi, err := os.Stat(dir)
		st.Path = append(st.Path, api.PathEntry{Dir: dir, Exists: err == nil && fi.IsDir()})
	}
	var wg sync.WaitGroup
	for i, tool := range selfTestTools {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.Tools[i] = a.probeTool(ctx, tool.name, tool.args)
		}()
	}
	st.Shell = api.ShellInfo{Path: a.shell, Config: []string{}}
	for _, f := range []string{"/etc/profile", "/etc/bash.bashrc", "/etc/profile.d", st.Home + "/.profile", st.Home + "/.bashrc", st.Home + "/.bash_profile"} {
		if _, err := os.Stat(f); err == nil {
			st.Shell.Config = append(st.Shell.Config, f)
		}
	}
	st.OS = osRelease()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		st.Kernel = strings.TrimSpace(string(b))
	}
	st.Limits = cgroupLimits()
	wg.Wait()
	for _, t := range st.Tools {
		if t.Path == a.shell || (t.Name == "bash" && strings.HasSuffix(a.shell, "/bash")) {
			st.Shell.Version = t.Version
		}
	}
	st.Network = selfTestDNS(ctx)
	st.DurationMS = time.Since(start).Milliseconds()
	return st
}

// probeTool finds name on PATH and runs it for its version.
func (a *Agent) probeTool(ctx context.Context, name string, args []string) api.Tool {
	t := api.Tool{Name: name, Path: process.LookPath(name, a.environ())}
	if t.Path == "" {
		t.Error = "not found on PATH"
		return t
	}
	if args == nil {
		t.Found = true
		return t
	}
	p, err := a.procs.Start(process.Spec{Argv: append([]string{t.Path}, args...), Cwd: "/", Env: a.environ(), Timeout: toolTimeout, User: a.user.user})
	if err != nil {
		t.Error = err.Error()
		return t
	}
	defer func() {
		<-p.Done()
		a.procs.Forget(p.ID)
	}()
	select {
	case <-p.Done():
	case <-ctx.Done():
		_ = p.Signal(syscall.SIGKILL)
		t.Error = "cancelled"
		return t
	}
	chunks, _, _, _ := p.Output.Read(0)
	var out bytes.Buffer
	for _, c := range chunks {
		out.Write(c.Data)
	}
	info := p.Info()
	t.Version = firstLine(out.String())
	if info.ExitCode != nil && *info.ExitCode == 0 {
		t.Found = true
	} else {
		t.Error = "exit status " + strconv.Itoa(derefInt(info.ExitCode))
		if info.TimedOut {
			t.Error = "timed out"
		}
	}
	return t
}

func derefInt(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func osRelease() api.OSInfo {
	var o api.OSInfo
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return o
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			o.ID = v
		case "PRETTY_NAME":
			o.Name = v
		case "VERSION_ID":
			o.Version = v
		}
	}
	return o
}

// cgroupLimits reads the limits of the sandbox's own cgroup, v2 or v1.
func cgroupLimits() api.SandboxLimits {
	l := api.SandboxLimits{OnlineCPUs: onlineCPUs()}
	readInt := func(paths ...string) (int64, bool) {
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			if err == nil {
				return n, true
			}
		}
		return 0, false
	}
	const root = "/sys/fs/cgroup/"
	if b, err := os.ReadFile(root + "cpu.max"); err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 && f[0] != "max" {
			q, _ := strconv.ParseFloat(f[0], 64)
			p, _ := strconv.ParseFloat(f[1], 64)
			if p > 0 {
				l.CPUs = q / p
			}
		}
	} else if q, ok := readInt(root+"cpu/cpu.cfs_quota_us", root+"cpu,cpuacct/cpu.cfs_quota_us"); ok && q > 0 {
		if p, ok := readInt(root+"cpu/cpu.cfs_period_us", root+"cpu,cpuacct/cpu.cfs_period_us"); ok && p > 0 {
			l.CPUs = float64(q) / float64(p)
		}
	}
	// v1 reports "no limit" as a huge number near 2^63.
	if m, ok := readInt(root+"memory.max", root+"memory/memory.limit_in_bytes"); ok && m < 1<<62 {
		l.MemoryBytes = m
	}
	if p, ok := readInt(root+"pids.max", root+"pids/pids.max"); ok {
		l.Pids = p
	}
	return l
}

func onlineCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return 0
	}
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, ok := strings.Cut(part, "-")
		a, _ := strconv.Atoi(lo)
		if !ok {
			n++
			continue
		}
		z, _ := strconv.Atoi(hi)
		n += z - a + 1
	}
	return n
}

// dnsProbeName is the name the self-test resolves: a package registry's,
// what sandboxes with egress look up first.
const dnsProbeName = "registry.npmjs.org"

// selfTestDNS tells whether a name resolves through the sandbox's own
// resolv.conf ("none" when it names no nameserver: mode none).
func selfTestDNS(ctx context.Context) *api.SelfTestNetwork {
	b, _ := os.ReadFile("/etc/resolv.conf")
	if !bytes.Contains(b, []byte("\nnameserver ")) && !bytes.HasPrefix(b, []byte("nameserver ")) {
		return &api.SelfTestNetwork{DNS: "none"}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := (&net.Resolver{PreferGo: true}).LookupHost(ctx, dnsProbeName); err != nil {
		return &api.SelfTestNetwork{DNS: "failed: " + err.Error(), DNSName: dnsProbeName}
	}
	return &api.SelfTestNetwork{DNS: "ok", DNSName: dnsProbeName}
}
