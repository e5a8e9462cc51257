// Package sandbox is the domain service: the lifecycle of sessions and their
// sandboxes (create, inspect, delete, expire, recover after a crash), tier
// limits, and command execution through each sandbox's agent. The HTTP and
// CLI front ends are thin adapters over it.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/image"
	"github.com/chaserhq/chaser/internal/metrics"
	"github.com/chaserhq/chaser/internal/network"
	"github.com/chaserhq/chaser/internal/paging"
	"github.com/chaserhq/chaser/internal/runtime"
	"github.com/chaserhq/chaser/internal/store"
)

// TierLimits are the limits of one account tier.
type TierLimits struct {
	// MaxSandboxes is how many sessions an account may have at once.
	MaxSandboxes int
	// Defaults are the resources of a sandbox that asks for none; Max
	// bounds what one may ask for (every field is set).
	Defaults, Max Resources
	// TTL is how long a session lives at most.
	TTL time.Duration
	// IdleTimeout ends a session nobody used for this long: no API call
	// reached it and no command runs in it. Zero disables it.
	IdleTimeout time.Duration
	// Runtime names the runtime of the tier's sandboxes (a key of
	// Config.Runtimes, e.g. "runsc" for free, "runc" for paid); empty means
	// Config.DefaultRuntime.
	Runtime string
	// Egress is the network mode of the tier's sandboxes that ask for
	// none ("none" or "internet"); empty means Config.Egress. A tier of
	// mode none refuses internet asked explicitly.
	Egress string
	// Allow are the private CIDRs the tier's sandboxes may reach (the
	// config file's tiers.X.allow); a session's allow list stays inside.
	Allow []netip.Prefix
}

// DefaultTiers are the limits used unless configured otherwise (the
// operator's config file overrides them field by field).
var DefaultTiers = map[string]TierLimits{
	api.TierFree: {MaxSandboxes: 3, TTL: 30 * time.Minute, IdleTimeout: 10 * time.Minute,
		Defaults: Resources{MilliCPUs: 1000, MemoryMB: 512, DiskMB: 1024, Pids: 256},
		Max:      Resources{MilliCPUs: 1000, MemoryMB: 512, DiskMB: 1024, Pids: 256}},
	api.TierPaid: {MaxSandboxes: 20, TTL: 8 * time.Hour, IdleTimeout: time.Hour,
		Defaults: Resources{MilliCPUs: 2000, MemoryMB: 2048, DiskMB: 10240, Pids: 1024},
		Max:      Resources{MilliCPUs: 4000, MemoryMB: 8192, DiskMB: 51200, Pids: 4096}},
}

// Config configures a Service.
type Config struct {
	Images *image.Store
	Store  store.Store
	// AgentPath is the host path of the binary that runs as the agent.
	AgentPath    string
	DefaultImage string
	// WorkspaceDir holds the writable layer of each workspace: a disk
	// image, or a directory for workspaces made before disk quotas.
	WorkspaceDir string
	Tiers        map[string]TierLimits
	MaxFileSize  int64 // bytes per upload or download; 0: fs.DefaultMaxFileSize
	Log          *slog.Logger
	// Metrics is updated by the service; nil makes a private set.
	Metrics *metrics.Metrics
	// Runtimes are the isolation runtimes by name ("runc", "runsc"). Each
	// keeps its own state directory and cgroup parent, so that one's List
	// never claims the other's sandboxes. A session runs under its tier's
	// runtime, else DefaultRuntime, and keeps it (Session.Runtime).
	Runtimes       map[string]runtime.Runtime
	DefaultRuntime string

	// DiskDir holds the disk images of ephemeral sandboxes and the mount
	// points of every sandbox's writable layer. Empty: no disk quotas.
	DiskDir string
	// DiskTemplates holds a formatted image per disk size that ephemeral
	// sandboxes' images are copied from (disk.Options.Templates); empty:
	// each is formatted by mkfs.ext4.
	DiskTemplates string
	// Pools are the warm pools to keep (pool.go); none: every sandbox is
	// made at its create.
	Pools []PoolSpec

	// NoDiskQuota gives new sandboxes and workspaces no disk image: their
	// writable layers share the host's file system, unbounded, while
	// their resources still show the disk_mb asked for. Workspaces that
	// have an image keep mounting it (chaser serve --no-disk-quota).
	NoDiskQuota bool
	// Egress is the server's network mode (--egress): "internet" or
	// "none". Network gives sandboxes of mode internet their network; nil
	// when the server runs without egress.
	Egress  string
	Network Networker

	// Host bounds what the whole host runs (admission.go); its zero
	// fields are derived from the host's memory by New.
	Host HostLimits
	// HostMemory returns the host's available memory in MiB (nil:
	// /proc/meminfo's MemAvailable); for tests.
	HostMemory func() int64
}

// Service manages sessions.
type Service struct {
	cfg Config
	log *slog.Logger

	mu   sync.Mutex
	live map[string]*handle // running sandboxes by session id
	// ending holds the sessions being torn down; the channel closes when
	// the teardown is over, so a second ender waits instead of racing it.
	ending map[string]chan struct{}
	// admit serializes the tier check of creates: it is held across the
	// store read and the reservation, so two creates cannot both see room
	// for one. It never waits on anything but the store.
	admit sync.Mutex
	// creating holds, per account, the ids of sessions being created
	// (guarded by mu). A session in it may also be in the store already:
	// the check counts the union, so it is counted once.
	creating map[string]map[string]bool
	// wsLocks serialize finding-or-starting the session of a workspace.
	wsLocks keyLocks
	ports   portTable // public ports of running sessions
	// shared holds the throwaway sandboxes that targetless requests share
	// (see Target), by account and image; made on first use.
	shared map[string]*sharedSandbox
	// pool holds sandboxes made ahead of their sessions (pool.go).
	pool warmPool
	// host serializes host-wide admission (admission.go).
	host hostGate
	// starts queues commands in order when many start at once (startgate.go).
	starts startGate
}

