// Package httpjson reads and writes the JSON bodies and JSON errors that the
// server and the in-sandbox agent share, and turns error answers back into
// errdefs classes on the client side, so errors.Is works across the wire.
package httpjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
)

// MaxBody is the largest JSON request body accepted.
const MaxBody = 1 << 20

// Write writes v as JSON with the given status.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// WriteError writes err as an api.ErrorBody with the status of its class,
// and Retry-After (whole seconds, rounded up) when err carries
// errdefs.WithRetryAfter. Internal errors keep their message: Chaser is
// self-hosted and its operators and users are the same people; no secrets
// flow through error strings.
func WriteError(w http.ResponseWriter, err error) {
	code, status := errdefs.Code(err)
	if d := errdefs.RetryAfter(err); d > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10))
	}
	Write(w, status, api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: Message(err)}})
}

// Message returns the user-facing text of err: an errdefs.Error's message,
// or the error text without the trailing class name.
func Message(err error) string {
	var e *errdefs.Error
	if errors.As(err, &e) {
		return e.Message
	}
	msg := err.Error()
	code, _ := errdefs.Code(err)
	cls := errdefs.FromCode(code)
	return strings.TrimSuffix(msg, ": "+cls.Error())
}

// Decode reads a JSON body of at most MaxBody bytes into v. Unknown fields,
// wrong types, trailing data and oversized bodies are errors of class
// ErrInvalidArgument or ErrTooLarge with a message that names the problem.
func Decode(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, MaxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &tooBig):
			return errdefs.New(errdefs.ErrTooLarge, fmt.Sprintf("request body is larger than %d bytes", MaxBody))
		case errors.Is(err, io.EOF):
			return errdefs.New(errdefs.ErrInvalidArgument, "request body is empty; send a JSON object")
		case errors.As(err, &typeErr):
			return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("field %q must be of type %s, not %s", typeErr.Field, typeErr.Type, typeErr.Value))
		case errors.As(err, &syntaxErr):
			return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("malformed JSON at byte %d: %v", syntaxErr.Offset, err))
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return errdefs.New(errdefs.ErrInvalidArgument, "unknown field "+strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			return errdefs.New(errdefs.ErrInvalidArgument, "malformed JSON: "+err.Error())
		}
	}
	if dec.More() {
		return errdefs.New(errdefs.ErrInvalidArgument, "malformed JSON: trailing data after the object")
	}
	return nil
}

// ReadError turns an error answer into an error of the right class, which
// keeps the answer's Retry-After in seconds (errdefs.RetryAfter). It reads
// at most 64 KiB of the body.
func ReadError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var err error
	var body api.ErrorBody
	if json.Unmarshal(data, &body) == nil && body.Error.Code != "" {
		err = errdefs.New(errdefs.FromCode(body.Error.Code), body.Error.Message)
	} else {
		msg := strings.TrimSpace(string(data))
		if msg == "" {
			msg = resp.Status
		}
		err = errdefs.New(errdefs.FromStatus(resp.StatusCode), msg)
	}
	if secs, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && secs > 0 && secs <= 3600 {
		err = errdefs.WithRetryAfter(err, time.Duration(secs)*time.Second)
	}
	return err
}
