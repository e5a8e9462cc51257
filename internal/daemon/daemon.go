// Package daemon wires and runs `chaser serve`: it loads and validates the
// configuration, opens the store, sets up the runtime, the image store and
// the services, recovers sandboxes left by a previous run, serves HTTP, and
// shuts down gracefully.
package daemon

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/account"
	"github.com/chaserhq/chaser/internal/agent/fs"
	"github.com/chaserhq/chaser/internal/config"
	"github.com/chaserhq/chaser/internal/connlimit"
	"github.com/chaserhq/chaser/internal/console"
	"github.com/chaserhq/chaser/internal/disk"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/image"
	"github.com/chaserhq/chaser/internal/mcp"
	"github.com/chaserhq/chaser/internal/metrics"
	"github.com/chaserhq/chaser/internal/netguard"
	"github.com/chaserhq/chaser/internal/network"
	nicepkg "github.com/chaserhq/chaser/internal/nice"
	"github.com/chaserhq/chaser/internal/runtime/vm"
	"github.com/chaserhq/chaser/internal/sandbox"
	"github.com/chaserhq/chaser/internal/server"
	"github.com/chaserhq/chaser/internal/store/sqlite"
	"github.com/chaserhq/chaser/internal/userns"
)

// Config is the whole configuration of the server. Flags override CHASER_*
// environment variables, which override the defaults.
type Config struct {
	// ConfigFile is the operator's policy file (YAML, optional; see
	// internal/config and docs/config.md). CHASER_SERVER_CONFIG.
	ConfigFile   string
	Addr         string // CHASER_ADDR
	DataDir      string // CHASER_DATA_DIR
	Runtime      string // CHASER_RUNTIME: runc or runsc, the default runtime
	DefaultImage string // CHASER_DEFAULT_IMAGE
	MaxFileSize  Size   // CHASER_MAX_FILE_SIZE: bytes per upload or download
	// IdleTimeout, when set, replaces every tier's idle timeout
	// (CHASER_IDLE_TIMEOUT, e.g. 10m; negative disables idle reaping).
	IdleTimeout time.Duration
	// ReapInterval is how often expired and idle sessions are looked for
	// (CHASER_REAP_INTERVAL).
	ReapInterval time.Duration
	// HealthInterval is how often every sandbox's agent is asked for its
	// health (CHASER_HEALTH_INTERVAL); one that misses 3 checks in a row
	// ends its session (reason agent_unresponsive).
	HealthInterval time.Duration
	// InsecureRegistries may be reached over plain HTTP (HOST or
	// HOST:PORT). CHASER_INSECURE_REGISTRIES: comma-separated.
	InsecureRegistries []string
	// RegistryCertsDir holds per-registry TLS certificates laid out as
	// Docker's certs.d (HOST[:PORT]/ca.crt ...). CHASER_REGISTRY_CERTS_DIR,
	// default /etc/docker/certs.d.
	RegistryCertsDir string
	// AllowRegistries may be pulled from even on loopback, private,
	// link-local or this host's own addresses, which pulls otherwise never
	// reach (HOST or HOST:PORT). CHASER_ALLOW_REGISTRIES: comma-separated.
	AllowRegistries []string
	Domain          string // CHASER_DOMAIN: host-style forwarding on {session}.{Domain}; off when empty
	// MCPProgress is how often a long MCP tool call reports progress
	// (CHASER_MCP_PROGRESS_INTERVAL); at most 10s.
	MCPProgress time.Duration
	// CORSOrigins are the browser origins ("scheme://host[:port]", or "*")
	// whose pages may call the API with a Bearer key; none by default.
	// CHASER_CORS_ORIGINS: comma-separated.
	CORSOrigins []string

	// ReadHeaderTimeout bounds the time a client may take to send a
	// request's headers, also the first request of a new connection
	// (CHASER_READ_HEADER_TIMEOUT).
	ReadHeaderTimeout time.Duration
	// HTTPIdleTimeout closes keep-alive connections idle this long between
	// requests (CHASER_HTTP_IDLE_TIMEOUT).
	HTTPIdleTimeout time.Duration
	// BodyTimeout bounds the reading of a JSON request body
	// (CHASER_BODY_TIMEOUT). There is no server-wide read or write timeout:
	// it would cut streams, follows, terminals, uploads and `chaser dev`.
	BodyTimeout time.Duration
	// MaxConnsPerIP caps the connections of one client address (an IPv6
	// /64), loopback included; 0 disables (CHASER_MAX_CONNS_PER_IP).
	MaxConnsPerIP int
	// MaxConns caps all connections; 0 disables (CHASER_MAX_CONNS). The
	// default is 3/4 of the open-files limit.
	MaxConns int
	// MetricsAddr, when set, serves /metrics without a key on a listener
	// of its own (CHASER_METRICS_ADDR); on Addr it needs the admin key.
	MetricsAddr string
	// Runsc is the runsc binary, a path or a name on PATH (CHASER_RUNSC);
	// when it is the default "runsc" and not on PATH, oci.RunscCache is
	// tried. Only read when some tier or the default runs runsc.
	Runsc string
	// RunscPlatform is gVisor's platform (CHASER_RUNSC_PLATFORM, default
	// systrap; ptrace works too).
	RunscPlatform string
	// TierRuntimes choose a runtime per tier ("free" → "runsc"), over
	// Runtime (--tier-runtime free=runsc, CHASER_TIER_RUNTIMES
	// "free=runsc,paid=runc").
	TierRuntimes map[string]string
	// DiskSize, when set, replaces every tier's default disk_mb, the disk
	// quota of new sandboxes and workspaces that ask for none, and raises
	// the tier's maximum to it if below; over the config file's
	// (CHASER_DISK_SIZE, e.g. 4GiB).
	DiskSize Size
	// NoDiskQuota turns disk quotas off for new sandboxes and workspaces:
	// their writable layers are plain directories on the data dir's file
	// system, their disk_mb unenforced, for hosts without loop devices
	// (CHASER_NO_DISK_QUOTA=1).
	NoDiskQuota bool
	// ConsoleAddr, when set, serves the web console (internal/console) on
	// a listener of its own, an origin no forwarded app shares
	// (CHASER_CONSOLE_ADDR). With Domain it is also served on the host
	// console.DOMAIN of Addr.
	ConsoleAddr string
	// UsernsRemap maps root of every runc sandbox to an unprivileged host
	// range (--userns-remap, CHASER_USERNS): "off" (default: sandbox root
	// is host root with reduced capabilities), "auto" (the chaser user's
	// /etc/subuid range, else 100000:65536) or "BASE:SIZE". See
	// internal/userns.
	UsernsRemap string
	remap       userns.Remap // parsed by Validate
	// sandboxesCPUShares is the config file's host.sandboxes_cpu_shares
	// (set by Run; see config.File.Scheduling).
	sandboxesCPUShares uint64
	// MicrovmKernel is the directory of the microvm runtime's guest kernel
	// and initramfs (CHASER_MICROVM_KERNEL, default vm.DefaultKernelDir,
	// built by scripts/microvm.sh); MicrovmAccel is kvm, tcg or empty for
	// kvm when usable (CHASER_MICROVM_ACCEL).
	MicrovmKernel string
	MicrovmAccel  string
	// Egress is the network mode of sessions whose tier names none
	// (--egress, CHASER_EGRESS): internet (the default: egress through
	// the host's NAT under the deny rules of docs/network.md) or none.
	Egress string
	// PoolSize is how many warm sandboxes of the default image, runtime
	// and network to keep per tier (--pool-size, CHASER_POOL_SIZE; 0
	// disables); PoolSizeSet tells that the flag or the variable set it,
	// so that it wins over the config file's entry for the same pool.
	PoolSize    int
	PoolSizeSet bool
}

