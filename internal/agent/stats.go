package agent

import (
	"bufio"
	"context"
	"math"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/chaserhq/chaser/internal/httpjson"
)

// Stats is one sample of the sandbox's resource use (GET /v1/stats), as
// seen from inside: its cgroup where the sandbox has one of its own
// (cgroup v2 mounted at /sys/fs/cgroup), else the kernel's totals (a VM's
// own kernel), and the root filesystem.
type Stats struct {
	Timestamp  time.Time `json:"timestamp"`
	CPUCount   int       `json:"cpu_count"`
	CPUUsedPct float64   `json:"cpu_used_pct"`
	MemUsed    int64     `json:"mem_used"`
	MemTotal   int64     `json:"mem_total"`
	MemCache   int64     `json:"mem_cache"`
	DiskUsed   int64     `json:"disk_used"`
	DiskTotal  int64     `json:"disk_total"`
}

// cgroupDir is where the sandbox's own cgroup v2 is mounted.
const cgroupDir = "/sys/fs/cgroup"

// cpuWindow is how long CPU use is measured over for one sample.
const cpuWindow = 200 * time.Millisecond

// stats serves GET /v1/stats.
func (a *Agent) stats(w http.ResponseWriter, r *http.Request) {
	httpjson.Write(w, http.StatusOK, sample(r.Context(), a.poweroff != nil))
}

// sample takes one sample; vm tells that the agent is a VM's init, whose
// /proc/stat is the sandbox's own kernel. In a container without a cgroup
// of its own (runc), /proc/stat is the host's: the CPU use is then the
// sandbox's processes' (procCPUTime).
func sample(ctx context.Context, vm bool) Stats {
	s := Stats{CPUCount: cpuCount()}
	s.MemUsed, s.MemTotal, s.MemCache = memory()
	s.DiskUsed, s.DiskTotal = disk("/")
	cpu := cpuTime
	if _, ok := keyed(cgroupDir + "/cpu.stat")["usage_usec"]; !ok && !vm {
		cpu = procCPUTime
	}
	busy0, total0 := cpu()
	t0 := time.Now()
	select {
	case <-ctx.Done():
	case <-time.After(cpuWindow):
	}
	busy1, total1 := cpu()
	if total0 < 0 { // the cgroup's usage: busy time over wall time of the CPUs
		if el := time.Since(t0).Seconds(); el > 0 && s.CPUCount > 0 {
			s.CPUUsedPct = float64(busy1-busy0) / 1e6 / el / float64(s.CPUCount) * 100
		}
	} else if total1 > total0 {
		s.CPUUsedPct = float64(busy1-busy0) / float64(total1-total0) * 100
	}
	s.CPUUsedPct = math.Round(min(max(s.CPUUsedPct, 0), 100)*100) / 100
	s.Timestamp = time.Now().UTC()
	return s
}

// readInt reads a file holding one integer; "max" or an error is -1.
func readInt(p string) int64 {
	b, err := os.ReadFile(p)
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// keyed reads "key value" lines (memory.stat, cpu.stat, /proc/meminfo).
func keyed(p string) map[string]int64 {
	m := map[string]int64{}
	f, err := os.Open(p)
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 {
			if n, err := strconv.ParseInt(fs[1], 10, 64); err == nil {
				m[strings.TrimSuffix(fs[0], ":")] = n
			}
		}
	}
	return m
}

// cpuCount is the cgroup's CPU quota rounded up, else the CPUs the agent
// may run on.
func cpuCount() int {
	n := runtime.NumCPU()
	if b, err := os.ReadFile(cgroupDir + "/cpu.max"); err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 && f[0] != "max" {
			q, err1 := strconv.ParseFloat(f[0], 64)
			p, err2 := strconv.ParseFloat(f[1], 64)
			if err1 == nil && err2 == nil && p > 0 {
				n = min(n, max(1, int(math.Ceil(q/p))))
			}
		}
	}
	return n
}

// memory is the bytes in use, the limit and the page cache: the cgroup's
// where it has a limit, else the kernel's.
func memory() (used, total, cache int64) {
	mi := keyed("/proc/meminfo")
	total = mi["MemTotal"] * 1024
	used = total - mi["MemAvailable"]*1024
	cache = mi["Cached"] * 1024
	if cur := readInt(cgroupDir + "/memory.current"); cur > 0 {
		used = cur
		cache = keyed(cgroupDir + "/memory.stat")["file"]
		if lim := readInt(cgroupDir + "/memory.max"); lim > 0 && (total <= 0 || lim < total) {
			total = lim
		}
	}
	return used, total, cache
}

// cpuTime is the cgroup's CPU time in µs with total -1, else busy and
// total jiffies of /proc/stat.
func cpuTime() (busy, total int64) {
	if u, ok := keyed(cgroupDir + "/cpu.stat")["usage_usec"]; ok {
		return u, -1
	}
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0
	}
	fs := strings.Fields(sc.Text())
	for i, v := range fs[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times (100 on
// every Linux architecture Chaser runs on).
const clockTicks = 100

// procCPUTime is the CPU time in µs (total -1, as a cgroup's) of the
// processes in the agent's PID namespace, the sandbox's: user and system
// time of each, with that of the children it reaped. The agent is init
// and reaps orphans, so time of processes that ended stays counted.
func procCPUTime() (busy, total int64) {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if d.Name()[0] < '0' || d.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces), in
		// parentheses: state is field 3, utime..cstime 14..17.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		fs := strings.Fields(string(b[i+1:]))
		if len(fs) < 15 {
			continue
		}
		for _, f := range fs[11:15] {
			n, _ := strconv.ParseInt(f, 10, 64)
			busy += n
		}
	}
	return busy * (1e6 / clockTicks), -1
}