// handle is the service's record of a running sandbox.
type handle struct {
	client *agent.Client
	rt     runtime.Runtime
	// sandbox is the runtime's id of the sandbox: the session's id, or
	// the id it had in the warm pool (store.Session.SandboxID).
	sandbox string
	// used is when the session was last reached through the API.
	used time.Time
	// misses counts the health checks in a row its agent did not answer.
	misses int
	// unwatch stops watching for the sandbox's exit (see watch).
	unwatch context.CancelFunc
	// sess is the session's record as stored once it runs (nil before):
	// Agent answers from it without a store read while the session is
	// live and not being torn down (see cachedAgent). Its owner, image,
	// workspace and runtime never change; ExpiresAt is kept in step by
	// Extend. Whatever stores a session as running (create, Recover, a
	// pool's claim) sets it, through running; until then Agent reads
	// the store.
	sess *store.Session
}

// Health checking: an agent that misses MaxHealthMisses checks in a row,
// each given HealthTimeout, while its sandbox still runs, is unresponsive.
const (
	DefaultHealthInterval = 5 * time.Second
	HealthTimeout         = 2 * time.Second
	MaxHealthMisses       = 3
	// KeepEnded is how long the record of an ended session stays (GET
	// answers it, with its reason); then it is forgotten (404).
	KeepEnded = time.Hour
)

// New returns a service. Call Recover before serving requests.
func New(cfg Config) *Service {
	if cfg.Tiers == nil {
		cfg.Tiers = DefaultTiers
	}
	if cfg.DefaultImage == "" {
		cfg.DefaultImage = image.HostRef
	}
	s := &Service{
		cfg:      cfg,
		log:      cfg.Log.With("component", "sandbox"),
		live:     make(map[string]*handle),
		ending:   make(map[string]chan struct{}),
		creating: make(map[string]map[string]bool),
	}
	if s.cfg.Metrics == nil {
		s.cfg.Metrics = metrics.New(s.Running)
	}
	total, _, err := meminfo()
	if err != nil {
		total = 0 // the defaults' floors apply
	}
	s.cfg.Host = s.cfg.Host.Resolve(total)
	s.initPool()
	s.cfg.Metrics.PoolSize(s.PoolSize)
	return s
}

// Running returns how many sandboxes run now.
func (s *Service) Running() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return float64(len(s.live))
}

// RuntimeName names the default isolation runtime.
func (s *Service) RuntimeName() string { return s.cfg.DefaultRuntime }

// runtime returns the runtime called name ("" is the default), or
// ErrFailedPrecondition when the server runs without it.
func (s *Service) runtime(name string) (runtime.Runtime, error) {
	name = s.runtimeName(name)
	if rt, ok := s.cfg.Runtimes[name]; ok {
		return rt, nil
	}
	return nil, errdefs.New(errdefs.ErrFailedPrecondition, fmt.Sprintf("runtime %s is not enabled on this server (chaser serve --runtime or a tier's runtime)", name))
}

// runtimeName is the name of runtime name: the default for "" (sessions
// recorded before there was a choice).
func (s *Service) runtimeName(name string) string {
	if name == "" {
		return s.cfg.DefaultRuntime
	}
	return name
}

// runtimeOf returns the runtime that runs session id's sandbox: the one of
// its live handle, else the one its record names.
func (s *Service) runtimeOf(ctx context.Context, id string) (runtime.Runtime, error) {
	s.mu.Lock()
	h := s.live[id]
	s.mu.Unlock()
	if h != nil {
		return h.rt, nil
	}
	x, err := s.cfg.Store.GetSession(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.runtime(x.Runtime)
}

// platform describes how a runtime runs sandboxes beyond its name
// (runsc's platform, e.g. systrap); "" when it has nothing to add.
func platform(rt runtime.Runtime) string {
	if p, ok := rt.(interface{ Platform() string }); ok {
		return p.Platform()
	}
	return ""
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a random identifier with the given prefix. Identifiers are
// DNS labels ([a-z0-9-]) so they can be hostnames and host-style URLs.
func NewID(prefix string) string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return prefix + "-" + idEncoding.EncodeToString(b)
}

func toAPI(x store.Session) api.Session {
	out := api.Session{
		ID: x.ID, Type: x.Type, Status: x.Status, WorkspaceID: x.WorkspaceID, Image: x.Image,
		Ephemeral: x.Ephemeral, Runtime: x.Runtime, CreatedAt: x.CreatedAt, ExpiresAt: x.ExpiresAt,
		Resources: resourcesAPI(x.Resources), Network: networkAPI(x.Network),
	}
	if x.EndedAt != nil {
		out.Reason, out.EndedAt = x.Reason, x.EndedAt
	}
	return out
}

// statusAfter is the final status of a session that ended for reason.
func statusAfter(reason string) string {
	switch reason {
	case api.ReasonDied, api.ReasonOOM, api.ReasonAgentUnresponsive:
		return api.StatusFailed
	}
	return api.StatusStopped
}

// whyEnded explains each end reason to the user.
var whyEnded = map[string]string{
	api.ReasonDeleted:           "it was deleted",
	api.ReasonExpired:           "its time to live passed",
	api.ReasonIdle:              "nothing used it for the idle timeout",
	api.ReasonDied:              "its sandbox stopped",
	api.ReasonOOM:               "its sandbox ran out of memory",
	api.ReasonAgentUnresponsive: "its agent stopped answering",
}

// endedError is the error of a call to session x, which has ended (or is
// ending): ErrFailedPrecondition (409), with the reason.
func endedError(x store.Session) error {
	why := whyEnded[x.Reason]
	if why == "" {
		why = "it ended"
	}
	return errdefs.New(errdefs.ErrFailedPrecondition, fmt.Sprintf(
		"session %s has ended (%s: %s); create a new session", x.ID, x.Reason, why))
}

// ended tells whether session x ended or is being torn down for a reason.
func ended(x store.Session) bool {
	return x.EndedAt != nil || x.Status == api.StatusStopping && x.Reason != ""
}

func (s *Service) tier(acct store.Account) TierLimits {
	if t, ok := s.cfg.Tiers[acct.Tier]; ok {
		return t
	}
	return s.cfg.Tiers[api.TierFree]
}

// Create finds or creates the session a request asks for — the one
// resolver of targets shared by the HTTP API, /v1/exec, the CLI and MCP:
//
//   - ephemeral, or an image without a workspace: a fresh throwaway sandbox;
//   - a workspace: the session running on it, or a new one;
//   - neither: free accounts get a throwaway sandbox, paid accounts their
//     default workspace for the session type (made on first use).
//
// It reports whether it created a session. Errors: ErrInvalidArgument for a
// bad request, ErrNotFound for an unknown workspace, ErrPermissionDenied for
// workspaces on the free tier and for resources beyond the tier's maximum,
// ErrResourceExhausted when the tier's sandbox limit is reached.
func (s *Service) Create(ctx context.Context, acct store.Account, req api.CreateSessionRequest) (api.Session, bool, error) {
	if req.Type == "" {
		req.Type = api.SessionTypeSandbox
	}
	if req.Type != api.SessionTypeSandbox {
		return api.Session{}, false, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("unknown session type %q (use %q)", req.Type, api.SessionTypeSandbox))
	}
	if req.Workspace != "" && req.Image != "" {
		return api.Session{}, false, errdefs.New(errdefs.ErrInvalidArgument, "workspace and image cannot be used together: a workspace fixes its image when it is created")
	}
	if req.Workspace != "" && req.Ephemeral {
		return api.Session{}, false, errdefs.New(errdefs.ErrInvalidArgument, "workspace and ephemeral cannot be used together")
	}
	if req.Workspace != "" && !req.Resources.Empty() {
		return api.Session{}, false, errdefs.New(errdefs.ErrInvalidArgument, "workspace and resources cannot be used together: a workspace fixes its resources when it is created")
	}
	asked, err := Asked(req.Resources)
	if err != nil {
		return api.Session{}, false, err
	}
	if req.Workspace != "" && req.Network != nil {
		return api.Session{}, false, errdefs.New(errdefs.ErrInvalidArgument, "workspace and network cannot be used together: a workspace fixes its network when it is created")
	}
	nw, err := s.resolveNetwork(acct.Tier, s.tier(acct), req.Network)
	if err != nil {
		return api.Session{}, false, err
	}
	if req.Workspace == "" && (req.Ephemeral || req.Image != "" || !req.Resources.Empty() || req.Network != nil || acct.Tier != api.TierPaid) {
		sess, err := s.create(ctx, acct, req.Type, req.Image, asked, nw, nil)
		return sess, err == nil, err
	}
	var ws store.Workspace
	if req.Workspace != "" {
		ws, err = s.workspace(ctx, acct, req.Workspace)
	} else {
		ws, err = s.defaultWorkspace(ctx, acct, req.Type)
	}
	if err != nil {
		return api.Session{}, false, err
	}
	return s.onWorkspace(ctx, acct, ws)
}