// DefaultDataDir is /var/lib/chaser for root, else ~/.local/share/chaser.
func DefaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/chaser"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "chaser")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "share", "chaser")
}

// writeFileAtomic writes data to path through a temporary file and a rename.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// loadKey returns the 32-byte secret kept in path (mode 0600), making it on
// first use.
func loadKey(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return b, nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, key, 0o600); err != nil {
		return nil, err
	}
	return key, os.Rename(tmp, path)
}

// AgentPath returns the agent binary that sandboxes run as their init:
// chaser-agent beside the server's executable self when it is there (a
// small binary: an idle sandbox costs half the memory), else self, whose
// hidden `agent` subcommand runs the same code.
func AgentPath(self string) string {
	p := filepath.Join(filepath.Dir(self), "chaser-agent")
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return p
	}
	return self
}

// Interpreter returns the ELF interpreter (dynamic loader) the binary at
// path asks for, "" for a static binary or one that cannot be read.
func Interpreter(path string) string {
	f, err := elf.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return "a dynamic loader"
			}
			return strings.TrimRight(string(b), "\x00")
		}
	}
	return ""
}

// CgroupParent names the cgroup under which a server's sandboxes live:
// "chaser" for the default data dir, else one per data dir, so that servers
// sharing a host never take each other's cgroups for leftovers.
func CgroupParent(dataDir string) string {
	if dataDir == DefaultDataDir() {
		return "chaser"
	}
	sum := sha256.Sum256([]byte(dataDir))
	return "chaser-" + hex.EncodeToString(sum[:4])
}

