package server

import (
	"net/http"

	"github.com/coder/websocket"

	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/agent/splice"
	"github.com/chaserhq/chaser/internal/store"
	"github.com/chaserhq/chaser/internal/tunnel"
)

// tunnel serves GET /v1/sessions/{id}/tunnel/{port}: a WebSocket carrying
// one TCP connection to the port inside the sandbox in the tunnel package's
// format (what `chaser forward` uses). The port is dialled
// before the upgrade, so "nothing listening" is a plain 502 answer.
func (s *Server) tunnel(w http.ResponseWriter, r *http.Request, acct store.Account) {
	port, err := agent.ParsePort(r.PathValue("port"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	conn, err := s.sandboxes.DialPort(r.Context(), acct, r.PathValue("id"), port)
	if err != nil {
		writeForwardError(w, r, err)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		conn.Close() // Accept has answered the client
		return
	}
	// The hijacked connection keeps r.Context() alive until we return.
	splice.Conns(tunnel.New(r.Context(), ws), conn)
}
