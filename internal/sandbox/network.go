package sandbox

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/network"
	"github.com/chaserhq/chaser/internal/runtime"
	"github.com/chaserhq/chaser/internal/store"
)

// Networker gives sandboxes of mode internet their network;
// *network.Manager implements it.
type Networker interface {
	Setup(ctx context.Context, id string, pol network.Policy) (network.Attachment, error)
	Release(id string) error
	Recover(keep map[string]network.Policy) error
}

// egress is the mode of a tier's sandboxes that ask for none: the tier's
// (the config file's tiers.X.egress), else the server's (--egress); none
// on a runtime of loopback only (runtime.LoopbackOnly).
func (s *Service) egress(t TierLimits) string {
	if s.loopbackOnly(t) {
		return api.NetworkNone
	}
	if t.Egress != "" {
		return t.Egress
	}
	if s.cfg.Egress != "" {
		return s.cfg.Egress
	}
	return api.NetworkNone
}

// Egress is the network mode account acct's sessions get when they ask
// for none, the only one beside none they may ask for: "internet" or
// "none".
func (s *Service) Egress(acct store.Account) string {
	return s.egress(s.tier(acct))
}

// loopbackOnly tells whether tier t's runtime gives its sandboxes loopback
// only (runtime.LoopbackOnly).
func (s *Service) loopbackOnly(t TierLimits) bool {
	_, ok := s.cfg.Runtimes[s.runtimeName(t.Runtime)].(runtime.LoopbackOnly)
	return ok
}

// resolveNetwork turns a request's network into the session's:
// ErrInvalidArgument for a malformed one, ErrPermissionDenied for
// internet asked explicitly on a tier whose mode is none, and for an
// allow list beyond the tier's; a request that asks nothing gets the
// tier's mode.
func (s *Service) resolveNetwork(tierName string, t TierLimits, n *api.Network) (store.Network, error) {
	if err := checkNetwork(n); err != nil {
		return store.Network{}, err
	}
	mode := s.egress(t)
	if n == nil {
		return store.Network{Mode: mode}, nil
	}
	switch n.Mode {
	case "":
	case api.NetworkInternet:
		if s.loopbackOnly(t) {
			return store.Network{}, errdefs.New(errdefs.ErrPermissionDenied, fmt.Sprintf(
				"network mode internet: the %s tier's sandboxes run on runtime %s, which supports network mode none only", tierName, s.runtimeName(t.Runtime)))
		}
		if mode != api.NetworkInternet {
			return store.Network{}, errdefs.New(errdefs.ErrPermissionDenied, fmt.Sprintf(
				"network mode internet: the %s tier's sandboxes have no egress (its egress is %s)", tierName, mode))
		}
	default:
		mode = n.Mode
	}
	if len(n.Allow)+len(n.Deny) > 0 && mode != api.NetworkInternet {
		return store.Network{}, errdefs.New(errdefs.ErrInvalidArgument, "network allow and deny lists need mode internet")
	}
	allow, _ := network.ParseCIDRs("network allow", n.Allow) // checked above
	if err := network.CheckAllow(tierName, t.Allow, allow); err != nil {
		return store.Network{}, err
	}
	return store.Network{Mode: mode, Allow: n.Allow, Deny: n.Deny}, nil
}

// policy is the network policy of a session of mode internet on tier t.
func policy(t TierLimits, n store.Network) network.Policy {
	allow, _ := network.ParseCIDRs("allow", n.Allow)
	deny, _ := network.ParseCIDRs("deny", n.Deny)
	return network.Policy{Allow: append(append([]netip.Prefix(nil), allow...), t.Allow...), Deny: deny}
}

// networkAPI is a session's network as the API shows it.
func networkAPI(n store.Network) *api.Network {
	if n.Mode == "" {
		n.Mode = api.NetworkNone
	}
	return &api.Network{Mode: n.Mode, Allow: n.Allow, Deny: n.Deny}
}
