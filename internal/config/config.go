// Package config reads the operator's policy file, `chaser serve --config
// FILE` (YAML): what flags cannot say well — per-tier limits, resource
// defaults and maximums, the runtime per tier; pools, the sandbox network
// and allowed registries. Decoding is strict (an unknown key is an error
// naming it and the file) and everything is validated before the server
// starts. docs/config.md documents the schema.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/image"
	"github.com/chaserhq/chaser/internal/netguard"
	"github.com/chaserhq/chaser/internal/sandbox"
)

// File is the operator's config file. The zero File (and a nil *File)
// changes nothing.
type File struct {
	// Path is where the file was read from, for messages.
	Path       string          `yaml:"-"`
	Tiers      map[string]Tier `yaml:"tiers"`
	Pool       []Pool          `yaml:"pool"`
	Network    Network         `yaml:"network"`
	Registries Registries      `yaml:"registries"`
	Host       Host            `yaml:"host"`
}

// Host bounds the whole host (sandbox.HostLimits): how many sandboxes it
// runs, pooled ones included, and the memory creates must leave free
// (MemAvailable; 0 turns the check off). Unset: derived from the host's
// memory.
type Host struct {
	MaxSandboxes    *int   `yaml:"max_sandboxes"`
	MinFreeMemoryMB *int64 `yaml:"min_free_memory_mb"`
	// SandboxesCPUShares is the CPU weight (cgroup v1 shares; 0 leaves
	// the kernel's 1024) of the cgroup all sandboxes sit in, against the
	// host's other tasks; ServerNice the server's own nice value. See
	// Scheduling.
	SandboxesCPUShares *int64 `yaml:"sandboxes_cpu_shares"`
	ServerNice         *int   `yaml:"server_nice"`
}

// Tier overrides the built-in limits of one tier, field by field: what it
// leaves out keeps the built-in value.
type Tier struct {
	MaxSandboxes *int           `yaml:"max_sandboxes"`
	TTL          *time.Duration `yaml:"ttl"`
	IdleTimeout  *time.Duration `yaml:"idle_timeout"`
	Runtime      string         `yaml:"runtime"`
	Defaults     Resources      `yaml:"defaults"`
	Max          Resources      `yaml:"max"`
	// Egress is the tier's network mode (none, internet); Allow the
	// private CIDRs its sandboxes may reach.
	Egress string   `yaml:"egress"`
	Allow  []string `yaml:"allow"`
}

// Resources are a tier's resource defaults or maximums; each is optional.
type Resources struct {
	CPU      *float64 `yaml:"cpu"`
	MemoryMB *int64   `yaml:"memory_mb"`
	DiskMB   *int64   `yaml:"disk_mb"`
	Pids     *int64   `yaml:"pids"`
}

// Pool asks for Size warm sandboxes of an image, runtime and network mode,
// per tier whose sessions run on that runtime, with the tier's default
// resources (sandbox.PoolSpec). Its sandboxes are made with that network
// mode ("" is the tier's), and serve only sessions asking for it.
type Pool struct {
	Image   string `yaml:"image"`
	Runtime string `yaml:"runtime"`
	Network string `yaml:"network"`
	Size    *int   `yaml:"size"`
}

// Network is the sandboxes' network: Subnet is their address pool.
type Network struct {
	Subnet string `yaml:"subnet"`
}

// Registries lists registries pulls may reach on non-public addresses
// (Allow) and over plain HTTP (Insecure); merged with the flags' lists.
type Registries struct {
	Allow    []string `yaml:"allow"`
	Insecure []string `yaml:"insecure"`
}

// Runtimes are the runtimes a tier or pool may name.
var Runtimes = []string{"runc", "runsc", "microvm"}

// Load reads and validates the file at path. An empty path is no file:
// (nil, nil). Errors are ErrInvalidArgument naming the file and the
// setting (or the unknown key and its line).
func Load(path string) (*File, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("--config: %v", err))
	}
	f, err := Parse(b)
	if err != nil {
		return nil, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("config %s: %s", path, err.Error()))
	}
	f.Path = path
	return f, nil
}

