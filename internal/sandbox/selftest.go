package sandbox

import (
	"context"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/store"
)

// SelfTest runs the agent's self-test in one of the account's running
// sessions: ErrNotFound for a session of another account,
// ErrFailedPrecondition when it does not run.
func (s *Service) SelfTest(ctx context.Context, acct store.Account, id string) (api.SelfTest, error) {
	c, x, err := s.Agent(ctx, acct, id)
	if err != nil {
		return api.SelfTest{}, err
	}
	st, err := c.SelfTest(ctx)
	if err != nil {
		return api.SelfTest{}, err
	}
	st.SessionID = x.ID
	if st.Network == nil {
		st.Network = &api.SelfTestNetwork{}
	}
	st.Network.Mode = networkAPI(x.Network).Mode
	// The server knows which runtime runs the session; the agent only
	// reads what its environment says.
	if rt, err := s.runtimeOf(ctx, x.ID); err == nil {
		st.Runtime, st.Platform = rt.Name(), platform(rt)
	} else if st.Runtime == "" {
		st.Runtime = x.Runtime
	}
	// A limit the sandbox does not show is still enforced on the host: the
	// cgroup v2 view of gVisor shows none (runsc's own cgroups hold them).
	// Report those the server set.
	r := x.Resources
	if st.Limits.CPUs == 0 && r.MilliCPUs > 0 {
		st.Limits.CPUs = float64(r.MilliCPUs) / 1000
	}
	if st.Limits.MemoryBytes == 0 && r.MemoryMB > 0 {
		st.Limits.MemoryBytes = r.MemoryMB << 20
	}
	if st.Limits.Pids == 0 && r.Pids > 0 {
		st.Limits.Pids = r.Pids
	}
	return st, nil
}