// create creates a session and its sandbox on image ref (the default image
// when empty), on workspace ws when not nil (whose resources it then
// takes), with the resources asked (the tier's defaults for what it leaves
// out), and returns when the agent answers.
func (s *Service) create(ctx context.Context, acct store.Account, typ, ref string, asked Resources, nw store.Network, ws *store.Workspace) (api.Session, error) {
	if ref == "" {
		ref = s.cfg.DefaultImage
	}
	tier := s.tier(acct)
	what := ""
	if ws != nil {
		// The workspace's disk exists at its size, checked when it was
		// made or grown: a maximum lowered since does not lock it out.
		asked, what = ws.Resources, fmt.Sprintf("workspace %q: ", ws.Name)
		asked.DiskMB = 0
		if ws.Network.Mode == "" { // the tier's, as it is now
			nw = store.Network{Mode: s.egress(tier)}
		} else {
			nw = ws.Network
		}
	}
	if nw.Mode == api.NetworkInternet && s.cfg.Network == nil {
		return api.Session{}, errdefs.New(errdefs.ErrFailedPrecondition, "network mode internet: this server runs without egress (chaser serve --egress none)")
	}
	res, err := tier.Resolve(acct.Tier, asked)
	if err != nil {
		return api.Session{}, fmt.Errorf("%s%w", what, err)
	}
	if ws != nil {
		res.DiskMB = s.workspaceDiskMB(*ws, res.DiskMB)
	}
	img, err := s.cfg.Images.Resolve(ctx, ref)
	if err != nil {
		return api.Session{}, err
	}
	// The lease keeps the image's layers from GC until the rootfs is
	// mounted (or creation failed).
	defer img.Release()
	rt, err := s.runtime(tier.Runtime)
	if err != nil {
		return api.Session{}, err
	}
	if _, ok := rt.(runtime.LoopbackOnly); ok && nw.Mode == api.NetworkInternet {
		// A workspace made with internet before its tier moved to microvm.
		return api.Session{}, errdefs.New(errdefs.ErrPermissionDenied, fmt.Sprintf(
			"%snetwork mode internet: runtime %s supports network mode none only", what, rt.Name()))
	}
	id := NewID("s")
	release, err := s.reserve(ctx, acct, tier, id)
	if err != nil {
		return api.Session{}, err
	}
	defer release()

	now := time.Now().UTC()
	sess := store.Session{
		ID: id, AccountID: acct.ID, Type: typ, Status: api.StatusStarting,
		Image: img.Ref, Runtime: rt.Name(), Ephemeral: ws == nil,
		CreatedAt: now, ExpiresAt: now.Add(tier.TTL), Resources: res, Network: nw,
	}
	if ws != nil {
		sess.WorkspaceID = &ws.ID
	}
	// The sandbox outlives this request: a client that goes away mid-create
	// finds its session listed, or gone if creation failed.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	// Warm pool (pool.go): a sandbox made ahead with this image, runtime
	// and resources is bound to the session (running already) instead of
	// made now; a workspace's sandbox mounts the workspace, so never.
	if ws == nil && s.claim(bctx, rt, img, &sess, tier) {
		if err := s.cfg.Store.CreateSession(bctx, sess); err != nil {
			if derr := s.destroyRuntime(bctx, sess.ID); derr != nil {
				s.log.Error("release claimed sandbox", "session_id", sess.ID, "sandbox", sess.SandboxID, "err", derr)
			}
			return api.Session{}, err
		}
		s.running(sess) // exec's hot path answers from the handle (see cachedAgent)
		s.log.Info("session created", "session_id", sess.ID, "account", acct.ID, "image", img.Ref, "sandbox", sess.SandboxID)
		return toAPI(sess), nil
	}
	admitted, err := s.admitHost()
	if err != nil {
		return api.Session{}, err
	}
	defer admitted()
	if err := s.cfg.Store.CreateSession(ctx, sess); err != nil {
		return api.Session{}, err
	}
	begin := time.Now()
	if err := s.start(bctx, rt, sess, img, ws, tier); err != nil {
		s.cfg.Metrics.SandboxFailures.Inc()
		if derr := s.cfg.Store.DeleteSession(bctx, sess.ID); derr != nil {
			s.log.Error("forget failed session", "session_id", sess.ID, "err", derr)
		}
		return api.Session{}, fmt.Errorf("create sandbox: %w", err)
	}
	s.cfg.Metrics.SandboxCreate.Observe(time.Since(begin).Seconds())
	sess.Status = api.StatusRunning
	if err := s.cfg.Store.UpdateSessionStatus(bctx, sess.ID, sess.Status); err != nil {
		s.forget(bctx, sess.ID)
		return api.Session{}, err
	}
	s.running(sess)
	s.log.Info("session created", "session_id", sess.ID, "account", acct.ID, "image", img.Ref, "workspace_id", ptr(sess.WorkspaceID))
	return toAPI(sess), nil
}

