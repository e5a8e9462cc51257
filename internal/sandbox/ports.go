package sandbox

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/store"
)

// portTable remembers which ports of running sessions their owners made
// public: a cache of the store's records (which go with their session), so
// anonymous forward requests cost no query. Recover fills it again after a
// restart. The zero value is ready to use.
type portTable struct {
	mu     sync.Mutex
	public map[string]map[int]bool // session id → public ports
}

func (t *portTable) set(id string, port int, public bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.public == nil {
		t.public = make(map[string]map[int]bool)
	}
	if !public {
		delete(t.public[id], port)
		if len(t.public[id]) == 0 {
			delete(t.public, id)
		}
		return
	}
	if t.public[id] == nil {
		t.public[id] = make(map[int]bool)
	}
	t.public[id][port] = true
}

func (t *portTable) isPublic(id string, port int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.public[id][port]
}

func (t *portTable) list(id string) []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]int, 0, len(t.public[id]))
	for p := range t.public[id] {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

// load fills the table with the public ports of sessions that run.
func (t *portTable) load(ports map[string][]int, running func(id string) bool) {
	for id, list := range ports {
		if running(id) {
			for _, p := range list {
				t.set(id, p, true)
			}
		}
	}
}

// forget drops a session's ports; destroy calls it.
func (t *portTable) forget(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.public, id)
}

// SetPortPublic makes a port of one of the account's running sessions
// public (reachable through its forward URLs without credentials) or
// private again. Errors: ErrNotFound for a session of another account,
// ErrFailedPrecondition when it does not run.
func (s *Service) SetPortPublic(ctx context.Context, acct store.Account, id string, port int, public bool) (api.Port, error) {
	if _, _, err := s.Agent(ctx, acct, id); err != nil {
		return api.Port{}, err
	}
	if err := s.cfg.Store.SetPortPublic(ctx, id, port, public); err != nil {
		return api.Port{}, err
	}
	s.ports.set(id, port, public)
	s.log.Info("port visibility changed", "session_id", id, "port", port, "public", public)
	return api.Port{Port: port, Public: public}, nil
}

// Port returns the settings of a port of one of the account's sessions.
func (s *Service) Port(ctx context.Context, acct store.Account, id string, port int) (api.Port, error) {
	if _, err := s.session(ctx, acct, id); err != nil {
		return api.Port{}, err
	}
	return api.Port{Port: port, Public: s.ports.isPublic(id, port)}, nil
}

// Ports lists the ports of one of the account's sessions: those something
// listens on inside a running sandbox (the agent reads the kernel's socket
// tables) and the public ones, sorted.
func (s *Service) Ports(ctx context.Context, acct store.Account, id string) ([]api.Port, error) {
	if _, err := s.session(ctx, acct, id); err != nil {
		return nil, err
	}
	byPort := map[int]api.Port{}
	for _, p := range s.ports.list(id) {
		byPort[p] = api.Port{Port: p, Public: true}
	}
	if c, _, err := s.Agent(ctx, acct, id); err == nil {
		listening, err := c.ListeningPorts(ctx)
		if err != nil {
			return nil, fmt.Errorf("session %s: list listening ports: %w", id, err)
		}
		for _, l := range listening {
			p := byPort[l.Port]
			p.Port, p.Listening = l.Port, true
			byPort[l.Port] = p
		}
	}
	out := make([]api.Port, 0, len(byPort))
	for _, p := range byPort {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b api.Port) int { return a.Port - b.Port })
	return out, nil
}

// PortPublic reports whether the owner of session id made port public. It
// needs no account: it is how anonymous forward requests are let in.
func (s *Service) PortPublic(id string, port int) bool { return s.ports.isPublic(id, port) }

// DialPort connects to 127.0.0.1:port inside one of the account's running
// sessions. Errors: ErrNotFound for a session of another account,
// ErrFailedPrecondition when it does not run, ErrUnavailable when nothing
// listens on the port.
func (s *Service) DialPort(ctx context.Context, acct store.Account, id string, port int) (net.Conn, error) {
	c, _, err := s.Agent(ctx, acct, id)
	if err != nil {
		return nil, err
	}
	return c.DialPort(ctx, port)
}

// DialPortTrusted connects to a port of a running session without an
// account check. Only callers that already checked access (an owner's
// credential, a signed cookie, or a public port) may use it. A new
// connection counts as use, so a session reached only through its
// forwards is not reaped as idle.
func (s *Service) DialPortTrusted(ctx context.Context, id string, port int) (net.Conn, error) {
	s.mu.Lock()
	h := s.live[id]
	if h != nil {
		h.used = time.Now()
	}
	s.mu.Unlock()
	if h == nil {
		return nil, errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("session %s not found or not running", id))
	}
	return h.client.DialPort(ctx, port)
}

// IsRunning reports whether session id has a running sandbox.
func (s *Service) IsRunning(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[id] != nil
}
