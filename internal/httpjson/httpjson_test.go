package httpjson

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chaserhq/chaser/internal/errdefs"
)

func TestDecode(t *testing.T) {
	type body struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	cases := []struct {
		in      string
		wantErr error
		wantMsg string
	}{
		{`{"name":"a","count":2}`, nil, ""},
		{``, errdefs.ErrInvalidArgument, "empty"},
		{`{"name":`, errdefs.ErrInvalidArgument, "malformed JSON"},
		{`{"count":"x"}`, errdefs.ErrInvalidArgument, `field "count" must be of type int`},
		{`{"other":1}`, errdefs.ErrInvalidArgument, `unknown field "other"`},
		{`{"name":"a"} {"name":"b"}`, errdefs.ErrInvalidArgument, "trailing data"},
		{`{"name":"` + strings.Repeat("x", MaxBody) + `"}`, errdefs.ErrTooLarge, "larger than"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("POST", "/", strings.NewReader(c.in))
		var v body
		err := Decode(httptest.NewRecorder(), r, &v)
		if c.wantErr == nil {
			if err != nil || v.Name != "a" || v.Count != 2 {
				t.Errorf("Decode(%.40q) = %v, %+v", c.in, err, v)
			}
			continue
		}
		if !errors.Is(err, c.wantErr) || !strings.Contains(err.Error(), c.wantMsg) {
			t.Errorf("Decode(%.40q) = %v, want %v containing %q", c.in, err, c.wantErr, c.wantMsg)
		}
	}
}

// TestErrorRoundTrip checks that a class written by WriteError comes back
// from ReadError, so errors.Is works across the wire.
func TestErrorRoundTrip(t *testing.T) {
	for _, class := range []error{errdefs.ErrNotFound, errdefs.ErrInvalidArgument, errdefs.ErrResourceExhausted,
		errdefs.ErrTooLarge, errdefs.ErrUnauthenticated, errdefs.ErrFailedPrecondition, errdefs.ErrInternal} {
		rec := httptest.NewRecorder()
		WriteError(rec, fmt.Errorf("session s-1: %w", class))
		resp := rec.Result()
		_, status := errdefs.Code(class)
		if resp.StatusCode != status {
			t.Errorf("%v: status %d, want %d", class, resp.StatusCode, status)
		}
		err := ReadError(resp)
		if !errors.Is(err, class) || Message(err) != "session s-1" {
			t.Errorf("%v: round trip gave %v (%q)", class, err, Message(err))
		}
	}
	// A retry hint becomes Retry-After (whole seconds, rounded up) and
	// comes back from it, so it crosses the agent and the server.
	rec := httptest.NewRecorder()
	WriteError(rec, errdefs.WithRetryAfter(errdefs.New(errdefs.ErrResourceExhausted, "busy"), 1500*time.Millisecond))
	if ra := rec.Result().Header.Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q, want 2", ra)
	}
	if err := ReadError(rec.Result()); !errors.Is(err, errdefs.ErrResourceExhausted) || Message(err) != "busy" || errdefs.RetryAfter(err) != 2*time.Second {
		t.Errorf("retry round trip gave %v (%q, %s)", err, Message(err), errdefs.RetryAfter(err))
	}
	// A non-JSON error answer still gets a class from its status.
	rec = httptest.NewRecorder()
	http.Error(rec, "gateway down", http.StatusServiceUnavailable)
	if err := ReadError(rec.Result()); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("plain 503 = %v", err)
	}
}
