package server

import (
	"net/http"

	"github.com/chaserhq/chaser/internal/httpjson"
)

// writeError answers with err's class: the one place where error classes
// become status codes.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	logAttrs(r).err = httpjson.Message(err)
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
