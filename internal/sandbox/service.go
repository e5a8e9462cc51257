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
	"sync"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/image"
	"github.com/chaserhq/chaser/internal/metrics"
	"github.com/chaserhq/chaser/internal/runtime"
	"github.com/chaserhq/chaser/internal/store"
)

// TierLimits are the limits of one account tier.
type TierLimits struct {
	// MaxSandboxes is how many sessions an account may have at once.
	MaxSandboxes int
	// Resources bound each sandbox.
	Resources runtime.Limits
	// TTL is how long a session lives at most.
	TTL time.Duration
	// IdleTimeout ends a session nobody used for this long: no API call
	// reached it and no command runs in it. Zero disables it.
	IdleTimeout time.Duration
}

// DefaultTiers are the limits used unless configured otherwise.
var DefaultTiers = map[string]TierLimits{
	api.TierFree: {MaxSandboxes: 3, TTL: 30 * time.Minute, IdleTimeout: 10 * time.Minute,
		Resources: runtime.Limits{MemoryBytes: 512 << 20, MilliCPUs: 1000, Pids: 256}},
	api.TierPaid: {MaxSandboxes: 20, TTL: 8 * time.Hour, IdleTimeout: time.Hour,
		Resources: runtime.Limits{MemoryBytes: 2 << 30, MilliCPUs: 2000, Pids: 1024}},
}

// Config configures a Service.
type Config struct {
	Runtime runtime.Runtime
	Images  *image.Store
	Store   store.Store
	// AgentPath is the host path of the binary that runs as the agent.
	AgentPath    string
	DefaultImage string
	// WorkspaceDir holds one directory per workspace: its writable layer.
	WorkspaceDir string
	Tiers        map[string]TierLimits
	MaxFileSize  int64 // bytes per upload or download; 0: fs.DefaultMaxFileSize
	Log          *slog.Logger
	// Metrics is updated by the service; nil makes a private set.
	Metrics *metrics.Metrics
}

// Service manages sessions.
type Service struct {
	cfg Config
	log *slog.Logger

	mu   sync.Mutex
	live map[string]*agent.Client // running sandboxes by session id
	// creating counts sessions being created per account, so that
	// concurrent creates cannot exceed the tier's limit.
	creating map[string]int
	// wsLocks serialize finding-or-starting the session of a workspace.
	wsLocks map[string]*sync.Mutex
	// used is when each running session was last reached through Agent.
	used  map[string]time.Time
	ports portTable // public ports of running sessions
	// shared holds the throwaway sandboxes that targetless requests share
	// (see Target), by account and image; made on first use.
	shared map[string]*sharedSandbox
}

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
		live:     make(map[string]*agent.Client),
		creating: make(map[string]int),
		wsLocks:  make(map[string]*sync.Mutex),
		used:     make(map[string]time.Time),
	}
	if s.cfg.Metrics == nil {
		s.cfg.Metrics = metrics.New(s.Running)
	}
	return s
}

// Running returns how many sandboxes run now.
func (s *Service) Running() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return float64(len(s.live))
}

// RuntimeName names the isolation runtime.
func (s *Service) RuntimeName() string { return s.cfg.Runtime.Name() }

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a random identifier with the given prefix. Identifiers are
// DNS labels ([a-z0-9-]) so they can be hostnames and host-style URLs.
func NewID(prefix string) string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return prefix + "-" + idEncoding.EncodeToString(b)
}

