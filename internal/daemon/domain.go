package daemon

import (
	"fmt"
	"strings"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// validateDomain checks --domain: a DNS name (without a scheme, port or
// wildcard) under which {session}.{domain} hosts are forwarded.
func validateDomain(d string) error {
	if d == "" {
		return nil
	}
	bad := func(why string) error {
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("--domain %q: %s; give a DNS name such as chaser.example.com or localhost", d, why))
	}
	if strings.ContainsAny(d, ":/*") {
		return bad("no scheme, port, path or wildcard")
	}
	for _, label := range strings.Split(strings.Trim(d, "."), ".") {
		if label == "" || len(label) > 63 {
			return bad("empty or overlong label")
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return bad(fmt.Sprintf("character %q is not allowed", c))
			}
		}
	}
	return nil
}