func ptr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// reserve counts session id, about to be created, against the account's
// limit: ErrResourceExhausted when the account already has as many live
// sessions, stored or being created, as its tier allows. release ends the
// reservation once the session is stored as running, or gone.
func (s *Service) reserve(ctx context.Context, acct store.Account, tier TierLimits, id string) (release func(), err error) {
	s.admit.Lock()
	defer s.admit.Unlock()
	list, err := s.cfg.Store.ListSessions(ctx, acct.ID)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.creating[acct.ID])
	for _, x := range list {
		if !s.creating[acct.ID][x.ID] {
			n++
		}
	}
	if n >= tier.MaxSandboxes {
		return nil, errdefs.New(errdefs.ErrResourceExhausted, fmt.Sprintf(
			"account %s has %d sandboxes, the most its %s tier allows; delete one (chaser sessions delete ID) and retry", acct.Name, n, acct.Tier))
	}
	if s.creating[acct.ID] == nil {
		s.creating[acct.ID] = map[string]bool{}
	}
	s.creating[acct.ID][id] = true
	return func() {
		s.mu.Lock()
		delete(s.creating[acct.ID], id)
		if len(s.creating[acct.ID]) == 0 {
			delete(s.creating, acct.ID)
		}
		s.mu.Unlock()
	}, nil
}

// start makes the sandbox of session sess: its writable layer (workspace
// w's disk when w is not nil, else a fresh one of sess.Resources.DiskMB),
// then its network when its mode is internet (tier's allow list added),
// then the sandbox, without waiting for its agent to serve (see boot). On
// error nothing of it is left.
func (s *Service) start(ctx context.Context, rt runtime.Runtime, sess store.Session, img *image.Image, w *store.Workspace, tier TierLimits) error {
	ws := ""
	if sess.WorkspaceID != nil {
		ws = *sess.WorkspaceID
	}
	env := append(sandboxEnv(rt, img, sess.ID),
		agent.EnvSessionID+"="+sess.ID,
		"CHASER_WORKSPACE_ID="+ws,
	)
	var pol *network.Policy
	if sess.Network.Mode == api.NetworkInternet {
		p := policy(tier, sess.Network)
		pol = &p
	}
	c, err := s.boot(ctx, rt, sess.ID, sess.ID, env, sess.Resources, img, w, pol, false)
	if err != nil {
		return err
	}
	s.attach(sess.ID, sess.ID, c, rt)
	return nil
}

// sandboxEnv is the environment of a sandbox on img under rt with the
// given hostname, less the session's identity (CHASER_SESSION_ID,
// CHASER_WORKSPACE_ID), which a pooled sandbox gets at its claim.
func sandboxEnv(rt runtime.Runtime, img *image.Image, hostname string) []string {
	return append(append(append([]string(nil), img.Env...), imageEnv(img)...),
		"HOSTNAME="+hostname,
		"CHASER=1",
		"CHASER_IMAGE="+img.Ref,
		"CHASER_RUNTIME="+rt.Name(),
	)
}

// boot makes sandbox id: its writable layer (workspace w's disk when w is
// not nil, else a fresh one of res.DiskMB), its network namespace with
// egress under pol when pol is not nil (else loopback only), then the
// sandbox. Everything is keyed by the sandbox's id, which differs from its
// session's for a sandbox of the warm pool. On error nothing of it is left.
//
// With waitAgent, boot returns once the agent has answered a health check.
// Without, it returns once the runtime has started the agent: every
// runtime's Create returns with the agent's socket taking connections
// (runc: the listening socket made before the sandbox, which queues them
// until the agent serves), so the first request simply waits out the
// agent's start (~2 ms of Go runtime start, which a create no longer adds
// to the request that follows it). An agent that never serves is found as
// any other: its exit by the watch, its silence by the health checks.
func (s *Service) boot(ctx context.Context, rt runtime.Runtime, id, hostname string, env []string, res Resources, img *image.Image, w *store.Workspace, pol *network.Policy, waitAgent bool) (*agent.Client, error) {
	diskBytes := res.DiskMB << 20
	if _, ok := rt.(runtime.DiskOwner); ok {
		diskBytes = 0 // the runtime's own disk image is the quota
	}
	upper, err := s.mountDisk(ctx, id, w, diskBytes)
	if err != nil {
		return nil, err
	}
	spec := runtime.Spec{
		ID: id, Hostname: hostname, Env: env, Limits: limits(res), AgentPath: s.cfg.AgentPath,
		Rootfs: runtime.Rootfs{Overlays: img.Overlays, UpperDir: upper},
	}
	if pol != nil {
		at, err := s.cfg.Network.Setup(ctx, id, *pol)
		if err != nil {
			s.releaseFailed(id)
			return nil, err
		}
		spec.Network = &runtime.Network{NSPath: at.NSPath}
		for _, a := range at.Nameservers {
			spec.Network.Nameservers = append(spec.Network.Nameservers, a.String())
		}
	}
	if err := rt.Create(ctx, spec); err != nil {
		s.releaseFailed(id)
		return nil, err
	}
	c := client(rt, id)
	if !waitAgent {
		return c, nil
	}
	hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := c.Health(hctx); err != nil {
		c.Close()
		if derr := s.deleteSandbox(ctx, rt, id); derr != nil {
			s.log.Error("release sandbox whose agent did not answer", "sandbox", id, "err", derr)
		}
		return nil, fmt.Errorf("sandbox %s: agent did not answer: %w", id, err)
	}
	return c, nil
}

