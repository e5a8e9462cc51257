package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/sandbox"
)

const full = `
tiers:
  free:
    max_sandboxes: 2
    ttl: 15m
    idle_timeout: 5m
    runtime: runsc
    defaults: {cpu: 0.5, memory_mb: 256}
    max: {cpu: 1, memory_mb: 1024, disk_mb: 2048, pids: 128}
    egress: none
  paid:
    max_sandboxes: 50
    idle_timeout: 0s
    egress: internet
    allow: [10.1.0.0/16]
pool:
  - {image: host, runtime: runc, network: none, size: 2}
  - {image: host, network: internet, size: 1}
network:
  subnet: 10.88.0.0/16
registries:
  allow: ["registry.internal:5000"]
  insecure: ["registry.internal:5000"]
`

func TestApplyTiers(t *testing.T) {
	f, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	tiers, err := f.ApplyTiers(sandbox.DefaultTiers)
	if err != nil {
		t.Fatal(err)
	}
	free, paid := tiers[api.TierFree], tiers[api.TierPaid]
	builtFree, builtPaid := sandbox.DefaultTiers[api.TierFree], sandbox.DefaultTiers[api.TierPaid]
	wantFree := sandbox.TierLimits{MaxSandboxes: 2, TTL: 15 * time.Minute, IdleTimeout: 5 * time.Minute, Runtime: "runsc",
		Defaults: sandbox.Resources{MilliCPUs: 500, MemoryMB: 256, DiskMB: builtFree.Defaults.DiskMB, Pids: 128}, // pids lowered to the max
		Max:      sandbox.Resources{MilliCPUs: 1000, MemoryMB: 1024, DiskMB: 2048, Pids: 128}, Egress: "none"}
	if !reflect.DeepEqual(free, wantFree) {
		t.Errorf("free = %+v\nwant %+v", free, wantFree)
	}
	wantPaid := builtPaid
	wantPaid.MaxSandboxes, wantPaid.IdleTimeout = 50, 0
	wantPaid.Egress, wantPaid.Allow = "internet", []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}
	if !reflect.DeepEqual(paid, wantPaid) {
		t.Errorf("paid = %+v\nwant %+v", paid, wantPaid)
	}
	if !reflect.DeepEqual(sandbox.DefaultTiers[api.TierFree], builtFree) {
		t.Error("ApplyTiers changed the built-in tiers")
	}
	var want []string // pool, egress, allow and network.subnet are applied
	if got := f.Inactive(); !slices.Equal(got, want) {
		t.Errorf("Inactive = %q, want %q", got, want)
	}
	if !slices.Equal(f.Registries.Allow, []string{"registry.internal:5000"}) {
		t.Errorf("registries.allow = %q", f.Registries.Allow)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown top key", "tiers: {}\nflavour: x\n", `line 2: unknown key "flavour" at the top level`},
		{"unknown tier key", "tiers:\n  free:\n    max_sandbox: 3\n", `line 3: unknown key "max_sandbox" in a tier`},
		{"unknown resource", "tiers:\n  free:\n    max: {memory: 3}\n", `unknown key "memory" in resources`},
		{"unknown tier", "tiers:\n  gold: {}\n", `unknown tier "gold"`},
		{"bad duration", "tiers:\n  free: {ttl: 30}\n", "line 2: 30 is not a duration"},
		{"zero ttl", "tiers:\n  free: {ttl: 0s}\n", "tiers.free.ttl 0s"},
		{"bad runtime", "tiers:\n  free: {runtime: kata}\n", `tiers.free.runtime "kata"`},
		{"zero memory", "tiers:\n  paid: {max: {memory_mb: 0}}\n", "tiers.paid.max: memory_mb 0"},
		{"fractional pids", "tiers:\n  paid: {max: {pids: 1.5}}\n", "pids"},
		{"bad egress", "tiers:\n  paid: {egress: some}\n", `tiers.paid.egress "some"`},
		{"bad cidr", "tiers:\n  paid: {allow: [10.0.0.1]}\n", `tiers.paid.allow: "10.0.0.1"`},
		{"pool without size", "pool:\n  - {image: host}\n", "pool[0].size"},
		{"bad subnet", "network: {subnet: 10.88.0.1/16}\n", "network.subnet"},
		{"bad registry", "registries: {allow: [\"http://x\"]}\n", "registries.allow"},
		{"zero host max", "host: {max_sandboxes: 0}\n", "host.max_sandboxes 0"},
		{"negative reserve", "host: {min_free_memory_mb: -5}\n", "host.min_free_memory_mb -5"},
		{"unknown host key", "host: {max: 3}\n", `unknown key "max" in host`},
		{"shares too high", "host: {sandboxes_cpu_shares: 300000}\n", "host.sandboxes_cpu_shares 300000"},
		{"shares of 1", "host: {sandboxes_cpu_shares: 1}\n", "host.sandboxes_cpu_shares 1"},
		{"negative shares", "host: {sandboxes_cpu_shares: -2}\n", "sandboxes_cpu_shares"},
		{"nice too low", "host: {server_nice: -21}\n", "host.server_nice -21"},
		{"two documents", "tiers: {}\n---\ntiers: {}\n", "more than one YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	if f, err := Load(""); f != nil || err != nil {
		t.Fatalf("no path: %v %v", f, err)
	}
	p := filepath.Join(t.TempDir(), "chaser.yaml")
	if err := os.WriteFile(p, []byte("tiers:\n  free:\n    defaults: {memory_mb: 600}\n    max: {memory_mb: 512}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ApplyTiers(sandbox.DefaultTiers); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "defaults.memory_mb is over max.memory_mb (600 > 512)") {
		t.Fatalf("defaults over max: %v", err)
	}
	if err := os.WriteFile(p, []byte("bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), `"bogus"`) {
		t.Fatalf("unknown key: %v", err)
	}
	if f, err := Load(filepath.Join(t.TempDir(), "empty.yaml")); err == nil {
		t.Fatalf("missing file: %+v", f)
	}
}

func TestHostLimits(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want sandbox.HostLimits
	}{
		{"", sandbox.HostLimits{}},
		{"host: {max_sandboxes: 40}\n", sandbox.HostLimits{MaxSandboxes: 40}},
		{"host: {max_sandboxes: 40, min_free_memory_mb: 512}\n", sandbox.HostLimits{MaxSandboxes: 40, MinFreeMemoryMB: 512}},
		{"host: {min_free_memory_mb: 0}\n", sandbox.HostLimits{MinFreeMemoryMB: -1}},
	} {
		f, err := Parse([]byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if got := f.HostLimits(); got != tc.want {
			t.Errorf("%q: HostLimits() = %+v, want %+v", tc.yaml, got, tc.want)
		}
	}
	var none *File
	if got := none.HostLimits(); got != (sandbox.HostLimits{}) {
		t.Errorf("nil file: %+v", got)
	}
}

func TestScheduling(t *testing.T) {
	for _, tc := range []struct {
		yaml   string
		cpus   int
		shares uint64
		nice   int
	}{
		{"", 2, 4096, -5},
		{"", 1, 2048, -5},
		{"", 512, 262144, -5}, // the kernel's most
		{"host: {sandboxes_cpu_shares: 0, server_nice: 0}\n", 2, 0, 0},
		{"host: {sandboxes_cpu_shares: 1024}\n", 8, 1024, -5},
		{"host: {server_nice: -10}\n", 4, 8192, -10},
	} {
		f, err := Parse([]byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if shares, nice := f.Scheduling(tc.cpus); shares != tc.shares || nice != tc.nice {
			t.Errorf("%q on %d cores: Scheduling() = %d, %d; want %d, %d", tc.yaml, tc.cpus, shares, nice, tc.shares, tc.nice)
		}
	}
	var none *File
	if shares, nice := none.Scheduling(2); shares != 4096 || nice != DefaultServerNice {
		t.Errorf("nil file: %d, %d", shares, nice)
	}
}