// Defaults returns the configuration from the environment and defaults.
func Defaults() Config {
	env := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	return Config{
		ConfigFile:         os.Getenv("CHASER_SERVER_CONFIG"),
		Addr:               env("CHASER_ADDR", "127.0.0.1:8080"),
		DataDir:            env("CHASER_DATA_DIR", DefaultDataDir()),
		Runtime:            env("CHASER_RUNTIME", "runc"),
		Egress:             env("CHASER_EGRESS", "internet"),
		Runsc:              env("CHASER_RUNSC", "runsc"),
		RunscPlatform:      env("CHASER_RUNSC_PLATFORM", "systrap"),
		TierRuntimes:       tierRuntimesEnv(os.Getenv("CHASER_TIER_RUNTIMES")),
		UsernsRemap:        env("CHASER_USERNS", "off"),
		MicrovmKernel:      os.Getenv("CHASER_MICROVM_KERNEL"),
		MicrovmAccel:       os.Getenv("CHASER_MICROVM_ACCEL"),
		DefaultImage:       env("CHASER_DEFAULT_IMAGE", image.HostRef),
		MaxFileSize:        sizeEnv("CHASER_MAX_FILE_SIZE", Size(fs.DefaultMaxFileSize)),
		IdleTimeout:        durationEnv("CHASER_IDLE_TIMEOUT", 0),
		ReapInterval:       durationEnv("CHASER_REAP_INTERVAL", 15*time.Second),
		HealthInterval:     durationEnv("CHASER_HEALTH_INTERVAL", sandbox.DefaultHealthInterval),
		InsecureRegistries: splitList(os.Getenv("CHASER_INSECURE_REGISTRIES")),
		RegistryCertsDir:   env("CHASER_REGISTRY_CERTS_DIR", image.DefaultCertsDir),
		AllowRegistries:    splitList(os.Getenv("CHASER_ALLOW_REGISTRIES")),
		Domain:             os.Getenv("CHASER_DOMAIN"),
		MCPProgress:        durationEnv("CHASER_MCP_PROGRESS_INTERVAL", mcp.DefaultProgressInterval),
		CORSOrigins:        splitList(os.Getenv("CHASER_CORS_ORIGINS")),
		ReadHeaderTimeout:  durationEnv("CHASER_READ_HEADER_TIMEOUT", 10*time.Second),
		HTTPIdleTimeout:    durationEnv("CHASER_HTTP_IDLE_TIMEOUT", 90*time.Second),
		BodyTimeout:        durationEnv("CHASER_BODY_TIMEOUT", time.Minute),
		MaxConnsPerIP:      intEnv("CHASER_MAX_CONNS_PER_IP", 512),
		MaxConns:           intEnv("CHASER_MAX_CONNS", defaultMaxConns()),
		MetricsAddr:        os.Getenv("CHASER_METRICS_ADDR"),
		DiskSize:           sizeEnv("CHASER_DISK_SIZE", 0),
		NoDiskQuota:        os.Getenv("CHASER_NO_DISK_QUOTA") == "1",
		ConsoleAddr:        os.Getenv("CHASER_CONSOLE_ADDR"),
		PoolSize:           intEnv("CHASER_POOL_SIZE", 2),
		PoolSizeSet:        os.Getenv("CHASER_POOL_SIZE") != "",
	}
}

