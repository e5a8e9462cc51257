package api

import "time"

// Ticket purposes: what a ticket may open.
const (
	TicketPTY     = "pty"     // one PTY WebSocket of the session
	TicketForward = "forward" // one visit of a forwarded port of the session
)

// CreateTicketRequest is the body of POST /v1/sessions/{id}/tickets.
type CreateTicketRequest struct {
	// Purpose is TicketPTY or TicketForward.
	Purpose string `json:"purpose"`
	// Port is the guest port a forward ticket opens (1–65535); refused
	// for other purposes.
	Port int `json:"port,omitempty"`
}

// Ticket is a short-lived, single-use credential that a browser puts in a
// URL (?ticket=) where it cannot send an Authorization header: the PTY
// WebSocket and the first visit of a forwarded port. It is bound to the
// account that asked for it, one session and one purpose (and port).
type Ticket struct {
	Ticket    string    `json:"ticket"`
	SessionID string    `json:"session_id"`
	Purpose   string    `json:"purpose"`
	Port      int       `json:"port,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}
