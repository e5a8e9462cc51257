package cli

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/chaserhq/chaser/internal/daemon"
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
CHASER_DOMAIN and CHASER_INSECURE_REGISTRIES (comma-separated).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			level := slog.LevelInfo
			if debug {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			return daemon.Run(cmd.Context(), cfg, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", cfg.Addr, "address to listen on")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "where the store, keys and sandboxes live")
	f.StringVar(&cfg.Runtime, "runtime", cfg.Runtime, "isolation runtime: runc or runsc")
	f.StringVar(&cfg.DefaultImage, "default-image", cfg.DefaultImage, "image of sessions that name none")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "end sessions unused this long, for every tier (0: the tiers' own; negative: never)")
	f.DurationVar(&cfg.ReapInterval, "reap-interval", cfg.ReapInterval, "how often expired and idle sessions are looked for")
	f.Var(&cfg.MaxFileSize, "max-file-size", "largest file per upload or download, e.g. 16MB or 1GiB (env CHASER_MAX_FILE_SIZE)")
	f.StringArrayVar(&cfg.InsecureRegistries, "insecure-registry", cfg.InsecureRegistries, "registry HOST:PORT that may be reached over plain HTTP (repeatable)")
	f.StringArrayVar(&cfg.AllowRegistries, "allow-registry", cfg.AllowRegistries, "registry HOST[:PORT] that pulls may reach on a loopback, private or this host's own address (repeatable)")
	f.StringVar(&cfg.Domain, "domain", cfg.Domain, "serve host-style forward URLs on SESSION.DOMAIN (e.g. chaser.example.com, or localhost)")
	f.DurationVar(&cfg.MCPProgress, "mcp-progress-interval", cfg.MCPProgress, "how often a long MCP tool call reports progress (at most 10s)")
	f.BoolVar(&debug, "debug", false, "log at debug level")
	return cmd
}