// defaultMaxConns leaves a quarter of the open-files limit to sandboxes,
// the store and the image cache.
func defaultMaxConns() int {
	lim := fileLimit()
	if lim == 0 || lim > 1<<22 {
		lim = 1 << 22
	}
	return int(max(lim*3/4, 64))
}

// intEnv reads a count; a bad value becomes -1, which Validate reports.
func intEnv(k string, def int) int {
	v := os.Getenv(k)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// badDuration marks an environment value that is not a duration, for
// Validate to report.
const badDuration = time.Duration(math.MinInt64)

// durationEnv reads a duration such as "10m".
func durationEnv(k string, def time.Duration) time.Duration {
	v := os.Getenv(k)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return badDuration
	}
	return d
}

// Validate checks the configuration before anything starts.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("--addr %q: want HOST:PORT", c.Addr))
	}
	if _, _, err := net.SplitHostPort(c.ConsoleAddr); c.ConsoleAddr != "" && err != nil {
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("--console-addr %q: want HOST:PORT", c.ConsoleAddr))
	}
	if _, _, err := net.SplitHostPort(c.MetricsAddr); c.MetricsAddr != "" && err != nil {
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("--metrics-addr %q: want HOST:PORT", c.MetricsAddr))
	}
	if !knownRuntime(c.Runtime) {
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("--runtime %q: use runc, runsc or microvm", c.Runtime))
	}
	if c.Egress != "none" && c.Egress != "internet" {
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("--egress %q: use none or internet", c.Egress))
	}
	if err := validateTierRuntimes(c.TierRuntimes); err != nil {
		return err
	}
	if err := c.validateRemap(); err != nil {
		return err
	}
	if c.DefaultImage == image.HostRef || c.DefaultImage == "" {
		// A VM boots a disk made from an image's layers: the host image
		// (the host's own /usr) has none.
		if c.Runtime == "microvm" {
			return errdefs.New(errdefs.ErrInvalidArgument, "--runtime microvm runs OCI images only, and the default image is the built-in host image: set --default-image (CHASER_DEFAULT_IMAGE) to an OCI image, e.g. --default-image debian:12")
		}
		for t, r := range c.TierRuntimes {
			if r == "microvm" {
				return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("--tier-runtime %s=microvm runs OCI images only, and the default image is the built-in host image: set --default-image (CHASER_DEFAULT_IMAGE) to an OCI image, e.g. --default-image debian:12", t))
			}
		}
	}
	if c.MaxFileSize <= 0 {
		return errdefs.New(errdefs.ErrInvalidArgument, "--max-file-size / CHASER_MAX_FILE_SIZE: want a positive size such as 16MB")
	}
	if c.DiskSize < 0 || c.DiskSize > 0 && c.DiskSize < disk.MinSize {
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("--disk-size / CHASER_DISK_SIZE: want a size of at least %d MiB, such as 4GiB", disk.MinSize>>20))
	}
	if c.DiskSize > 0 && c.NoDiskQuota {
		return errdefs.New(errdefs.ErrInvalidArgument, "--disk-size and --no-disk-quota contradict each other: choose one")
	}
	if c.IdleTimeout == badDuration {
		return errdefs.New(errdefs.ErrInvalidArgument, "CHASER_IDLE_TIMEOUT is not a duration (e.g. 10m)")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--read-header-timeout (CHASER_READ_HEADER_TIMEOUT)", c.ReadHeaderTimeout}, {"--http-idle-timeout (CHASER_HTTP_IDLE_TIMEOUT)", c.HTTPIdleTimeout}, {"--body-timeout (CHASER_BODY_TIMEOUT)", c.BodyTimeout}} {
		if d.v <= 0 {
			return errdefs.New(errdefs.ErrInvalidArgument, d.name+" must be a positive duration such as 10s")
		}
	}
	if c.MaxConnsPerIP < 0 || c.MaxConns < 0 {
		return errdefs.New(errdefs.ErrInvalidArgument, "--max-conns-per-ip and --max-conns (CHASER_MAX_CONNS_PER_IP, CHASER_MAX_CONNS) take a count; 0 disables the cap")
	}
	if c.PoolSize < 0 {
		return errdefs.New(errdefs.ErrInvalidArgument, "--pool-size (CHASER_POOL_SIZE) takes a count of warm sandboxes; 0 disables the pool")
	}
	if c.ReapInterval <= 0 {
		return errdefs.New(errdefs.ErrInvalidArgument, "--reap-interval (CHASER_REAP_INTERVAL) must be a positive duration")
	}
	if c.MCPProgress <= 0 || c.MCPProgress > 10*time.Second {
		// Clients time out after 60 s without progress; several reports
		// must fall in that window.
		return errdefs.New(errdefs.ErrInvalidArgument, "--mcp-progress-interval (CHASER_MCP_PROGRESS_INTERVAL) must be a duration above 0 and at most 10s")
	}
	if c.HealthInterval <= 0 {
		return errdefs.New(errdefs.ErrInvalidArgument, "--health-interval (CHASER_HEALTH_INTERVAL) must be a positive duration")
	}
	if err := image.CheckRef(c.DefaultImage); err != nil {
		return fmt.Errorf("--default-image: %w", err)
	}
	if err := validateRegistries(c.InsecureRegistries); err != nil {
		return err
	}
	for _, h := range c.AllowRegistries {
		if err := netguard.CheckHost(h); err != nil {
			return errdefs.New(errdefs.ErrInvalidArgument, "--allow-registry "+err.Error())
		}
	}
	if err := validateDomain(c.Domain); err != nil {
		return err
	}
	if err := validateOrigins(c.CORSOrigins); err != nil {
		return err
	}
	if c.DataDir == "" {
		return errdefs.New(errdefs.ErrInvalidArgument, "--data-dir must not be empty")
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return err
	}
	c.DataDir = abs
	if os.Geteuid() != 0 {
		return errdefs.New(errdefs.ErrFailedPrecondition, "chaser serve must run as root: it mounts root filesystems and drives "+c.Runtime)
	}
	return nil
}

