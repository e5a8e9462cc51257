package sandbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/image"
	"github.com/chaserhq/chaser/internal/network"
	"github.com/chaserhq/chaser/internal/runtime"
	"github.com/chaserhq/chaser/internal/store"
)

// The warm pool keeps sandboxes made ahead of their sessions, so that a
// create binds one (an init call to its agent) instead of making one.
//
// A pooled sandbox is made exactly as the sandbox of a fresh session would
// be — same image, runtime, network mode, cgroup limits and disk size —
// except for its identity: its runtime id is "p-…", never a session's; its
// hostname is the neutral PoolHostname (changing a UTS namespace's
// hostname needs CAP_SYS_ADMIN, which commands must not have); and
// CHASER_SESSION_ID and CHASER_WORKSPACE_ID come through the agent's init
// call at the claim. The pool keys by resources rather than changing
// limits at the claim: the disk is sized when it is made, and a runtime
// that cannot update limits (runsc) works the same.
//
// Nothing ever runs in a pooled sandbox before its claim, so its
// filesystem is as fresh as a new one's. Pooled sandboxes belong to no
// account: they count toward no tier's limit until claimed. They are not
// recorded in the store: a crash leaves them without a session, and
// Recover releases them like any sandbox without one.

// PoolHostname is the hostname of every sandbox served from the warm
// pool (a fresh sandbox's is its session id).
const PoolHostname = "sandbox"

// PoolSpec asks for Size warm sandboxes of an image, runtime and network
// mode. The service keeps Size of them per tier whose sessions would run
// on that runtime, each with the tier's default resources and network
// mode ("" is the tier's: its egress, else Config.Egress): a create that
// asks for other resources, another image, another runtime or another
// network (mode, or allow and deny lists of its own) is not served from
// the pool.
type PoolSpec struct {
	Image   string // a reference; "" is Config.DefaultImage
	Runtime string // "" is Config.DefaultRuntime
	Network string // "none", "internet" or "" (the tier's)
	Size    int
}

// poolKey is what a pooled sandbox must match to be claimed.
type poolKey struct {
	Image   string // as configured; pooled sandboxes carry the resolved ref
	Runtime string
	Res     Resources
	Network string // none or internet
	// Allow is the tier's allow list (its text) that the egress of an
	// internet sandbox was set up with; "" for none.
	Allow string
}

// poolNetwork is the pool key's network fields for sessions of tier t in
// network mode mode.
func poolNetwork(t TierLimits, mode string) (string, string) {
	if mode != api.NetworkInternet {
		return api.NetworkNone, ""
	}
	return mode, fmt.Sprint(t.Allow)
}

// pooled is a sandbox of the warm pool.
type pooled struct {
	id     string
	ref    string // the image's resolved reference (image.Image.Ref)
	rt     runtime.Runtime
	client *agent.Client
}

// poolSlot holds the warm sandboxes of one key.
type poolSlot struct {
	key  poolKey
	size int
	// ref is the image's resolved reference at the last fill.
	ref string
	// pol is the egress policy of an internet slot's sandboxes (nil:
	// loopback only).
	pol     *network.Policy
	idle    []*pooled
	filling bool
}

// warmPool is the service's pool; its fields are guarded by mu.
type warmPool struct {
	mu     sync.Mutex
	slots  []*poolSlot
	closed bool
	kick   chan struct{} // wakes the refiller after a claim
	// claiming counts the sandboxes taken from idle and not yet bound
	// (or released): host admission counts them (admission.go).
	claiming int
}