// Parse decodes and validates a config file's contents.
func Parse(b []byte) (*File, error) {
	f := &File{}
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	if err := d.Decode(f); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(err)
	}
	var extra any
	if err := d.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document; write one")
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	return f, nil
}

// sections names the place of each Go type of the schema, for messages
// about unknown keys.
var sections = map[string]string{
	"config.File": "at the top level (tiers, pool, network, registries, host)", "config.Tier": "in a tier",
	"config.Host":      "in host (max_sandboxes, min_free_memory_mb, sandboxes_cpu_shares, server_nice)",
	"config.Resources": "in resources (cpu, memory_mb, disk_mb, pids)", "config.Pool": "in a pool entry",
	"config.Network": "in network", "config.Registries": "in registries (allow, insecure)",
}

var (
	unknownField = regexp.MustCompile(`line (\d+): field (\S+) not found in type (\S+)`)
	notDuration  = regexp.MustCompile("line (\\d+): cannot unmarshal !!\\w+ `(.*)` into time.Duration")
)

// yamlError rewrites the decoder's messages in the file's terms.
func yamlError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		if g := unknownField.FindStringSubmatch(m); g != nil {
			where := sections[g[3]]
			if where == "" {
				where = "in " + g[3]
			}
			m = fmt.Sprintf("line %s: unknown key %q %s", g[1], g[2], where)
		} else if g := notDuration.FindStringSubmatch(m); g != nil {
			m = fmt.Sprintf("line %s: %s is not a duration: write one with a unit, such as 30m or 1h", g[1], g[2])
		}
		msgs = append(msgs, m)
	}
	return errors.New(strings.Join(msgs, "; "))
}

func (f *File) validate() error {
	for _, name := range sortedKeys(f.Tiers) {
		if name != api.TierFree && name != api.TierPaid {
			return fmt.Errorf("tiers: unknown tier %q (use %s or %s)", name, api.TierFree, api.TierPaid)
		}
		if err := f.Tiers[name].validate(); err != nil {
			return fmt.Errorf("tiers.%s.%w", name, err)
		}
	}
	for i, p := range f.Pool {
		if err := p.validate(); err != nil {
			return fmt.Errorf("pool[%d].%w", i, err)
		}
	}
	if m := f.Host.MaxSandboxes; m != nil && *m < 1 {
		return fmt.Errorf("host.max_sandboxes %d: want at least 1", *m)
	}
	if m := f.Host.MinFreeMemoryMB; m != nil && *m < 0 {
		return fmt.Errorf("host.min_free_memory_mb %d: want MiB (0 turns the memory check off)", *m)
	}
	if m := f.Host.SandboxesCPUShares; m != nil && (*m < 0 || *m == 1 || *m > 262144) {
		return fmt.Errorf("host.sandboxes_cpu_shares %d: want 2 to 262144 (cgroup v1 cpu.shares), or 0 for the kernel's default", *m)
	}
	if n := f.Host.ServerNice; n != nil && (*n < -20 || *n > 19) {
		return fmt.Errorf("host.server_nice %d: want -20 to 19", *n)
	}
	if f.Network.Subnet != "" {
		p, err := netip.ParsePrefix(f.Network.Subnet)
		if err != nil || !p.Addr().Is4() || p.Bits() > 30 || p.Masked() != p {
			return fmt.Errorf("network.subnet %q: want an IPv4 network such as 10.88.0.0/16 (at most /30)", f.Network.Subnet)
		}
	}
	for _, l := range []struct {
		name string
		list []string
	}{{"allow", f.Registries.Allow}, {"insecure", f.Registries.Insecure}} {
		for _, h := range l.list {
			if err := netguard.CheckHost(h); err != nil {
				return fmt.Errorf("registries.%s: %v", l.name, err)
			}
		}
	}
	return nil
}

