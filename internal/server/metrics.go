package server

import (
	"net/http"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/store"
)

// metricsForAdmin serves /metrics on the main listener to the admin only:
// the metrics tell about every account's activity. Without a key a scraper
// uses `chaser serve --metrics-addr`, a listener of its own.
func (s *Server) metricsForAdmin(w http.ResponseWriter, r *http.Request, acct store.Account) {
	if !acct.Admin {
		writeError(w, r, errdefs.New(errdefs.ErrPermissionDenied, "/metrics needs the admin key; scrape without a key on the server's --metrics-addr"))
		return
	}
	s.metrics.Handler().ServeHTTP(w, r)
}
