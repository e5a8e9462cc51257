// Package errdefs defines the closed set of error classes used across Chaser.
//
// Code wraps one of these sentinels with context ("session s-x: %w"); only the
// edges (HTTP server, client, CLI) translate classes to and from status codes,
// so errors.Is works on both sides of the wire.
package errdefs

import (
	"errors"
	"net/http"
	"time"
)

// The error classes. Wrap them with fmt.Errorf("...: %w", ErrX).
var (
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrUnauthenticated    = errors.New("unauthenticated")
	ErrPermissionDenied   = errors.New("permission denied")
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrTooLarge           = errors.New("too large")
	ErrUnprocessable      = errors.New("unprocessable")
	ErrResourceExhausted  = errors.New("resource exhausted")
	ErrUnavailable        = errors.New("unavailable")
	ErrNotImplemented     = errors.New("not implemented")
	ErrInternal           = errors.New("internal error")
)

// ErrInsufficientStorage is the class of a write that a sandbox's or
// workspace's full disk quota refused (507).
var ErrInsufficientStorage = errors.New("insufficient storage")

type class struct {
	err    error
	code   string
	status int
}

// classes is ordered: the first match wins when an error wraps several.
var classes = []class{
	{ErrInvalidArgument, "invalid_argument", http.StatusBadRequest},
	{ErrUnauthenticated, "unauthenticated", http.StatusUnauthorized},
	{ErrPermissionDenied, "permission_denied", http.StatusForbidden},
	{ErrNotFound, "not_found", http.StatusNotFound},
	{ErrAlreadyExists, "already_exists", http.StatusConflict},
	{ErrFailedPrecondition, "failed_precondition", http.StatusConflict},
	{ErrTooLarge, "too_large", http.StatusRequestEntityTooLarge},
	{ErrUnprocessable, "unprocessable", http.StatusUnprocessableEntity},
	{ErrResourceExhausted, "resource_exhausted", http.StatusTooManyRequests},
	{ErrUnavailable, "unavailable", http.StatusServiceUnavailable},
	{ErrNotImplemented, "not_implemented", http.StatusNotImplemented},
	{ErrInternal, "internal", http.StatusInternalServerError},
	{ErrInsufficientStorage, "insufficient_storage", http.StatusInsufficientStorage},
}

// Code returns the wire code and HTTP status of err's class. Errors of no
// class are internal errors.
func Code(err error) (code string, status int) {
	for _, c := range classes {
		if errors.Is(err, c.err) {
			return c.code, c.status
		}
	}
	return "internal", http.StatusInternalServerError
}

// FromCode returns the class sentinel for a wire code, or ErrInternal.
func FromCode(code string) error {
	for _, c := range classes {
		if c.code == code {
			return c.err
		}
	}
	return ErrInternal
}

// FromStatus returns the class for an HTTP status when no code is known.
func FromStatus(status int) error {
	for _, c := range classes {
		if c.status == status {
			return c.err
		}
	}
	if status >= 500 {
		return ErrUnavailable
	}
	return ErrInternal
}

// Error is an error that carries a class and a message meant for users. The
// message is shown as is; the class decides the status code.
type Error struct {
	Class   error
	Message string
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Class }

// New returns an error of the given class with a user-facing message.
func New(classErr error, msg string) error { return &Error{Class: classErr, Message: msg} }

// retry is an error whose caller may retry after a known wait.
type retry struct {
	error
	after time.Duration
}

func (e *retry) Unwrap() error { return e.error }

// WithRetryAfter returns err carrying a hint that the same call may succeed
// after d (a 429 answers with Retry-After). Class and message are err's.
func WithRetryAfter(err error, d time.Duration) error { return &retry{error: err, after: d} }

// RetryAfter returns the wait hinted by WithRetryAfter anywhere in err's
// chain, or 0.
func RetryAfter(err error) time.Duration {
	var r *retry
	if errors.As(err, &r) {
		return r.after
	}
	return 0
}