func (t Tier) validate() error {
	if t.MaxSandboxes != nil && *t.MaxSandboxes < 1 {
		return fmt.Errorf("max_sandboxes %d: want at least 1", *t.MaxSandboxes)
	}
	if t.TTL != nil && *t.TTL <= 0 {
		return fmt.Errorf("ttl %v: want a positive duration such as 30m", *t.TTL)
	}
	if t.IdleTimeout != nil && *t.IdleTimeout < 0 {
		return fmt.Errorf("idle_timeout %v: want a duration such as 10m, or 0 to never end idle sessions", *t.IdleTimeout)
	}
	if t.Runtime != "" && !slices.Contains(Runtimes, t.Runtime) {
		return fmt.Errorf("runtime %q: use %s", t.Runtime, strings.Join(Runtimes, " or "))
	}
	for _, r := range []struct {
		name string
		res  Resources
	}{{"defaults", t.Defaults}, {"max", t.Max}} {
		if _, err := sandbox.Asked(r.res.request()); err != nil {
			return fmt.Errorf("%s: %s", r.name, strings.TrimPrefix(err.Error(), "resources: "))
		}
	}
	if err := checkNetworkMode("egress", t.Egress); err != nil {
		return err
	}
	for _, c := range t.Allow {
		if _, err := netip.ParsePrefix(c); err != nil {
			return fmt.Errorf("allow: %q is not a CIDR such as 10.1.0.0/16", c)
		}
	}
	return nil
}

func (p Pool) validate() error {
	if p.Image == "" {
		return errors.New("image: missing (an image reference, or host)")
	}
	if err := image.CheckRef(p.Image); err != nil {
		return fmt.Errorf("image %q: %s", p.Image, err.Error())
	}
	if p.Runtime != "" && !slices.Contains(Runtimes, p.Runtime) {
		return fmt.Errorf("runtime %q: use %s", p.Runtime, strings.Join(Runtimes, " or "))
	}
	if err := checkNetworkMode("network", p.Network); err != nil {
		return err
	}
	if p.Size == nil || *p.Size < 0 {
		return errors.New("size: want how many warm sandboxes to keep (0 or more)")
	}
	return nil
}

func checkNetworkMode(name, mode string) error {
	if mode != "" && mode != "none" && mode != "internet" {
		return fmt.Errorf("%s %q: use none or internet", name, mode)
	}
	return nil
}

// request is r as a resource request, to validate and resolve it like a
// session's.
func (r Resources) request() *api.ResourceRequest {
	return &api.ResourceRequest{CPU: r.CPU, MemoryMB: r.MemoryMB, DiskMB: r.DiskMB, Pids: r.Pids}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ApplyTiers returns base with the file's tier settings laid over it,
// field by field. A default the file leaves out is lowered to a maximum
// the file sets below it; a default the file sets above a maximum is an
// error.
func (f *File) ApplyTiers(base map[string]sandbox.TierLimits) (map[string]sandbox.TierLimits, error) {
	out := make(map[string]sandbox.TierLimits, len(base))
	for name, t := range base {
		out[name] = t
	}
	if f == nil {
		return out, nil
	}
	for _, name := range sortedKeys(f.Tiers) {
		ft, t := f.Tiers[name], out[name]
		if ft.MaxSandboxes != nil {
			t.MaxSandboxes = *ft.MaxSandboxes
		}
		if ft.TTL != nil {
			t.TTL = *ft.TTL
		}
		if ft.IdleTimeout != nil {
			t.IdleTimeout = *ft.IdleTimeout
		}
		if ft.Runtime != "" {
			t.Runtime = ft.Runtime
		}
		if ft.Egress != "" {
			t.Egress = ft.Egress
		}
		for _, c := range ft.Allow {
			p, _ := netip.ParsePrefix(c) // validated at Load
			t.Allow = append(t.Allow, p.Masked())
		}
		def, _ := sandbox.Asked(ft.Defaults.request()) // validated at Load
		mx, _ := sandbox.Asked(ft.Max.request())
		for _, r := range []struct {
			name         string
			def, max     *int64
			fileDef, fmx int64
		}{
			{"cpu", &t.Defaults.MilliCPUs, &t.Max.MilliCPUs, def.MilliCPUs, mx.MilliCPUs},
			{"memory_mb", &t.Defaults.MemoryMB, &t.Max.MemoryMB, def.MemoryMB, mx.MemoryMB},
			{"disk_mb", &t.Defaults.DiskMB, &t.Max.DiskMB, def.DiskMB, mx.DiskMB},
			{"pids", &t.Defaults.Pids, &t.Max.Pids, def.Pids, mx.Pids},
		} {
			if r.fmx > 0 {
				*r.max = r.fmx
			}
			if r.fileDef > 0 {
				*r.def = r.fileDef
			} else if *r.def > *r.max {
				*r.def = *r.max
			}
			if *r.def > *r.max {
				return nil, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf(
					"config %s: tiers.%s: defaults.%s is over max.%s (%s > %s)", f.Path, name, r.name, r.name, show(r.name, *r.def), show(r.name, *r.max)))
			}
		}
		out[name] = t
	}
	return out, nil
}