func toAPI(x store.Session) api.Session {
	return api.Session{
		ID: x.ID, Type: x.Type, Status: x.Status, WorkspaceID: x.WorkspaceID, Image: x.Image,
		Ephemeral: x.Ephemeral, Runtime: x.Runtime, CreatedAt: x.CreatedAt, ExpiresAt: x.ExpiresAt,
	}
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
// workspaces on the free tier, ErrResourceExhausted when the tier's sandbox
// limit is reached.
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
	if req.Workspace == "" && (req.Ephemeral || req.Image != "" || acct.Tier != api.TierPaid) {
		sess, err := s.create(ctx, acct, req.Type, req.Image, nil)
		return sess, err == nil, err
	}
	var ws store.Workspace
	var err error
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
// when empty), on workspace ws when not nil, and returns when the agent
// answers.
func (s *Service) create(ctx context.Context, acct store.Account, typ, ref string, ws *store.Workspace) (api.Session, error) {
	if ref == "" {
		ref = s.cfg.DefaultImage
	}
	img, err := s.cfg.Images.Resolve(ctx, ref)
	if err != nil {
		return api.Session{}, err
	}
	// The lease keeps the image's layers from GC until the rootfs is
	// mounted (or creation failed).
	defer img.Release()
	tier := s.tier(acct)
	release, err := s.reserve(ctx, acct, tier)
	if err != nil {
		return api.Session{}, err
	}
	defer release()

	now := time.Now().UTC()
	sess := store.Session{
		ID: NewID("s"), AccountID: acct.ID, Type: typ, Status: api.StatusStarting,
		Image: img.Ref, Runtime: s.cfg.Runtime.Name(), Ephemeral: ws == nil,
		CreatedAt: now, ExpiresAt: now.Add(tier.TTL),
	}
	upper := ""
	if ws != nil {
		sess.WorkspaceID = &ws.ID
		upper = s.workspaceDir(ws.ID)
	}
	if err := s.cfg.Store.CreateSession(ctx, sess); err != nil {
		return api.Session{}, err
	}
	// The sandbox outlives this request: a client that goes away mid-create
	// finds its session listed, or gone if creation failed.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	begin := time.Now()
	if err := s.start(bctx, sess, img, tier, upper); err != nil {
		s.cfg.Metrics.SandboxFailures.Inc()
		if derr := s.cfg.Store.DeleteSession(bctx, sess.ID); derr != nil {
			s.log.Error("forget failed session", "session_id", sess.ID, "err", derr)
		}
		return api.Session{}, fmt.Errorf("create sandbox: %w", err)
	}
	s.cfg.Metrics.SandboxCreate.Observe(time.Since(begin).Seconds())
	sess.Status = api.StatusRunning
	if err := s.cfg.Store.UpdateSessionStatus(bctx, sess.ID, sess.Status); err != nil {
		s.destroy(bctx, sess.ID)
		return api.Session{}, err
	}
	s.log.Info("session created", "session_id", sess.ID, "account", acct.ID, "image", img.Ref, "workspace_id", ptr(sess.WorkspaceID))
	return toAPI(sess), nil
}

func ptr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// reserve counts a session being created against the account's limit.
func (s *Service) reserve(ctx context.Context, acct store.Account, tier TierLimits) (release func(), err error) {
	list, err := s.cfg.Store.ListSessions(ctx, acct.ID)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(list) + s.creating[acct.ID]; n >= tier.MaxSandboxes {
		return nil, errdefs.New(errdefs.ErrResourceExhausted, fmt.Sprintf(
			"account %s has %d sandboxes, the most its %s tier allows; delete one (chaser sessions delete ID) and retry", acct.Name, n, acct.Tier))
	}
	s.creating[acct.ID]++
	return func() {
		s.mu.Lock()
		s.creating[acct.ID]--
		s.mu.Unlock()
	}, nil
}

func (s *Service) start(ctx context.Context, sess store.Session, img *image.Image, tier TierLimits, upper string) error {
	ws := ""
	if sess.WorkspaceID != nil {
		ws = *sess.WorkspaceID
	}
	env := append(append(append([]string(nil), img.Env...), imageEnv(img)...),
		"HOSTNAME="+sess.ID,
		"CHASER=1",
		"CHASER_SESSION_ID="+sess.ID,
		"CHASER_WORKSPACE_ID="+ws,
		"CHASER_IMAGE="+img.Ref,
		"CHASER_RUNTIME="+s.cfg.Runtime.Name(),
	)
	spec := runtime.Spec{
		ID: sess.ID, Hostname: sess.ID, Env: env, Limits: tier.Resources, AgentPath: s.cfg.AgentPath,
		Rootfs: runtime.Rootfs{Overlays: img.Overlays, UpperDir: upper},
	}
	if err := s.cfg.Runtime.Create(ctx, spec); err != nil {
		return err
	}
	c := s.client(sess.ID)
	hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := c.Health(hctx); err != nil {
		c.Close()
		s.destroyRuntime(ctx, sess.ID)
		return fmt.Errorf("sandbox %s: agent did not answer: %w", sess.ID, err)
	}
	s.mu.Lock()
	s.live[sess.ID] = c
	s.used[sess.ID] = time.Now()
	s.mu.Unlock()
	return nil
}

func (s *Service) client(id string) *agent.Client {
	return agent.NewClient(func(ctx context.Context) (net.Conn, error) {
		return s.cfg.Runtime.Dial(ctx, id)
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

// List returns the account's sessions.
func (s *Service) List(ctx context.Context, acct store.Account) ([]api.Session, error) {
	list, err := s.cfg.Store.ListSessions(ctx, acct.ID)
	if err != nil {
		return nil, err
	}
	out := make([]api.Session, 0, len(list))
	for _, x := range list {
		out = append(out, toAPI(x))
	}
	return out, nil
}

// Delete destroys one of the account's sessions and its sandbox.
func (s *Service) Delete(ctx context.Context, acct store.Account, id string) error {
	x, err := s.session(ctx, acct, id)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	return s.destroy(dctx, x.ID)
}

// Agent returns the agent of one of the account's running sessions.
func (s *Service) Agent(ctx context.Context, acct store.Account, id string) (*agent.Client, store.Session, error) {
	x, err := s.session(ctx, acct, id)
	if err != nil {
		return nil, x, err
	}
	s.mu.Lock()
	c := s.live[x.ID]
	if c != nil {
		s.used[x.ID] = time.Now()
	}
	s.mu.Unlock()
	if c == nil || x.Status != api.StatusRunning {
		return nil, x, errdefs.New(errdefs.ErrFailedPrecondition, fmt.Sprintf("session %s is %s, not running", x.ID, x.Status))
	}
	return c, x, nil
}

// destroy releases a session's sandbox and forgets the session. The store
// row goes last, so a crash midway leaves a record that recovery finishes.
func (s *Service) destroy(ctx context.Context, id string) error {
	if err := s.cfg.Store.UpdateSessionStatus(ctx, id, api.StatusStopping); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
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
}

func (s *Service) destroyRuntime(ctx context.Context, id string) error {
	s.mu.Lock()
	c := s.live[id]
	delete(s.live, id)
	delete(s.used, id)
	s.mu.Unlock()
	s.ports.forget(id)
	if c != nil {
		c.Close()
	}
	if err := s.cfg.Runtime.Delete(ctx, id); err != nil {
		return fmt.Errorf("delete sandbox %s: %w", id, err)
	}
	return nil
}

// Recover reconciles the store with the runtime after a start: running
// sandboxes of known sessions are attached again, everything else — dead
// sandboxes, sandboxes without a session, sessions without a sandbox — is
// released.
func (s *Service) Recover(ctx context.Context) error {
	sessions, err := s.cfg.Store.ListSessions(ctx, "")
	if err != nil {
		return err
	}
	instances, err := s.cfg.Runtime.List(ctx)
	if err != nil {
		return err
	}
	running := map[string]bool{}
	for _, in := range instances {
		if in.State == runtime.Running {
			running[in.ID] = true
		}
	}
	known := map[string]bool{}
	var errs []error
	for _, x := range sessions {
		known[x.ID] = true
		if x.Status == api.StatusRunning && running[x.ID] {
			c := s.client(x.ID)
			hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, herr := c.Health(hctx)
			cancel()
			if herr == nil {
				s.mu.Lock()
				s.live[x.ID] = c
				s.used[x.ID] = time.Now()
				s.mu.Unlock()
				s.log.Info("session recovered", "session_id", x.ID)
				continue
			}
			c.Close()
			s.log.Warn("agent of recovered session does not answer", "session_id", x.ID, "err", herr)
		}
		s.log.Info("releasing session left from before", "session_id", x.ID, "status", x.Status)
		if err := s.destroy(ctx, x.ID); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.removeOrphanWorkspaces(ctx); err != nil {
		errs = append(errs, err)
	}
	if ports, err := s.cfg.Store.PublicPorts(ctx); err != nil {
		errs = append(errs, err)
	} else {
		s.ports.load(ports, func(id string) bool { return s.IsRunning(id) })
	}
	for _, in := range instances {
		if !known[in.ID] {
			s.log.Info("releasing sandbox without a session", "sandbox", in.ID)
			if err := s.cfg.Runtime.Delete(ctx, in.ID); err != nil {
				errs = append(errs, err)
			}
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
	var wg sync.WaitGroup
	errc := make(chan error, len(list))
	for _, x := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- s.destroy(ctx, x.ID)
		}()
	}
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if c, ok := s.cfg.Runtime.(runtime.Closer); ok && len(errs) == 0 {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Reap destroys sessions past their expiry, those whose sandbox died, and
// idle ones: not reached through the API for the tier's IdleTimeout,
// running no command and holding no terminal.
// Run it periodically.
func (s *Service) Reap(ctx context.Context) {
	list, err := s.cfg.Store.ListSessions(ctx, "")
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
	for _, x := range list {
		if x.Status != api.StatusRunning {
			continue
		}
		why := ""
		if now.After(x.ExpiresAt) {
			why = "expired"
		} else if s.dead(ctx, x.ID) {
			why = "died"
		} else if s.idle(ctx, x, s.tier(accounts[x.AccountID]).IdleTimeout, now) {
			why = "idle"
		}
		if why == "" {
			continue
		}
		s.log.Info("reaping session", "session_id", x.ID, "reason", why)
		// Teardown runs to the end even when the server starts shutting
		// down meanwhile: a half-deleted sandbox is worse than a late stop.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		if err := s.destroy(dctx, x.ID); err != nil {
			s.log.Error("reap", "session_id", x.ID, "err", err)
		}
		cancel()
	}
}

// dead tells whether the sandbox of a running session has stopped (its
// agent, the init, died: say the OOM killer took it), so its resources can
// be released. The runtime is asked only when the agent does not answer.
func (s *Service) dead(ctx context.Context, id string) bool {
	s.mu.Lock()
	c := s.live[id]
	s.mu.Unlock()
	if c == nil {
		return false
	}
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err := c.Health(hctx)
	cancel()
	if err == nil {
		return false
	}
	in, err := s.cfg.Runtime.State(ctx, id)
	return errors.Is(err, errdefs.ErrNotFound) || err == nil && in.State != runtime.Running
}

// idle tells whether session x went unused for timeout and runs nothing:
// no command and no terminal.
func (s *Service) idle(ctx context.Context, x store.Session, timeout time.Duration, now time.Time) bool {
	if timeout <= 0 {
		return false
	}
	s.mu.Lock()
	c, last := s.live[x.ID], s.used[x.ID]
	s.mu.Unlock()
	if c == nil || now.Sub(last) < timeout {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	running, err := c.Commands(cctx, agent.CommandQuery{Status: api.CommandRunning, Limit: 1})
	if err != nil || len(running.Commands) > 0 {
		return false // busy, or unsure: leave it to the TTL
	}
	h, err := c.Health(cctx)
	return err == nil && h.Terminals == 0
}

// RunReaper calls Reap every interval until ctx ends.
func (s *Service) RunReaper(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Reap(ctx)
		}
	}
}
