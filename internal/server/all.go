package server

import (
	"net/http"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// queryAll reads ?all= of a list: true asks for every account's resources
// (the admin only; the service refuses others with 403).
func queryAll(r *http.Request) (bool, error) {
	switch r.URL.Query().Get("all") {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	}
	return false, errdefs.New(errdefs.ErrInvalidArgument, "all must be true or false")
}