// deleteSandbox deletes sandbox id of rt and then releases its disk.
// A step slower than slowRelease is logged with its time: a release that
// drags (a fork storm slow to die, a busy netlink) shows where.
func (s *Service) deleteSandbox(ctx context.Context, rt runtime.Runtime, id string) error {
	start := time.Now()
	err := rt.Delete(ctx, id)
	s.slow(start, "delete sandbox", id)
	if err != nil {
		return fmt.Errorf("delete sandbox %s: %w", id, err)
	}
	var errs []error
	if s.cfg.Network != nil {
		start = time.Now()
		if err := s.cfg.Network.Release(id); err != nil {
			errs = append(errs, fmt.Errorf("release network of sandbox %s: %w", id, err))
		}
		s.slow(start, "release network", id)
	}
	// Only now: the sandbox's mounts held the disk until it was deleted.
	start = time.Now()
	errs = append(errs, s.releaseDisk(id))
	s.slow(start, "release disk", id)
	return errors.Join(errs...)
}

// slowRelease is the time past which a step of a sandbox's release is
// logged.
const slowRelease = 2 * time.Second

// slow logs step of sandbox id's release when it took longer than
// slowRelease since start.
func (s *Service) slow(start time.Time, step, id string) {
	if d := time.Since(start); d > slowRelease {
		s.log.Warn("slow release", "step", step, "sandbox", id, "ms", d.Milliseconds())
	}
}

// attach records session id as running on sandbox sandbox (its own id,
// or a warm pool's sandbox it claimed) and watches the sandbox.
func (s *Service) attach(id, sandbox string, c *agent.Client, rt runtime.Runtime) {
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.live[id] = &handle{client: c, rt: rt, sandbox: sandbox, used: time.Now(), unwatch: cancel}
	s.mu.Unlock()
	go s.watch(ctx, id, sandbox, rt)
}

// watch ends session id as soon as the sandbox's process
// (runc: its init, the agent; runsc: gVisor's sandbox process) exits,
// rather than at the next health check: under runsc an OOM kill, or a
// fork bomb that exhausts the host's pids limit, takes the whole sandbox,
// which must not be listed running meanwhile. The reason is oom when the
// memory cgroup counted an OOM kill, else died. (The runtime's state is
// not asked whether it stopped: the exited process is a zombie until it
// is reaped, and still looks alive.) Without a process to watch, the
// health checks alone find the end. Every caller has just seen the
// sandbox alive (its agent answered), so its pid file names its process.
func (s *Service) watch(ctx context.Context, id, sandbox string, rt runtime.Runtime) {
	pid := sandboxPID(ctx, rt, sandbox)
	if pid <= 0 {
		return
	}
	if err := waitExit(ctx, pid); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("cannot watch the sandbox's process; health checks will find its end", "session_id", id, "sandbox", sandbox, "err", err)
		}
		return
	}
	if ctx.Err() != nil {
		return // released meanwhile: its end is recorded already
	}
	var last string // the agent's last words (a Go runtime's fatal error, a panic), before a release removes them
	if r, ok := rt.(runtime.AgentLogReader); ok {
		last = r.AgentLogTail(sandbox)
	}
	why := api.ReasonDied
	if in, err := rt.State(ctx, sandbox); err == nil && in.OOMKilled {
		why = api.ReasonOOM
	}
	if why == api.ReasonDied {
		s.log.Warn("sandbox's process exited", "session_id", id, "sandbox", sandbox, "agent_log", last)
	}
	s.endLogged(ctx, id, why)
}

// sandboxPID is the host pid of sandbox's process: from the runtime's pid
// file when it keeps one (runtime.PIDReader), else from its State; 0 when
// neither tells.
func sandboxPID(ctx context.Context, rt runtime.Runtime, sandbox string) int {
	if r, ok := rt.(runtime.PIDReader); ok {
		if pid, err := r.PID(sandbox); err == nil && pid > 0 {
			return pid
		}
	}
	in, err := rt.State(ctx, sandbox)
	if err != nil {
		return 0
	}
	return in.PID
}

func client(rt runtime.Runtime, id string) *agent.Client {
	return agent.NewClient(func(ctx context.Context) (net.Conn, error) {
		return rt.Dial(ctx, id)
	})
}

// session returns the account's session, or ErrNotFound — also when it
// belongs to another account, so ids of others are not disclosed.
func (s *Service) session(ctx context.Context, acct store.Account, id string) (store.Session, error) {
	x, err := s.cfg.Store.GetSession(ctx, id)
	if err != nil || x.AccountID != acct.ID {
		if err == nil || errors.Is(err, errdefs.ErrNotFound) {
			return store.Session{}, errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("session %s not found", id))
		}
		return store.Session{}, err
	}
	return x, nil
}

// Get returns one of the account's sessions, or ErrNotFound.
func (s *Service) Get(ctx context.Context, acct store.Account, id string) (api.Session, error) {
	x, err := s.session(ctx, acct, id)
	if err != nil {
		return api.Session{}, err
	}
	return toAPI(x), nil
}

// List returns one page of live sessions, oldest first: the account's,
// or with all every account's, each with its AccountID (the admin only:
// others get ErrPermissionDenied). next is the next_token of the page
// after, "" on the last.
func (s *Service) List(ctx context.Context, acct store.Account, all bool, q paging.Query) (page []api.Session, next string, err error) {
	owner := acct.ID
	if all {
		if !acct.Admin {
			return nil, "", errNotAdmin("sessions")
		}
		owner = ""
	}
	list, err := s.cfg.Store.ListSessionsPage(ctx, owner, q.After, q.Limit+1)
	if err != nil {
		return nil, "", err
	}
	list, next = paging.Cut(list, q, "sessions", func(x store.Session) paging.Cursor {
		return paging.Cursor{Time: x.CreatedAt, Key: x.ID}
	})
	page = make([]api.Session, 0, len(list))
	for _, x := range list {
		a := toAPI(x)
		if all {
			a.AccountID = x.AccountID
		}
		page = append(page, a)
	}
	return page, next, nil
}