// listen opens a TCP listener on addr with the connection caps of cfg.
func listen(cfg Config, addr string, m *metrics.Metrics) (*connlimit.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return connlimit.New(l, connlimit.Config{
		PerClient: cfg.MaxConnsPerIP, Total: cfg.MaxConns,
		Rejected: func(reason string) { m.ConnsRefused.WithLabelValues(reason).Inc() },
	}), nil
}

// metricsServer serves /metrics without a key, and nothing else: it is
// for an address only the scraper reaches (--metrics-addr).
func metricsServer(cfg Config, m *metrics.Metrics) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	return httpServer(cfg, mux)
}

// httpServer returns the server of h. It sets no ReadTimeout or
// WriteTimeout: those would cut NDJSON streams, follow=1, SSE, WebSockets,
// uploads and `chaser dev`. Idle and slow clients are cut by the header and
// idle timeouts instead, bodies by per-handler deadlines.
func httpServer(cfg Config, h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: cfg.ReadHeaderTimeout, IdleTimeout: cfg.HTTPIdleTimeout}
}

// overrideTiers lays the flags that set something of every tier over
// tiers (the built-in limits with the config file's laid over them): the
// flags win over the file. --disk-size sets the default disk of every
// tier, in whole MiB, and raises the tier's maximum to it if below.
func overrideTiers(tiers map[string]sandbox.TierLimits, cfg Config) {
	for name, t := range tiers {
		if cfg.IdleTimeout != 0 {
			t.IdleTimeout = max(cfg.IdleTimeout, 0)
		}
		if cfg.DiskSize > 0 {
			t.Defaults.DiskMB = (int64(cfg.DiskSize) + 1<<20 - 1) >> 20
			t.Max.DiskMB = max(t.Max.DiskMB, t.Defaults.DiskMB)
		}
		if r, ok := cfg.TierRuntimes[name]; ok { // --tier-runtime wins too
			t.Runtime = r
		}
		tiers[name] = t
	}
}