// initPool lays out the pool's slots from Config.Pools and the tiers.
func (s *Service) initPool() {
	p := &s.pool
	p.kick = make(chan struct{}, 1)
	tiers := make([]string, 0, len(s.cfg.Tiers))
	for name := range s.cfg.Tiers {
		tiers = append(tiers, name)
	}
	slices.Sort(tiers)
	for _, spec := range s.cfg.Pools {
		if spec.Size <= 0 {
			continue
		}
		if spec.Image == "" {
			spec.Image = s.cfg.DefaultImage
		}
		rtName := s.runtimeName(spec.Runtime)
		rt, ok := s.cfg.Runtimes[rtName]
		if !ok {
			s.log.Warn("pool: runtime not enabled; entry ignored", "image", spec.Image, "runtime", rtName)
			continue
		}
		for _, name := range tiers {
			t := s.cfg.Tiers[name]
			if s.runtimeName(t.Runtime) != rtName {
				continue
			}
			res, err := t.Resolve(name, Resources{})
			if err != nil {
				continue
			}
			mode := spec.Network
			if mode == "" {
				mode = s.egress(t)
			}
			if mode == api.NetworkInternet {
				_, loopback := rt.(runtime.LoopbackOnly)
				if s.cfg.Network == nil || loopback {
					s.log.Warn("pool: network mode internet not available here; entry ignored for the tier", "image", spec.Image, "runtime", rtName, "tier", name)
					continue
				}
			}
			key := poolKey{Image: spec.Image, Runtime: rtName, Res: res}
			key.Network, key.Allow = poolNetwork(t, mode)
			if i := slices.IndexFunc(p.slots, func(sl *poolSlot) bool { return sl.key == key }); i >= 0 {
				p.slots[i].size = max(p.slots[i].size, spec.Size)
				continue
			}
			sl := &poolSlot{key: key, size: spec.Size}
			if mode == api.NetworkInternet {
				pol := policy(t, store.Network{})
				sl.pol = &pol
			}
			p.slots = append(p.slots, sl)
		}
	}
}

// PoolSize returns how many warm sandboxes wait to be claimed.
func (s *Service) PoolSize() float64 {
	p := &s.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, sl := range p.slots {
		n += len(sl.idle)
	}
	return float64(n)
}

// claim binds a warm sandbox of img, rt, sess.Resources and sess.Network
// (under tier t's policy) to session sess: its agent takes the session's identity (an init call, which an
// agent answers once), the service records it live, and sess becomes a
// running session on it (SandboxID set). It returns false when the pool
// has no such sandbox or the claim failed; the caller then makes a fresh
// one. A sandbox whose claim failed is released.
func (s *Service) claim(ctx context.Context, rt runtime.Runtime, img *image.Image, sess *store.Session, t TierLimits) bool {
	p := &s.pool
	// A session with allow or deny lists of its own needs a network set
	// up for them: never a pooled one.
	own := len(sess.Network.Allow) > 0 || len(sess.Network.Deny) > 0
	mode, allow := poolNetwork(t, sess.Network.Mode)
	p.mu.Lock()
	var sb *pooled
	served := false // a slot is meant for this image, runtime, resources and network
	for _, sl := range p.slots {
		if own || sl.key.Runtime != rt.Name() || sl.key.Res != sess.Resources || sl.key.Network != mode || sl.key.Allow != allow ||
			(sl.ref != img.Ref && sl.key.Image != img.Ref) {
			continue
		}
		served = true
		// A tag pulled again since the fill resolves to another
		// reference: those sandboxes run the old image and wait.
		if i := slices.IndexFunc(sl.idle, func(x *pooled) bool { return x.ref == img.Ref }); i >= 0 {
			sb = sl.idle[i]
			sl.idle = slices.Delete(sl.idle, i, i+1)
			p.claiming++
			break
		}
	}
	p.mu.Unlock()
	m := s.cfg.Metrics
	if sb == nil {
		if len(p.slots) > 0 {
			reason := "unpooled" // no pool for this image, runtime, resources and network
			if served {
				reason = "empty"
			}
			m.PoolMisses.WithLabelValues(reason).Inc()
		}
		return false
	}
	defer func() {
		p.mu.Lock()
		p.claiming--
		p.mu.Unlock()
	}()
	// The refill starts once the claim and the session's first command
	// are likely done: making a sandbox takes tens of milliseconds of
	// CPU (runc), which on a small host would be taken from them.
	time.AfterFunc(refillDelay, s.refill)
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := sb.client.Init(ictx, agent.InitRequest{SessionID: sess.ID, Env: map[string]string{"CHASER_WORKSPACE_ID": ""}})
	cancel()
	if err != nil {
		m.PoolMisses.WithLabelValues("claim_failed").Inc()
		s.log.Warn("pool: claim failed; making a fresh sandbox", "sandbox", sb.id, "session_id", sess.ID, "err", err)
		s.discard(ctx, sb)
		return false
	}
	m.PoolHits.Inc()
	sess.SandboxID, sess.Status = sb.id, api.StatusRunning
	s.attach(sess.ID, sb.id, sb.client, sb.rt)
	return true
}

