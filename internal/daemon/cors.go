package daemon

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// validateOrigins checks --cors-origin values: "*", or an origin as a
// browser sends it, scheme://host[:port] with scheme http or https and
// nothing after the host.
func validateOrigins(list []string) error {
	for _, o := range list {
		if o == "*" {
			continue
		}
		u, err := url.Parse(strings.TrimSuffix(o, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(u.Host, ":") {
			return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("--cors-origin %q: want an origin such as https://app.example.com or http://localhost:3000 (scheme and host, no path), or *", o))
		}
	}
	return nil
}