// Delete ends one of the account's sessions (reason deleted) and releases
// its sandbox. Deleting a session that already ended changes nothing.
func (s *Service) Delete(ctx context.Context, acct store.Account, id string) error {
	x, err := s.session(ctx, acct, id)
	if err != nil {
		return err
	}
	if x.EndedAt != nil {
		return nil
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	return s.end(dctx, x.ID, api.ReasonDeleted)
}

// Agent returns the agent of one of the account's running sessions. A
// session that ended answers ErrFailedPrecondition with its reason, at
// once.
func (s *Service) Agent(ctx context.Context, acct store.Account, id string) (*agent.Client, store.Session, error) {
	if c, x, ok := s.cachedAgent(acct, id); ok {
		return c, x, nil
	}
	x, err := s.session(ctx, acct, id)
	if err != nil {
		return nil, x, err
	}
	if ended(x) {
		return nil, x, endedError(x)
	}
	s.mu.Lock()
	h := s.live[x.ID]
	if h != nil {
		h.used = time.Now()
	}
	s.mu.Unlock()
	if h == nil || x.Status != api.StatusRunning {
		return nil, x, errdefs.New(errdefs.ErrFailedPrecondition, fmt.Sprintf("session %s is %s, not running", x.ID, x.Status))
	}
	return h.client, x, nil
}

// running records that session x, live in s.live, is stored as running:
// from now on Agent answers from memory.
func (s *Service) running(x store.Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.live[x.ID]; h != nil {
		h.sess = &x
	}
}

// cachedAgent is Agent without a store read, for the hot path of exec,
// files and forwards: it answers when the session is live, stored as
// running, owned by acct and not being torn down. Otherwise ok is false
// and Agent asks the store, which gives the precise answer (404 for
// another account's session or none, the reason of an ended one).
//
// This is exact, not a guess: a running session's stored status changes
// only through teardown, which enters s.ending before its first store
// write and leaves s.live before its last (both under s.mu), and its
// owner never changes.
func (s *Service) cachedAgent(acct store.Account, id string) (*agent.Client, store.Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.live[id]
	if h == nil || h.sess == nil || h.sess.AccountID != acct.ID {
		return nil, store.Session{}, false
	}
	if _, ending := s.ending[id]; ending {
		return nil, store.Session{}, false
	}
	h.used = time.Now()
	return h.client, *h.sess, true
}

// end ends a live session for reason: it records the reason (status
// stopping), releases the sandbox, then records the end, so a crash midway
// leaves a record that recovery finishes with the same reason.
func (s *Service) end(ctx context.Context, id, reason string) error {
	return s.teardown(ctx, id, func() error {
		if err := s.cfg.Store.StopSession(ctx, id, reason); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return err
		}
		if err := s.destroyRuntime(ctx, id); err != nil {
			return err
		}
		if err := s.cfg.Store.EndSession(ctx, id, statusAfter(reason), reason, time.Now().UTC()); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return err
		}
		s.cfg.Metrics.SandboxDeletes.Inc()
		s.log.Info("session ended", "session_id", id, "reason", reason)
		return nil
	})
}

// teardown runs f, the teardown of session id, unless one runs already:
// then it waits for that one and returns nil. One teardown runs per
// session at a time (the reaper, the health checker, a DELETE and a
// graceful shutdown may all reach for the same session).
func (s *Service) teardown(ctx context.Context, id string, f func() error) error {
	s.mu.Lock()
	if done, ok := s.ending[id]; ok {
		s.mu.Unlock()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	done := make(chan struct{})
	s.ending[id] = done
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.ending, id)
		s.mu.Unlock()
		close(done)
	}()
	return f()
}

// forget releases a session's sandbox and forgets the session without a
// record: for sessions nobody asked for by id (the throwaway sandbox of
// POST /v1/exec, a create that failed) and for a graceful shutdown.
func (s *Service) forget(ctx context.Context, id string) error {
	return s.teardown(ctx, id, func() error {
		if err := s.cfg.Store.StopSession(ctx, id, api.ReasonDeleted); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return err
		}
		if err := s.destroyRuntime(ctx, id); err != nil {
			return err
		}
		if err := s.cfg.Store.DeleteSession(ctx, id); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return err
		}
		s.cfg.Metrics.SandboxDeletes.Inc()
		s.log.Info("session deleted", "session_id", id)
		return nil
	})
}

func (s *Service) destroyRuntime(ctx context.Context, id string) error {
	s.mu.Lock()
	h := s.live[id]
	s.mu.Unlock()
	var rt runtime.Runtime
	sandbox := id
	if h != nil {
		rt, sandbox = h.rt, h.sandbox
	} else {
		x, err := s.cfg.Store.GetSession(ctx, id)
		if err == nil {
			sandbox = x.Sandbox()
			rt, err = s.runtime(x.Runtime)
		}
		if err != nil {
			return fmt.Errorf("delete sandbox of session %s: %w", id, err)
		}
	}
	s.mu.Lock()
	delete(s.live, id)
	s.mu.Unlock()
	s.ports.forget(id)
	if h != nil {
		h.unwatch()
		h.client.Close()
	}
	err := s.deleteSandbox(ctx, rt, sandbox)
	s.refill() // the host has room again, should admission have held the pool back
	return err
}

// releaseFailed releases the network and disk of sandbox id whose
// creation failed before the runtime had it.
func (s *Service) releaseFailed(id string) {
	if s.cfg.Network != nil {
		if err := s.cfg.Network.Release(id); err != nil {
			s.log.Error("release network of failed sandbox", "sandbox", id, "err", err)
		}
	}
	if err := s.releaseDisk(id); err != nil {
		s.log.Error("release disk of failed sandbox", "sandbox", id, "err", err)
	}
}