// loopbackTiers gives network mode none to the tiers whose sandboxes can
// have loopback only: under --userns-remap (remap), every tier: runc
// cannot mount /sys in a sandbox whose user namespace does not own the
// network namespace it joins, and the server makes those in its own. Such
// a tier that names egress internet is a contradiction the server refuses
// to start on. (microvm tiers have egress: their VMs get a NIC.)
func loopbackTiers(tiers map[string]sandbox.TierLimits, remap bool) error {
	if !remap {
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(tiers)) {
		t := tiers[name]
		why := "--userns-remap: runc cannot mount /sys in a user namespace that does not own the sandbox's network namespace, so remapped sandboxes have loopback only; set the tier's egress to none or drop --userns-remap"
		if t.Egress == "internet" {
			return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("tier %s: egress internet with %s", name, why))
		}
		t.Egress = "none"
		tiers[name] = t
	}
	return nil
}

// pools are the warm pools to keep: the config file's entries, and
// --pool-size of the default image, runtime and network (each tier's
// mode: its egress, else --egress), which replaces
// the file's entry for that pool when set, and else is added only when
// the file has no such entry.
func pools(file *config.File, cfg Config) []sandbox.PoolSpec {
	var out []sandbox.PoolSpec
	isDefault := func(p sandbox.PoolSpec) bool {
		return (p.Image == "" || p.Image == cfg.DefaultImage) && (p.Runtime == "" || p.Runtime == cfg.Runtime) && (p.Network == "" || p.Network == cfg.Egress)
	}
	found := false
	if file != nil {
		for _, p := range file.Pool {
			spec := sandbox.PoolSpec{Image: p.Image, Runtime: p.Runtime, Network: p.Network, Size: *p.Size}
			if isDefault(spec) {
				found = true
				if cfg.PoolSizeSet {
					continue
				}
			}
			out = append(out, spec)
		}
	}
	if cfg.PoolSizeSet || !found {
		out = append(out, sandbox.PoolSpec{Image: cfg.DefaultImage, Runtime: cfg.Runtime, Size: cfg.PoolSize})
	}
	return out
}

