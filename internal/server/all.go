package server

import (
	"net/http"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/paging"
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

// listQuery reads what a list of every account's resources takes: ?all=
// and the page (?limit=, ?next_token= of list).
func listQuery(r *http.Request, list string) (bool, paging.Query, error) {
	all, err := queryAll(r)
	if err != nil {
		return false, paging.Query{}, err
	}
	q, err := paging.Parse(r.URL.Query(), list)
	return all, q, err
}