// Recover reconciles the store with the runtime after a start: running
// sandboxes of known sessions are attached again, everything else — dead
// sandboxes, sandboxes without a session, sessions without a sandbox — is
// released, and the sessions it ends record why.
func (s *Service) Recover(ctx context.Context) error {
	sessions, err := s.cfg.Store.ListSessions(ctx, "")
	if err != nil {
		return err
	}
	// Every runtime lists only its own sandboxes (its own state directory
	// and cgroup parent), so a sandbox is released by the runtime that ran
	// it, and only a sandbox of a session of that runtime counts as its.
	type listed struct {
		rt runtime.Runtime
		in runtime.Instance
	}
	var instances []listed
	running := map[string]string{} // sandbox id → runtime name
	for _, rt := range s.cfg.Runtimes {
		list, err := rt.List(ctx)
		if err != nil {
			return err
		}
		for _, in := range list {
			instances = append(instances, listed{rt, in})
			if in.State.Live() { // a paused one is checked like a running one
				running[in.ID] = rt.Name()
			}
		}
	}
	known := map[string]string{} // sandbox id → its runtime's name
	keep := map[string]network.Policy{}
	accounts := map[string]store.Account{}
	if all, err := s.cfg.Store.ListAccounts(ctx); err == nil {
		for _, a := range all {
			accounts[a.ID] = a
		}
	}
	var errs []error
	for _, x := range sessions {
		sb := x.Sandbox()
		known[sb] = s.runtimeName(x.Runtime)
		reason := api.ReasonDied
		switch {
		case x.Status == api.StatusStopping && x.Reason != "":
			reason = x.Reason // a teardown the crash cut short
		case x.Status == api.StatusRunning && running[sb] != "" && running[sb] == s.runtimeName(x.Runtime):
			rt := s.cfg.Runtimes[running[sb]]
			c := client(rt, sb)
			hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, herr := c.Health(hctx)
			cancel()
			if herr == nil {
				s.attach(x.ID, sb, c, rt)
				s.running(x)
				s.log.Info("session recovered", "session_id", x.ID, "runtime", rt.Name())
				if x.Network.Mode == api.NetworkInternet {
					keep[sb] = policy(s.tier(accounts[x.AccountID]), x.Network)
				}
				if err := s.killOrphans(ctx, x.ID, c); err != nil {
					errs = append(errs, err)
				}
				continue
			}
			c.Close()
			s.log.Warn("agent of recovered session does not answer", "session_id", x.ID, "err", herr)
			reason = api.ReasonAgentUnresponsive
		default:
			if rt, err := s.runtime(x.Runtime); err != nil {
				// Its runtime is no longer enabled: nothing can release
				// its sandbox; end the record and say so.
				s.log.Warn("session's runtime is not enabled; its sandbox is left as it is", "session_id", x.ID, "runtime", x.Runtime)
				if err := s.cfg.Store.EndSession(ctx, x.ID, statusAfter(api.ReasonDied), api.ReasonDied, time.Now().UTC()); err != nil {
					errs = append(errs, err)
				}
				continue
			} else if in, err := rt.State(ctx, sb); err == nil && in.OOMKilled {
				reason = api.ReasonOOM
			}
		}
		s.log.Info("releasing session left from before", "session_id", x.ID, "status", x.Status, "reason", reason)
		if err := s.end(ctx, x.ID, reason); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.removeOrphanWorkspaces(ctx); err != nil {
		errs = append(errs, err)
	}
	if s.cfg.Network != nil {
		// After the ends above released their networks: what is left
		// and not kept is a crash's.
		if err := s.cfg.Network.Recover(keep); err != nil {
			errs = append(errs, err)
		}
	}
	if ports, err := s.cfg.Store.PublicPorts(ctx); err != nil {
		errs = append(errs, err)
	} else {
		s.ports.load(ports, func(id string) bool { return s.IsRunning(id) })
	}
	for _, l := range instances {
		if known[l.in.ID] != l.rt.Name() {
			s.log.Info("releasing sandbox without a session", "sandbox", l.in.ID, "runtime", l.rt.Name())
			if err := l.rt.Delete(ctx, l.in.ID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := s.releaseOrphanDisks(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// killOrphans kills the foreground commands of a recovered session: their
// caller waited on the answer through the server that died, so nobody can
// read their output or stop them; a foreground command does not outlive
// its caller. Background commands live on.
func (s *Service) killOrphans(ctx context.Context, id string, c *agent.Client) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var cmds []api.Command
	q := agent.CommandQuery{Status: api.CommandRunning}
	for {
		page, err := c.Commands(cctx, q)
		if err != nil {
			return fmt.Errorf("session %s: list commands: %w", id, err)
		}
		cmds = append(cmds, page.Commands...)
		if q.NextToken = page.NextToken; q.NextToken == "" {
			break
		}
	}
	var errs []error
	for _, cmd := range cmds {
		if cmd.Background || cmd.Status != api.CommandRunning {
			continue
		}
		s.log.Info("killing foreground command whose caller is gone", "session_id", id, "command_id", cmd.ID)
		if err := c.Signal(cctx, cmd.ID, "KILL"); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			errs = append(errs, fmt.Errorf("session %s: kill command %s: %w", id, cmd.ID, err))
		}
	}
	return errors.Join(errs...)
}

// Shutdown destroys every sandbox (graceful stop of the server). Session
// records go with them: ephemeral sessions leave nothing behind.
func (s *Service) Shutdown(ctx context.Context) error {
	list, err := s.cfg.Store.ListSessions(ctx, "")
	if err != nil {
		return err
	}
	var mu sync.Mutex
	errs := []error{s.drainPool(ctx)}
	each(list, func(x store.Session) {
		if err := s.forget(ctx, x.ID); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, rt := range s.cfg.Runtimes {
		if c, ok := rt.(runtime.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// parallel bounds how many sandboxes the reaper, the health checks and
// shutdown handle at once: one hung agent must not hold up the others,
// and hundreds of sandboxes must not start hundreds of runc processes.
const parallel = 16

// each calls f for every item, at most parallel at a time, and returns
// when all calls have.
func each[T any](items []T, f func(T)) {
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, x := range items {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(x)
		}()
	}
	wg.Wait()
}

// endLogged ends a session from a background loop. Teardown runs to the
// end even when the server starts shutting down meanwhile: a half-deleted
// sandbox is worse than a late stop.
func (s *Service) endLogged(ctx context.Context, id, reason string) {
	s.log.Info("ending session", "session_id", id, "reason", reason)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := s.end(dctx, id, reason); err != nil {
		s.log.Error("end session", "session_id", id, "reason", reason, "err", err)
	}
}

// Reap ends sessions past their expiry and idle ones: not reached through
// the API for the tier's IdleTimeout, running no command and holding no
// terminal; and it forgets the records of sessions that ended more than
// KeepEnded ago. Run it periodically.
func (s *Service) Reap(ctx context.Context) {
	list, err := s.cfg.Store.ListSessions(ctx, "")
	if ctx.Err() != nil {
		return // shutting down
	}
	if err != nil {
		s.log.Error("reap: list sessions", "err", err)
		return
	}
	accounts := map[string]store.Account{}
	if all, err := s.cfg.Store.ListAccounts(ctx); err == nil {
		for _, a := range all {
			accounts[a.ID] = a
		}
	}
	now := time.Now()
	each(list, func(x store.Session) {
		if x.Status != api.StatusRunning {
			return
		}
		why := ""
		if now.After(x.ExpiresAt) {
			why = api.ReasonExpired
		} else if s.idle(ctx, x, s.tier(accounts[x.AccountID]).IdleTimeout, now) {
			why = api.ReasonIdle
		}
		if why != "" {
			s.endLogged(ctx, x.ID, why)
		}
	})
	if ctx.Err() != nil {
		return
	}
	if n, err := s.cfg.Store.PruneSessions(ctx, now.Add(-KeepEnded)); err != nil {
		s.log.Error("reap: prune ended sessions", "err", err)
	} else if n > 0 {
		s.log.Info("forgot ended sessions", "count", n)
	}
}

// CheckHealth asks every running sandbox's agent for its health, with a
// deadline, and ends the sessions whose sandbox stopped (reason died, or
// oom when the OOM killer struck) and those whose agent missed
// MaxHealthMisses checks in a row while its sandbox still runs or is paused
// (reason agent_unresponsive: frozen or hung; calls to it would hang).
// The probes are spread evenly over the duration over (at most parallel at
// a time): all at once, 120 sandboxes' probes were a burst of CPU every
// round that every command in flight felt (docs/BENCHMARKS.md, "Sixth
// round").
func (s *Service) CheckHealth(ctx context.Context, over time.Duration) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.live))
	for id := range s.live {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	var gap time.Duration
	if len(ids) > 1 {
		gap = over / time.Duration(len(ids)-1)
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, id := range ids {
		if i > 0 && gap > 0 {
			t := time.NewTimer(gap)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if why := s.probe(ctx, id); why != "" {
				s.endLogged(ctx, id, why)
			}
		})
	}
	wg.Wait()
	s.checkPool(ctx) // the warm pool's sandboxes (pool.go)
}

// probe checks the health of one sandbox and returns why its session must
// end, or "".
func (s *Service) probe(ctx context.Context, id string) string {
	s.mu.Lock()
	h := s.live[id]
	s.mu.Unlock()
	if h == nil {
		return ""
	}
	hctx, cancel := context.WithTimeout(ctx, HealthTimeout)
	_, err := h.client.Health(hctx)
	cancel()
	if ctx.Err() != nil {
		return "" // shutting down: not the agent's fault
	}
	if err == nil {
		s.mu.Lock()
		h.misses = 0
		s.mu.Unlock()
		return ""
	}
	in, serr := h.rt.State(ctx, h.sandbox)
	switch {
	// A paused (frozen) sandbox is not dead: its silent agent counts misses.
	case errors.Is(serr, errdefs.ErrNotFound), serr == nil && !in.State.Live():
		if in.OOMKilled {
			return api.ReasonOOM
		}
		return api.ReasonDied
	case serr != nil:
		s.log.Warn("health: sandbox state", "session_id", id, "err", serr)
		return ""
	}
	s.mu.Lock()
	h.misses++
	misses := h.misses
	s.mu.Unlock()
	s.log.Warn("agent missed a health check", "session_id", id, "misses", misses, "err", err)
	if misses >= MaxHealthMisses {
		return api.ReasonAgentUnresponsive
	}
	return ""
}

// idle tells whether session x went unused for timeout and runs nothing:
// no command and no terminal.
func (s *Service) idle(ctx context.Context, x store.Session, timeout time.Duration, now time.Time) bool {
	if timeout <= 0 {
		return false
	}
	s.mu.Lock()
	h := s.live[x.ID]
	var last time.Time
	if h != nil {
		last = h.used
	}
	s.mu.Unlock()
	if h == nil || now.Sub(last) < timeout {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	running, err := h.client.Commands(cctx, agent.CommandQuery{Status: api.CommandRunning, Limit: 1})
	if err != nil || len(running.Commands) > 0 {
		return false // busy, or unsure: leave it to the TTL
	}
	hl, err := h.client.Health(cctx)
	return err == nil && hl.Terminals == 0
}

// RunReaper calls Reap every interval until ctx ends.
func (s *Service) RunReaper(ctx context.Context, interval time.Duration) {
	every(ctx, interval, s.Reap)
}

// RunHealth calls CheckHealth every interval until ctx ends, its probes
// spread over half of it.
func (s *Service) RunHealth(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func(ctx context.Context) { s.CheckHealth(ctx, interval/2) })
}

// every calls f every interval until ctx ends; a slow round delays the
// next instead of overlapping it.
func every(ctx context.Context, interval time.Duration, f func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f(ctx)
		}
	}
}

// Stats returns the runtime's figures of one of the account's running
// sandboxes (its cgroup's memory and pids): what the sandbox uses, which
// a command inside cannot read when no cgroup is mounted there.
func (s *Service) Stats(ctx context.Context, acct store.Account, id string) (runtime.Stats, error) {
	if _, _, err := s.Agent(ctx, acct, id); err != nil {
		return runtime.Stats{}, err
	}
	s.mu.Lock()
	h := s.live[id]
	s.mu.Unlock()
	if h == nil {
		return runtime.Stats{}, errdefs.New(errdefs.ErrFailedPrecondition, fmt.Sprintf("session %s is not running", id))
	}
	return h.rt.Stats(ctx, h.sandbox)
}
