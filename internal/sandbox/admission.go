package sandbox

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// Host-wide admission: before a sandbox is made — a user's fresh one or a
// warm pool's refill — the service asks whether the host has room for
// it. Tier limits bound each account; these bound the host as a whole, so
// that creates are refused (429 with Retry-After) before the host runs out
// of memory rather than after.
//
// Every sandbox the service holds counts: running sessions, sandboxes
// being made, and the warm pool's. The pool never takes the last slots:
// it refills only while the host would keep a headroom free for users
// (PoolHeadroom slots, and memory above PoolMemoryFactor × the reserve),
// and when a user's create needs a slot the pool holds, the pool yields
// one of its idle sandboxes. So a full pool never makes a user's create
// fail. A claim from the pool makes nothing and is never refused here.

// HostLimits bound what the whole host runs (the config file's host:).
type HostLimits struct {
	// MaxSandboxes is how many sandboxes the host runs at most, pooled
	// ones included; 0: DefaultMaxSandboxes of the host's memory.
	MaxSandboxes int
	// MinFreeMemoryMB is the memory (MemAvailable) a create must leave;
	// 0: DefaultMinFreeMemoryMB of the host's memory. -1 disables the
	// check.
	MinFreeMemoryMB int64
}

// HostRetryAfter is the Retry-After of a create the host refused: long
// enough for a session to end or memory to come back, short enough for an
// interactive client.
const HostRetryAfter = 5 * time.Second

// PoolMemoryFactor: the warm pool refills only while MemAvailable is at
// least this many times the reserve (MinFreeMemoryMB).
const PoolMemoryFactor = 1.5

// DefaultMaxSandboxes is the host-wide sandbox limit of a host with
// totalMB of memory: one per 32 MiB (an idle sandbox costs about 2 MiB;
// the rest is what its commands use), at least 8.
func DefaultMaxSandboxes(totalMB int64) int {
	return max(8, int(totalMB/32))
}

// DefaultMinFreeMemoryMB is the memory reserve of a host with totalMB of
// memory: 5% of it, at least 256 MiB, left for the server, the kernel's
// caches and the sandboxes' growth.
func DefaultMinFreeMemoryMB(totalMB int64) int64 {
	return max(256, totalMB/20)
}

// Resolve fills the limits left at 0 from the host's memory (totalMB).
func (l HostLimits) Resolve(totalMB int64) HostLimits {
	if l.MaxSandboxes <= 0 {
		l.MaxSandboxes = DefaultMaxSandboxes(totalMB)
	}
	if l.MinFreeMemoryMB == 0 {
		l.MinFreeMemoryMB = DefaultMinFreeMemoryMB(totalMB)
	}
	return l
}

// PoolHeadroom is how many of max slots the warm pool leaves to users'
// creates: a tenth, at least one.
func PoolHeadroom(max int) int {
	return (max + 9) / 10
}

// HostLimits returns the host-wide limits in force.
func (s *Service) HostLimits() HostLimits { return s.cfg.Host }

// hostLoad is what the host holds when a sandbox is asked for.
type hostLoad struct {
	// Sandboxes counts every sandbox the service holds: running, being
	// made, and pooled (Pooled of them idle in the warm pool, Filling
	// being made for it).
	Sandboxes, Pooled, Filling int
	// AvailableMB is /proc/meminfo's MemAvailable; < 0 when unknown.
	AvailableMB int64
}

// admission is the decision on one sandbox asked for.
type admission struct {
	OK bool
	// Yield is how many idle pooled sandboxes to release: before making
	// the sandbox when OK (the slots it needs), or to give memory back
	// when not.
	Yield int
	// Why says why not (a message for the user when !OK).
	Why string
}

// admitUser decides on a user's fresh sandbox: refused when the host
// holds MaxSandboxes besides the pool's, or memory is below the reserve;
// the pool yields the slots the sandbox needs (of its idle sandboxes: one
// it is making is dropped when made on a full host, see keepFilled).
func (l HostLimits) admitUser(h hostLoad) admission {
	if others := h.Sandboxes - h.Pooled - h.Filling; others >= l.MaxSandboxes {
		return admission{Why: fmt.Sprintf("the host runs %d sandboxes, the most it allows (host.max_sandboxes)", others)}
	}
	if l.MinFreeMemoryMB > 0 && h.AvailableMB >= 0 && h.AvailableMB < l.MinFreeMemoryMB {
		return admission{Yield: h.Pooled, Why: fmt.Sprintf("the host is low on memory (%d MiB available, %d MiB kept free: host.min_free_memory_mb)", h.AvailableMB, l.MinFreeMemoryMB)}
	}
	return admission{OK: true, Yield: max(0, h.Sandboxes+1-l.MaxSandboxes)}
}

