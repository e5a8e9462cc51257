package server

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// TestWriteErrorHidesInternalCause checks that a 500 tells the client only
// the request id, and the log gets the cause; other classes keep their
// message.
func TestWriteErrorHidesInternalCause(t *testing.T) {
	cause := errors.New("remove /sys/fs/cgroup/pids/chaser/s-1: device or resource busy")
	for _, tc := range []struct {
		name    string
		err     error
		status  int
		showMsg bool
	}{
		{"unclassified", fmt.Errorf("delete sandbox s-1: %w", cause), 500, false},
		{"internal class", fmt.Errorf("delete sandbox s-1: %w: %w", cause, errdefs.ErrInternal), 500, false},
		{"not found", errdefs.New(errdefs.ErrNotFound, "session s-1 not found"), 404, true},
		{"unavailable", errdefs.New(errdefs.ErrUnavailable, "registry r:1 unreachable"), 503, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logBuf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logBuf, nil))
			r := withErrorLog(httptest.NewRequest("DELETE", "/v1/sessions/s-1", nil), log, "rid-42")
			rec := httptest.NewRecorder()
			writeError(rec, r, tc.err)
			body := rec.Body.String()
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			if tc.showMsg {
				if !strings.Contains(body, errors.Unwrap(tc.err).Error()) && !strings.Contains(body, tc.err.Error()) {
					t.Errorf("message lost: %s", body)
				}
				return
			}
			if strings.Contains(body, "/sys/fs") || !strings.Contains(body, "rid-42") {
				t.Errorf("500 body = %s; want the request id and no cause", body)
			}
			if l := logBuf.String(); !strings.Contains(l, "rid-42") || !strings.Contains(l, "device or resource busy") || rec.Code != http.StatusInternalServerError {
				t.Errorf("log = %q; want the request id and the cause", l)
			}
		})
	}
}
