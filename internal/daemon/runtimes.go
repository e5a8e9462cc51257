package daemon

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/runtime"
	"github.com/chaserhq/chaser/internal/runtime/oci"
	"github.com/chaserhq/chaser/internal/runtime/vm"
	"github.com/chaserhq/chaser/internal/sandbox"
)

// newRuntimes sets up every runtime the server needs: the default and each
// tier's, which fail the start when missing or too old (saying what to
// install), and those that sessions left from before ran under (inUse:
// recovery reattaches or releases their sandboxes), which only warn. Each
// has its own state directory, runtime root and cgroup parent, so that
// listing one (recovery) never claims the other's sandboxes.
func newRuntimes(cfg Config, tiers map[string]sandbox.TierLimits, inUse []string, log *slog.Logger) (map[string]runtime.Runtime, error) {
	names := map[string]bool{cfg.Runtime: true}
	for _, t := range tiers {
		if t.Runtime != "" {
			names[t.Runtime] = true
		}
	}
	out := map[string]runtime.Runtime{}
	for _, name := range inUse {
		if names[name] || out[name] != nil || !knownRuntime(name) {
			continue
		}
		rt, err := newRuntime(cfg, name, log)
		if err != nil {
			log.Warn("sessions from before ran under a runtime that cannot be set up; they end without their sandboxes being released", "runtime", name, "err", err)
			continue
		}
		out[name] = rt
	}
	for name := range names {
		rt, err := newRuntime(cfg, name, log)
		if err != nil {
			return nil, err
		}
		out[name] = rt
	}
	return out, nil
}

// knownRuntime tells whether Chaser drives runtime name.
func knownRuntime(name string) bool {
	return name == "runc" || name == "runsc" || name == "microvm"
}

// newRuntime sets up runtime name. runsc gets directories and a cgroup
// parent of its own ("-runsc"); runc keeps the ones it always had;
// microvm has its state and its disk cache.
func newRuntime(cfg Config, name string, log *slog.Logger) (runtime.Runtime, error) {
	if name == "microvm" {
		rt, err := vm.New(vm.Config{
			StateDir: filepath.Join(cfg.DataDir, "sandboxes-microvm"), CacheDir: filepath.Join(cfg.DataDir, "microvm"),
			KernelDir: cfg.MicrovmKernel, Accel: cfg.MicrovmAccel, Log: log,
		})
		if err != nil {
			return nil, err
		}
		log.Info("runtime", "name", name, "accel", rt.Accel())
		return rt, nil
	}
	c := oci.Config{
		Name:         name,
		StateDir:     filepath.Join(cfg.DataDir, "sandboxes"),
		RootDir:      filepath.Join(cfg.DataDir, name),
		CgroupParent: CgroupParent(cfg.DataDir),
		CPUShares:    cfg.sandboxesCPUShares,
		Log:          log,
	}
	if name == "runc" {
		c.Remap = cfg.remap
	}
	if name == "runsc" {
		c.Binary, c.Platform = cfg.Runsc, cfg.RunscPlatform
		c.StateDir += "-runsc"
		c.CgroupParent += "-runsc"
	}
	rt, err := oci.New(c)
	if err != nil {
		return nil, err
	}
	log.Info("runtime", "name", name, "platform", rt.Platform())
	return rt, nil
}

// tierRuntimesEnv parses "free=runsc,paid=runc"; a malformed item is kept
// under its own text for validateTierRuntimes to report.
func tierRuntimesEnv(v string) map[string]string {
	m := map[string]string{}
	for _, item := range splitList(v) {
		tier, rt, _ := strings.Cut(item, "=")
		m[tier] = rt
	}
	return m
}

// validateTierRuntimes checks that every tier named exists and every
// runtime is one Chaser drives.
func validateTierRuntimes(m map[string]string) error {
	tiers := make([]string, 0, len(m))
	for t := range m {
		tiers = append(tiers, t)
	}
	sort.Strings(tiers)
	for _, t := range tiers {
		if _, ok := sandbox.DefaultTiers[t]; !ok {
			return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("--tier-runtime %s=%s: unknown tier %q (use TIER=RUNTIME with tier free or paid)", t, m[t], t))
		}
		if r := m[t]; !knownRuntime(r) {
			return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("--tier-runtime %s=%s: use runc, runsc or microvm", t, r))
		}
	}
	return nil
}
