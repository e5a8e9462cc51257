package cli

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/chaserhq/chaser/internal/daemon"
	"github.com/chaserhq/chaser/internal/runtime/oci"
	"github.com/chaserhq/chaser/internal/runtime/vm"
)

func newServe(e *env) *cobra.Command {
	cfg := daemon.Defaults()
	var debug bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Chaser server",
		Long: `Run the Chaser server: the API, the sandboxes' control plane and data plane.
On first start it creates an admin account and writes its API key to DATA_DIR/admin.key.
Flags override CHASER_ADDR, CHASER_DATA_DIR, CHASER_RUNTIME, CHASER_DEFAULT_IMAGE,
CHASER_DOMAIN, CHASER_INSECURE_REGISTRIES, CHASER_ALLOW_REGISTRIES and
CHASER_CORS_ORIGINS (the last three comma-separated), and the CHASER_* variable named after each other flag
(CHASER_MAX_CONNS_PER_IP, ...).

Connections over --max-conns-per-ip or --max-conns are answered 429 Too Many
Requests with Retry-After and closed. There is no server-wide read or write
timeout (streams, terminals and uploads last as long as they need).

--config FILE (YAML) sets what flags cannot say well: per tier the most
sandboxes, TTL, idle timeout, runtime, resource defaults and maximums; see
docs/config.md. Flags win over the file for server-wide settings
(--idle-timeout replaces every tier's); --allow-registry and
--insecure-registry add to the file's registries lists.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			level := slog.LevelInfo
			if debug {
				level = slog.LevelDebug
			}
			if cmd.Flags().Changed("pool-size") {
				cfg.PoolSizeSet = true
			}
			// Lines go to stderr from a goroutine of their own (see
			// logWriter): up to 1 MiB of them may wait.
			lw := newLogWriter(os.Stderr, 1<<20)
			defer lw.Close()
			log := slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: level}))
			if err := startPprof(log); err != nil {
				return err
			}
			return daemon.Run(cmd.Context(), cfg, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.ConfigFile, "config", cfg.ConfigFile, "operator policy file (YAML): per-tier limits, resource defaults and maximums, runtimes; see docs/config.md (env CHASER_SERVER_CONFIG)")
	f.StringVar(&cfg.Addr, "addr", cfg.Addr, "address to listen on")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "where the store, keys and sandboxes live")
	f.StringVar(&cfg.Runtime, "runtime", cfg.Runtime, "isolation runtime of sessions whose tier names none: runc, runsc (gVisor) or microvm (QEMU; OCI images only)")
	f.StringVar(&cfg.Runsc, "runsc", cfg.Runsc, "the runsc binary: a path, or a name looked up on PATH then in "+oci.RunscCache+" (env CHASER_RUNSC)")
	f.StringVar(&cfg.RunscPlatform, "runsc-platform", cfg.RunscPlatform, "gVisor platform: systrap or ptrace (env CHASER_RUNSC_PLATFORM)")
	f.StringVar(&cfg.MicrovmKernel, "microvm-kernel", cfg.MicrovmKernel, "directory of the microvm guest kernel and initramfs (default "+vm.DefaultKernelDir+", built by scripts/microvm.sh; env CHASER_MICROVM_KERNEL)")
	f.StringVar(&cfg.MicrovmAccel, "microvm-accel", cfg.MicrovmAccel, "microvm accelerator: kvm or tcg (default: kvm when usable; env CHASER_MICROVM_ACCEL)")
	f.StringToStringVar(&cfg.TierRuntimes, "tier-runtime", cfg.TierRuntimes, "runtime of a tier's sessions, TIER=RUNTIME, e.g. free=runsc (repeatable; env CHASER_TIER_RUNTIMES)")
	f.StringVar(&cfg.UsernsRemap, "userns-remap", cfg.UsernsRemap, "map root of runc sandboxes to an unprivileged host range: off, auto (the chaser user's /etc/subuid range, else 100000:65536) or BASE:SIZE (env CHASER_USERNS)")
	f.StringVar(&cfg.Egress, "egress", cfg.Egress, "network of sessions whose tier names none: internet (egress through NAT; never the host, other sandboxes, link-local or private ranges) or none (loopback only) (env CHASER_EGRESS)")
	f.StringVar(&cfg.DefaultImage, "default-image", cfg.DefaultImage, "image of sessions that name none")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "end sessions unused this long, for every tier (0: the tiers' own; negative: never)")
	f.DurationVar(&cfg.ReapInterval, "reap-interval", cfg.ReapInterval, "how often expired and idle sessions are looked for")
	f.DurationVar(&cfg.HealthInterval, "health-interval", cfg.HealthInterval, "how often each sandbox's agent is checked; 3 missed checks in a row end its session")
	f.Var(&cfg.MaxFileSize, "max-file-size", "largest file per upload or download, e.g. 16MB or 1GiB (env CHASER_MAX_FILE_SIZE)")
	f.StringArrayVar(&cfg.InsecureRegistries, "insecure-registry", cfg.InsecureRegistries, "registry HOST:PORT that may be reached over plain HTTP (repeatable)")
	f.StringVar(&cfg.RegistryCertsDir, "registry-certs-dir", cfg.RegistryCertsDir, "per-registry TLS certificates laid out as Docker's certs.d: HOST[:PORT]/ca.crt (env CHASER_REGISTRY_CERTS_DIR)")
	f.StringArrayVar(&cfg.AllowRegistries, "allow-registry", cfg.AllowRegistries, "registry HOST[:PORT] that pulls may reach on a loopback, private or this host's own address (repeatable)")
	f.StringVar(&cfg.Domain, "domain", cfg.Domain, "serve host-style forward URLs on SESSION.DOMAIN (e.g. chaser.example.com, or localhost)")
	f.DurationVar(&cfg.MCPProgress, "mcp-progress-interval", cfg.MCPProgress, "how often a long MCP tool call reports progress (at most 10s)")
	f.StringArrayVar(&cfg.CORSOrigins, "cors-origin", cfg.CORSOrigins, "let browser pages of ORIGIN (scheme://host[:port], or *) call the API with a key (repeatable; default none)")
	f.DurationVar(&cfg.ReadHeaderTimeout, "read-header-timeout", cfg.ReadHeaderTimeout, "close connections that take longer to send a request's headers (env CHASER_READ_HEADER_TIMEOUT)")
	f.DurationVar(&cfg.HTTPIdleTimeout, "http-idle-timeout", cfg.HTTPIdleTimeout, "close keep-alive connections idle this long between requests (env CHASER_HTTP_IDLE_TIMEOUT)")
	f.DurationVar(&cfg.BodyTimeout, "body-timeout", cfg.BodyTimeout, "longest time to receive a JSON request body (env CHASER_BODY_TIMEOUT)")
	f.IntVar(&cfg.MaxConnsPerIP, "max-conns-per-ip", cfg.MaxConnsPerIP, "most connections one client address (IPv6: /64) holds open, loopback included; 0: no cap (env CHASER_MAX_CONNS_PER_IP)")
	f.IntVar(&cfg.MaxConns, "max-conns", cfg.MaxConns, "most connections held open in total (default: 3/4 of the open-files limit); 0: no cap (env CHASER_MAX_CONNS)")
	f.StringVar(&cfg.ConsoleAddr, "console-addr", cfg.ConsoleAddr, "serve the web console on this HOST:PORT, an origin of its own (with --domain it is also on console.DOMAIN; env CHASER_CONSOLE_ADDR)")
	f.StringVar(&cfg.MetricsAddr, "metrics-addr", cfg.MetricsAddr, "also serve /metrics without a key on this HOST:PORT (on --addr it needs the admin key; env CHASER_METRICS_ADDR)")
	f.Var(&cfg.DiskSize, "disk-size", "default disk quota (disk_mb) of new sandboxes and workspaces, for every tier, over the config file's; raises a tier's maximum to it if below; e.g. 4GiB (default: the tier's, free 1GiB, paid 10GiB; env CHASER_DISK_SIZE)")
	f.BoolVar(&cfg.NoDiskQuota, "no-disk-quota", cfg.NoDiskQuota, "no disk images for new sandboxes and workspaces: writable layers share the data dir's file system, disk_mb unenforced (env CHASER_NO_DISK_QUOTA=1)")
	f.IntVar(&cfg.PoolSize, "pool-size", cfg.PoolSize, "warm sandboxes of the default image, runtime and network kept ready per tier, so a create only binds one; 0 disables; over the config file's pool entry for the same (env CHASER_POOL_SIZE)")
	f.BoolVar(&debug, "debug", false, "log at debug level")
	return cmd
}
