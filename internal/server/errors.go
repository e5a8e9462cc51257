package server

import (
	"net/http"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// writeError answers with err's class: the one place where error classes
// become status codes. Every 5xx, the server's own fault, is logged with its request id and
// cause (the answer says only what the client may see).
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	if _, status := errdefs.Code(err); status >= 500 {
		if a := logAttrs(r); a.log != nil {
			a.log.Error("request failed", "request_id", a.rid, "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
		}
	}
	httpjson.WriteError(w, err)
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }

// decode reads a JSON body into v, answering the error itself. It reports
// whether the handler may go on.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := httpjson.Decode(w, r, v); err != nil {
		writeError(w, r, err)
		return false
	}
	return true
}
