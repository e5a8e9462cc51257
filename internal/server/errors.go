package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// writeError answers with err's class: the one place where error classes
// become status codes. Every 5xx is logged with its request id and cause.
// A 500 is the server's own fault: its cause (which may name host paths,
// runtime output or cgroups) stays in the log, and the client gets a
// generic message carrying the request id.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	logAttrs(r).err = httpjson.Message(err)
	if _, status := errdefs.Code(err); status >= 500 {
		el := errorLogOf(r)
		el.log.Error("request failed", "request_id", el.rid, "method", r.Method, "path", r.URL.Path,
			"status", status, "session_id", r.PathValue("id"), "err", err)
		if status == http.StatusInternalServerError {
			err = errdefs.New(errdefs.ErrInternal, fmt.Sprintf("internal server error (request %s); the server log has the cause", el.rid))
		}
	}
	httpjson.WriteError(w, err)
}

// errorLog is what writeError needs to log a 500: the server's logger and
// the request id. ServeHTTP puts it in every request's context.
type errorLog struct {
	log *slog.Logger
	rid string
}

type errorLogKey struct{}

// withErrorLog returns r carrying log and rid for writeError.
func withErrorLog(r *http.Request, log *slog.Logger, rid string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), errorLogKey{}, errorLog{log: log, rid: rid}))
}

func errorLogOf(r *http.Request) errorLog {
	if el, ok := r.Context().Value(errorLogKey{}).(errorLog); ok {
		return el
	}
	return errorLog{log: slog.Default(), rid: "unknown"}
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }

// decode reads a JSON body into v, answering the error itself. It reports
// whether the handler may go on. The body must arrive within the server's
// body timeout: a client that dribbles it holds a connection no longer.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	d := logAttrs(r).bodyTimeout
	if d <= 0 {
		return decodeBody(w, r, v)
	}
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(d)
	if rc.SetReadDeadline(deadline) != nil {
		return decodeBody(w, r, v)
	}
	err := httpjson.Decode(w, r, v)
	if err != nil && !time.Now().Before(deadline) {
		// The deadline stays: the server would otherwise wait for the
		// rest of the body before answering. The connection closes.
		w.Header().Set("Connection", "close")
		writeError(w, r, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("the request body did not arrive within %s (the server's --body-timeout)", d)))
		return false
	}
	// Cleared before the handler goes on: on a kept-alive connection (and
	// for the read that watches for a client gone while a stream is
	// answered) it would outlive the body.
	_ = rc.SetReadDeadline(time.Time{})
	if err != nil {
		writeError(w, r, err)
		return false
	}
	return true
}

// decodeBody is decode without a deadline.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := httpjson.Decode(w, r, v); err != nil {
		writeError(w, r, err)
		return false
	}
	return true
}