// admitPool decides on a warm pool's refill: it stops PoolHeadroom slots
// before the limit, and at PoolMemoryFactor × the memory reserve.
func (l HostLimits) admitPool(h hostLoad) admission {
	if h.Sandboxes+1 > l.MaxSandboxes-PoolHeadroom(l.MaxSandboxes) {
		return admission{Why: "the host's sandbox limit less the users' headroom is reached"}
	}
	if l.MinFreeMemoryMB > 0 && h.AvailableMB >= 0 && float64(h.AvailableMB) < PoolMemoryFactor*float64(l.MinFreeMemoryMB) {
		return admission{Why: "the host's memory is below the pool's reserve"}
	}
	return admission{OK: true}
}

// hostGate counts the sandboxes being made, and serializes the decisions
// so that two creates cannot both take the last slot: every increase of
// the count (a user's sandbox being made, a pool slot marked filling)
// happens under mu.
type hostGate struct {
	mu     sync.Mutex
	making int // users' fresh sandboxes admitted, not yet running or gone
}

// meminfo reads MemTotal and MemAvailable from /proc/meminfo, in MiB.
func meminfo() (totalMB, availMB int64, err error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, 0, err
	}
	return parseMeminfo(b)
}

func parseMeminfo(b []byte) (totalMB, availMB int64, err error) {
	totalMB, availMB = -1, -1
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(name) {
		case "MemTotal":
			dst = &totalMB
		case "MemAvailable":
			dst = &availMB
		default:
			continue
		}
		kb, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte("kB")))), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("meminfo %s: %w", name, err)
		}
		*dst = kb >> 10
	}
	if totalMB < 0 || availMB < 0 {
		return 0, 0, fmt.Errorf("meminfo: no MemTotal or MemAvailable")
	}
	return totalMB, availMB, nil
}

// load returns what the host holds now. Call it with host.mu held.
func (s *Service) load() hostLoad {
	h := hostLoad{AvailableMB: -1}
	if s.cfg.HostMemory != nil {
		h.AvailableMB = s.cfg.HostMemory()
	} else if _, avail, err := meminfo(); err == nil {
		h.AvailableMB = avail
	}
	s.mu.Lock()
	h.Sandboxes = len(s.live)
	s.mu.Unlock()
	h.Sandboxes += s.host.making
	p := &s.pool
	p.mu.Lock()
	for _, sl := range p.slots {
		h.Pooled += len(sl.idle)
		if sl.filling {
			h.Filling++
		}
	}
	h.Sandboxes += h.Filling
	h.Sandboxes += h.Pooled + p.claiming
	p.mu.Unlock()
	return h
}

// keepFilled tells whether a sandbox the pool just made (still counted as
// filling) may join it: not when users' creates filled the host meanwhile
// (over the limit with it); it is then released. Call it with host.mu
// held.
func (l HostLimits) keepFilled(h hostLoad) bool {
	return h.Sandboxes <= l.MaxSandboxes
}

// admitHost admits a user's fresh sandbox, or refuses it with
// ErrResourceExhausted carrying HostRetryAfter. The pool yields what the
// decision asks first. done ends the admission: call it once the
// sandbox runs (it is in s.live) or failed.
func (s *Service) admitHost() (done func(), err error) {
	s.host.mu.Lock()
	a := s.cfg.Host.admitUser(s.load())
	if a.OK {
		s.host.making++
	}
	s.host.mu.Unlock()
	if a.Yield > 0 {
		s.yieldPool(a.Yield)
	}
	if !a.OK {
		s.cfg.Metrics.HostRefusals.WithLabelValues("create").Inc()
		return nil, errdefs.WithRetryAfter(errdefs.New(errdefs.ErrResourceExhausted, a.Why+"; retry later"), HostRetryAfter)
	}
	return func() {
		s.host.mu.Lock()
		s.host.making--
		s.host.mu.Unlock()
	}, nil
}