// discard releases a pooled sandbox that is no longer wanted.
func (s *Service) discard(ctx context.Context, sb *pooled) {
	sb.client.Close()
	if err := s.deleteSandbox(context.WithoutCancel(ctx), sb.rt, sb.id); err != nil {
		s.log.Error("pool: release sandbox", "sandbox", sb.id, "err", err)
	}
}

// refillDelay is how long after a claim the refiller wakes.
const refillDelay = 100 * time.Millisecond

// refill wakes the refiller.
func (s *Service) refill() {
	select {
	case s.pool.kick <- struct{}{}:
	default:
	}
}

// RunPool keeps the warm pool full until ctx ends. It makes one sandbox
// at a time — the refill never competes with creates by more than one
// sandbox, and bounds what the pool takes from the host by the sizes
// configured — and backs off after failures. When ctx ends it returns
// after the sandbox it is making, if any, joined the pool; Shutdown
// drains the pool.
func (s *Service) RunPool(ctx context.Context) {
	p := &s.pool
	backoff := time.Second
	for {
		sl, refused := s.nextAdmitted()
		if sl == nil {
			var again <-chan time.Time
			if refused { // the host has no room: look again later
				again = time.After(PoolRetry)
			}
			select {
			case <-ctx.Done():
				return
			case <-p.kick:
				continue
			case <-again:
				continue
			}
		}
		err := s.fillSlot(ctx, sl)
		if err == nil {
			backoff = time.Second
			continue
		}
		s.log.Warn("pool: could not make a warm sandbox", "image", sl.key.Image, "runtime", sl.key.Runtime, "retry_in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// PoolRetry is how long the refiller waits when host admission refused
// it before it asks again (a claim or an ended session wakes it sooner).
const PoolRetry = 2 * time.Second

// nextAdmitted returns the next slot to fill, marked filling, when host
// admission lets the pool grow (admission.go); refused tells whether a
// slot lacks sandboxes but the host has no room for them.
func (s *Service) nextAdmitted() (sl *poolSlot, refused bool) {
	s.host.mu.Lock()
	defer s.host.mu.Unlock()
	if a := s.cfg.Host.admitPool(s.load()); !a.OK {
		if !s.poolWants() {
			return nil, false
		}
		s.cfg.Metrics.HostRefusals.WithLabelValues("pool").Inc()
		return nil, true
	}
	return s.nextSlot(), false
}

// poolWants tells whether some slot lacks sandboxes.
func (s *Service) poolWants() bool {
	p := &s.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.closed && slices.ContainsFunc(p.slots, func(sl *poolSlot) bool { return !sl.filling && len(sl.idle) < sl.size })
}

// yieldPool releases up to n idle pooled sandboxes, from the slots that
// hold the most, so that users' creates get the host's room.
func (s *Service) yieldPool(n int) {
	p := &s.pool
	var out []*pooled
	p.mu.Lock()
	for range n {
		var big *poolSlot
		for _, sl := range p.slots {
			if len(sl.idle) > 0 && (big == nil || len(sl.idle) > len(big.idle)) {
				big = sl
			}
		}
		if big == nil {
			break
		}
		out = append(out, big.idle[0])
		big.idle = slices.Delete(big.idle, 0, 1)
	}
	p.mu.Unlock()
	for _, sb := range out {
		s.log.Info("pool: yielding a warm sandbox to a create (host admission)", "sandbox", sb.id)
		s.cfg.Metrics.PoolYields.Inc()
		s.discard(context.Background(), sb)
	}
}

// nextSlot returns the slot that lacks the most sandboxes, marked as
// filling, or nil when every slot is full or the pool is closed.
func (s *Service) nextSlot() *poolSlot {
	p := &s.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	var best *poolSlot
	for _, sl := range p.slots {
		if sl.filling || len(sl.idle) >= sl.size {
			continue
		}
		if best == nil || sl.size-len(sl.idle) > best.size-len(best.idle) {
			best = sl
		}
	}
	if best != nil {
		best.filling = true
	}
	return best
}

// fillSlot makes one sandbox for sl. The sandbox outlives ctx: made, it
// joins the pool, unless the pool closed meanwhile.
func (s *Service) fillSlot(ctx context.Context, sl *poolSlot) error {
	p := &s.pool
	defer func() {
		p.mu.Lock()
		sl.filling = false
		p.mu.Unlock()
	}()
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	begin := time.Now()
	img, err := s.cfg.Images.Resolve(bctx, sl.key.Image)
	if err != nil {
		return err
	}
	defer img.Release()
	rt := s.cfg.Runtimes[sl.key.Runtime]
	id := NewID("p")
	c, err := s.boot(bctx, rt, id, PoolHostname, sandboxEnv(rt, img, PoolHostname), sl.key.Res, img, nil, sl.pol, true)
	if err != nil {
		return err
	}
	s.cfg.Metrics.PoolRefill.Observe(time.Since(begin).Seconds())
	sb := &pooled{id: id, ref: img.Ref, rt: rt, client: c}
	s.host.mu.Lock()
	keep := s.cfg.Host.keepFilled(s.load())
	p.mu.Lock()
	closed := p.closed
	if !closed && keep {
		sl.idle = append(sl.idle, sb)
		sl.ref = img.Ref
	}
	p.mu.Unlock()
	s.host.mu.Unlock()
	if closed || !keep {
		if !keep {
			s.cfg.Metrics.PoolYields.Inc()
		}
		s.discard(bctx, sb)
	}
	return nil
}

// drainPool closes the pool and releases its sandboxes (graceful
// shutdown). Call it after RunPool returned.
func (s *Service) drainPool(ctx context.Context) error {
	p := &s.pool
	p.mu.Lock()
	p.closed = true
	var all []*pooled
	for _, sl := range p.slots {
		all = append(all, sl.idle...)
		sl.idle = nil
	}
	p.mu.Unlock()
	var mu sync.Mutex
	var errs []error
	each(all, func(sb *pooled) {
		sb.client.Close()
		if err := s.deleteSandbox(ctx, sb.rt, sb.id); err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("pool: %w", err))
			mu.Unlock()
		}
	})
	return errors.Join(errs...)
}

// sandboxInUse tells whether sandbox id runs for a session or waits in
// the pool.
func (s *Service) sandboxInUse(id string) bool {
	s.mu.Lock()
	for _, h := range s.live {
		if h.sandbox == id {
			s.mu.Unlock()
			return true
		}
	}
	s.mu.Unlock()
	p := &s.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, sl := range p.slots {
		for _, x := range sl.idle {
			if x.id == id {
				return true
			}
		}
	}
	return false
}

// checkPool asks every waiting sandbox's agent for its health and
// discards those that do not answer, so that a dead one is replaced
// rather than left for a claim to fail on.
func (s *Service) checkPool(ctx context.Context) {
	p := &s.pool
	p.mu.Lock()
	var all []*pooled
	for _, sl := range p.slots {
		all = append(all, sl.idle...)
	}
	p.mu.Unlock()
	each(all, func(sb *pooled) {
		hctx, cancel := context.WithTimeout(ctx, HealthTimeout)
		_, err := sb.client.Health(hctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		found := false
		for _, sl := range p.slots {
			if i := slices.Index(sl.idle, sb); i >= 0 {
				sl.idle = slices.Delete(sl.idle, i, i+1)
				found = true
			}
		}
		p.mu.Unlock()
		if found { // not claimed meanwhile
			s.log.Warn("pool: warm sandbox does not answer; replacing it", "sandbox", sb.id, "err", err)
			s.discard(ctx, sb)
			s.refill()
		}
	})
}