// Run serves until ctx ends, then destroys every sandbox and returns.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	file, err := config.Load(cfg.ConfigFile)
	if err != nil {
		return err
	}
	if file != nil {
		// Flags set server-wide settings; for registries they add to the
		// file's lists.
		cfg.AllowRegistries = union(file.Registries.Allow, cfg.AllowRegistries)
		cfg.InsecureRegistries = union(file.Registries.Insecure, cfg.InsecureRegistries)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	var nice int
	cfg.sandboxesCPUShares, nice = file.Scheduling(goruntime.NumCPU())
	// Every server thread; processes it starts inherit it too: runc, and
	// through it each sandbox's agent, which resets its own to 0.
	if err := nicepkg.Set(0, nice); err != nil {
		log.Warn("server's nice value not set (host.server_nice)", "nice", nice, "err", err)
	}
	tiers, err := file.ApplyTiers(sandbox.DefaultTiers)
	if err != nil {
		return err
	}
	overrideTiers(tiers, cfg)
	if err := loopbackTiers(tiers, cfg.remap.Enabled()); err != nil {
		return err
	}
	if cfg.remap.Enabled() && cfg.Egress == "internet" {
		log.Warn("--userns-remap: sandboxes have network mode none (loopback only): runc cannot mount /sys in a user namespace that does not own the sandbox's network namespace; --egress internet applies to none of them")
	}
	if file != nil {
		log.Info("operator config loaded", "file", file.Path)
		for _, setting := range file.Inactive() {
			log.Warn("config setting is not active yet: it is validated but the server does not apply it", "setting", setting, "file", file.Path)
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	if err := openDataDir(cfg.DataDir, cfg.remap); err != nil {
		return err
	}
	st, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "chaser.db"))
	if err != nil {
		return err
	}
	defer st.Close()

	accounts := account.New(st)
	keyPath := filepath.Join(cfg.DataDir, "admin.key")
	made, err := accounts.Bootstrap(ctx, keyPath)
	if err != nil {
		return fmt.Errorf("create admin account: %w", err)
	}
	if made {
		log.Info("created the admin account; its API key is in "+keyPath, "key_file", keyPath)
	}

	images, err := image.NewStore(filepath.Join(cfg.DataDir, "images"+cfg.remap.Suffix()), log,
		image.WithInsecureRegistries(cfg.InsecureRegistries), image.WithCertsDir(cfg.RegistryCertsDir),
		image.WithAllowedRegistries(cfg.AllowRegistries), image.WithRemap(cfg.remap))
	if err != nil {
		return err
	}
	defer images.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	agentPath := AgentPath(self)
	log.Info("sandbox agent", "path", agentPath)
	if interp := Interpreter(agentPath); interp != "" {
		// A cgo build needs the host's libc inside every sandbox: the host
		// image has it, a minimal OCI image does not, and there the
		// sandbox's init fails with "no such file or directory".
		log.Warn("the sandbox agent is dynamically linked: sandboxes of images without "+interp+" will not start; build it with CGO_ENABLED=0 (see the README)", "path", agentPath, "interpreter", interp)
	}
	var sandboxes *sandbox.Service
	m := metrics.New(func() float64 { return sandboxes.Running() })
	var inUse []string
	if list, err := st.ListSessions(ctx, ""); err == nil {
		for _, x := range list {
			if x.EndedAt == nil {
				inUse = append(inUse, x.Runtime)
			}
		}
	}
	runtimes, err := newRuntimes(cfg, tiers, inUse, log)
	if err != nil {
		return err
	}
	for _, rt := range runtimes {
		if p, ok := rt.(*vm.Runtime); ok { // its base disks go with their layers
			images.OnGC(func(ctx context.Context) {
				if _, err := p.PruneDisks(ctx); err != nil {
					log.Error("base disk GC", "runtime", rt.Name(), "err", err)
				}
			})
		}
	}
	// The network exists when some tier's sandboxes may have egress, or
	// some recorded session had it (its leftovers need the sweep).
	var netmgr *network.Manager
	if needsNetwork(cfg.Egress, tiers) || hadEgress(ctx, st) {
		subnet := ""
		if file != nil {
			subnet = file.Network.Subnet
		}
		if netmgr, err = network.New(network.Config{DataDir: cfg.DataDir, Subnet: subnet, Log: log}); err != nil {
			return err
		}
		defer netmgr.Close()
	}
	var networker sandbox.Networker
	if netmgr != nil {
		networker = netmgr
	}
	sandboxes = sandbox.New(sandbox.Config{
		Egress: cfg.Egress, Network: networker,
		Runtimes: runtimes, DefaultRuntime: cfg.Runtime, Images: images, Store: st, AgentPath: agentPath,
		DefaultImage: cfg.DefaultImage, WorkspaceDir: filepath.Join(cfg.DataDir, "workspaces"), Log: log, Metrics: m,
		DiskDir: filepath.Join(cfg.DataDir, "disks"), DiskTemplates: filepath.Join(cfg.DataDir, "disk-templates"), NoDiskQuota: cfg.NoDiskQuota,
		MaxFileSize: int64(cfg.MaxFileSize), Tiers: tiers, Pools: pools(file, cfg),
		Host: file.HostLimits(),
	})
	host := sandboxes.HostLimits()
	log.Info("host admission", "max_sandboxes", host.MaxSandboxes, "min_free_memory_mb", host.MinFreeMemoryMB)
	if cfg.NoDiskQuota {
		log.Warn("disk quotas are off (--no-disk-quota): new sandboxes and workspaces get no disk image, their disk_mb is not enforced and a sandbox can fill the data dir's file system")
	}
	if err := sandboxes.Recover(ctx); err != nil {
		log.Error("recovery left something behind", "err", err)
	}

	if n, err := raiseFileLimit(); err != nil {
		log.Warn("could not raise the open-files limit", "err", err)
	} else {
		log.Info("open-files limit", "nofile", n, "max_conns", cfg.MaxConns, "max_conns_per_ip", cfg.MaxConnsPerIP)
	}
	l, err := listen(cfg, cfg.Addr, m)
	if err != nil {
		return err
	}
	// Clients on this machine use admin.key only for the server that
	// listens where they point (client.Resolve): record where that is.
	if err := writeFileAtomic(filepath.Join(cfg.DataDir, client.AddrFile), []byte(l.Addr().String()+"\n"), 0o644); err != nil {
		l.Close()
		return fmt.Errorf("record the listen address: %w", err)
	}
	m.OpenConnections(func() float64 { return float64(l.Open()) })
	servers := []*http.Server{}
	errc := make(chan error, 3)
	if cfg.MetricsAddr != "" {
		ml, err := listen(cfg, cfg.MetricsAddr, m)
		if err != nil {
			l.Close()
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		msrv := metricsServer(cfg, m)
		servers = append(servers, msrv)
		go func() { errc <- msrv.Serve(ml) }()
		log.Info("metrics without a key", "addr", ml.Addr().String())
	}
	cookieKey, err := loadKey(filepath.Join(cfg.DataDir, "forward.key"))
	if err != nil {
		return fmt.Errorf("forward cookie key: %w", err)
	}
	handler := server.New(accounts, sandboxes, m, log).WithDomain(cfg.Domain).WithCookieKey(cookieKey).
		WithMCPProgressInterval(cfg.MCPProgress).WithCORS(cfg.CORSOrigins).WithBodyTimeout(cfg.BodyTimeout)
	con := console.Handler(console.Config{API: handler, APIAddr: l.Addr().String(), Domain: cfg.Domain, MaxFileSize: int64(cfg.MaxFileSize), Log: log})
	srv := httpServer(cfg, console.ByHost(cfg.Domain, handler, con))
	servers = append(servers, srv)
	if cfg.ConsoleAddr != "" {
		cl, err := listen(cfg, cfg.ConsoleAddr, m)
		if err != nil {
			l.Close()
			return fmt.Errorf("--console-addr: %w", err)
		}
		csrv := httpServer(cfg, con)
		servers = append(servers, csrv)
		go func() { errc <- csrv.Serve(cl) }()
		log.Info("web console", "url", "http://"+cl.Addr().String()+"/")
	}
	// The background loops are joined before the sandboxes are torn down:
	// a reap round still ending a session must not race the shutdown that
	// destroys the same sessions (and the GC must not outlive the store).
	loopCtx, stopLoops := context.WithCancel(ctx)
	var loops sync.WaitGroup
	joinLoops := func() { stopLoops(); loops.Wait() }
	defer joinLoops()
	loops.Go(func() { sandboxes.RunReaper(loopCtx, cfg.ReapInterval) })
	loops.Go(func() { sandboxes.RunHealth(loopCtx, cfg.HealthInterval) })
	loops.Go(func() { images.RunGC(loopCtx, 10*time.Minute) })
	loops.Go(func() { sandboxes.RunPool(loopCtx) }) // drained by Shutdown
	go func() { errc <- srv.Serve(l) }()
	log.Info("chaser serving", "addr", l.Addr().String(), "data_dir", cfg.DataDir, "runtime", cfg.Runtime, "userns_remap", cfg.remap.String())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	// Stop taking requests, give running ones a moment, cut long streams,
	// then tear down every sandbox.
	hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
	for _, srv := range servers {
		if err := srv.Shutdown(hctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			log.Warn("http shutdown", "err", err)
		}
		srv.Close()
	}
	hcancel()
	joinLoops()
	sctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := sandboxes.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// needsNetwork tells whether a server with egress mode def and tiers may
// give some sandbox egress.
func needsNetwork(def string, tiers map[string]sandbox.TierLimits) bool {
	for _, t := range tiers {
		if t.Egress == "internet" || t.Egress == "" && def == "internet" {
			return true
		}
	}
	return false
}

// hadEgress tells whether a live session in the store has egress: its
// network must be found again (or swept) even when egress is now off.
func hadEgress(ctx context.Context, st *sqlite.Store) bool {
	list, _ := st.ListSessions(ctx, "")
	for _, x := range list {
		if x.EndedAt == nil && x.Network.Mode == "internet" {
			return true
		}
	}
	return false
}
