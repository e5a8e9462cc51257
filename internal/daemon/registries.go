package daemon

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// splitList splits a comma-separated environment value.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// union returns the items of a, then those of b not in a.
func union(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// validateRegistries checks --insecure-registry values: a registry host as
// written in image references, HOST or HOST:PORT, without a scheme or path.
func validateRegistries(list []string) error {
	for _, h := range list {
		u, err := url.Parse("//" + h)
		if err != nil || u.Host != h || h == "" || strings.ContainsAny(h, "/ ") {
			return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("--insecure-registry %q: want HOST:PORT as written in image references (no scheme, no path)", h))
		}
	}
	return nil
}