// show formats a resource value as the file writes it.
func show(name string, v int64) string {
	if name == "cpu" {
		return fmt.Sprint(float64(v) / 1000)
	}
	return fmt.Sprint(v)
}

// Inactive lists the settings the file sets that the server parses and
// validates but does not apply yet, by their path in the file.
func (f *File) Inactive() []string {
	if f == nil {
		return nil
	}
	var out []string // pool, egress, allow and network.subnet are all applied
	return out
}

// Scheduling returns the sandboxes' CPU weight and the server's nice
// value: the file's, else DefaultSandboxesCPUShares for cpus cores and
// DefaultServerNice.
func (f *File) Scheduling(cpus int) (shares uint64, nice int) {
	shares, nice = DefaultSandboxesCPUShares(cpus), DefaultServerNice
	if f == nil {
		return shares, nice
	}
	if f.Host.SandboxesCPUShares != nil {
		shares = uint64(*f.Host.SandboxesCPUShares) // validated: 0 or 2..262144
	}
	if f.Host.ServerNice != nil {
		nice = *f.Host.ServerNice
	}
	return shares, nice
}

// DefaultSandboxesCPUShares weighs the sandboxes together as two busy
// tasks per core (2048 per core; the kernel gives a new cgroup 1024 in
// all, one task's worth, however many cores). At the kernel's weight
// 16 clients running `echo hi` across 120 sandboxes left the sandboxes
// short of CPU beside the server's and clients' threads: 596–671 exec/s,
// p99 63–81 ms; with this and DefaultServerNice 629–655 exec/s, p99
// 55–66 ms. Heavier weights did better under that load but let a tenant
// spinning on every core slow the API (docs/BENCHMARKS.md, "The tail under
// load").
func DefaultSandboxesCPUShares(cpus int) uint64 {
	return min(2048*uint64(max(cpus, 1)), 262144)
}

// DefaultServerNice keeps the server (API, control plane) ahead of busy
// sandboxes: a task at nice -5 weighs 3121 against a nice-0 task's 1024.
// The sandboxes themselves run at nice 0: their agent resets it.
const DefaultServerNice = -5

// HostLimits returns the file's host limits; what it leaves out is 0, for
// sandbox.New to derive from the host's memory.
func (f *File) HostLimits() sandbox.HostLimits {
	var l sandbox.HostLimits
	if f == nil {
		return l
	}
	if f.Host.MaxSandboxes != nil {
		l.MaxSandboxes = *f.Host.MaxSandboxes
	}
	if m := f.Host.MinFreeMemoryMB; m != nil {
		l.MinFreeMemoryMB = *m
		if *m == 0 {
			l.MinFreeMemoryMB = -1 // off
		}
	}
	return l
}
