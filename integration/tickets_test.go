package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chaserhq/chaser/api"
)

// ticket asks for a ticket of purpose (and port) for session id.
func (s *Server) ticket(t *testing.T, key, id, purpose string, port int) api.Ticket {
	t.Helper()
	body, _ := json.Marshal(api.CreateTicketRequest{Purpose: purpose, Port: port})
	status, b := s.do(t, key, "POST", "/v1/sessions/"+id+"/tickets", string(body))
	if status != http.StatusCreated {
		t.Fatalf("ticket %s %d: %d %s", purpose, port, status, b)
	}
	var tk api.Ticket
	decodeJSON(t, b, &tk)
	if !strings.HasPrefix(tk.Ticket, "tk_") || tk.SessionID != id || tk.Purpose != purpose || tk.Port != port {
		t.Fatalf("ticket answer %s", b)
	}
	if d := time.Until(tk.ExpiresAt); d <= 0 || d > 2*time.Minute {
		t.Fatalf("ticket expires in %v, want about a minute", d)
	}
	return tk
}

// wsStatus dials the PTY WebSocket of id with query q and no key; it
// returns the status of a refused upgrade, or 101.
func (s *Server) wsStatus(t *testing.T, id string, q url.Values) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, s.wsURL(id, q), nil)
	if err == nil {
		c.CloseNow()
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	return resp.StatusCode
}

// TestTickets covers POST /v1/sessions/{id}/tickets: a ticket opens the
// PTY WebSocket or a forwarded port once, for the session, purpose and port
// it was issued for, and nothing else; bad requests are 400, another
// account's session 404.
func TestTickets(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)

	t.Run("pty once", func(t *testing.T) {
		tk := s.ticket(t, key, id, api.TicketPTY, 0)
		w := s.dialWS(t, "", id, url.Values{"ticket": {tk.Ticket}})
		w.keys("echo $((6*7))tick\n")
		w.untilOutput("42tick")
		w.c.Close(websocket.StatusNormalClosure, "")
		if got := s.wsStatus(t, id, url.Values{"ticket": {tk.Ticket}}); got != http.StatusUnauthorized {
			t.Errorf("a spent ticket: %d, want 401", got)
		}
	})
	t.Run("bound to its session and purpose", func(t *testing.T) {
		other := s.sandbox(t, key)
		tk := s.ticket(t, key, id, api.TicketPTY, 0)
		if got := s.wsStatus(t, other, url.Values{"ticket": {tk.Ticket}}); got != http.StatusUnauthorized {
			t.Errorf("a ticket of another session: %d, want 401", got)
		}
		fw := s.ticket(t, key, id, api.TicketForward, appPort)
		if got := s.wsStatus(t, id, url.Values{"ticket": {fw.Ticket}}); got != http.StatusUnauthorized {
			t.Errorf("a forward ticket on the PTY: %d, want 401", got)
		}
		if got := s.wsStatus(t, id, url.Values{"ticket": {"tk_forged"}}); got != http.StatusUnauthorized {
			t.Errorf("a made-up ticket: %d, want 401", got)
		}
	})
	t.Run("forward", func(t *testing.T) {
		startInSandbox(t, s, key, id, "fwdapp.py", appPort)
		base := fmt.Sprintf("/s/%s/forward/%d", id, appPort)
		// The app's port is listed as listening (the agent reads the
		// sandbox's socket tables), private.
		st, b := s.do(t, key, "GET", "/v1/sessions/"+id+"/ports", "")
		var l api.PortList
		decodeJSON(t, b, &l)
		if st != 200 || !slices.Contains(l.Ports, api.Port{Port: appPort, Listening: true, Path: base + "/"}) {
			t.Errorf("ports: %d %s, want %d listening", st, b, appPort)
		}
		other := s.ticket(t, key, id, api.TicketForward, appPort+1)
		resp, _ := fwd(t, s, "GET", "", base+"/hello?ticket="+other.Ticket, "", nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("a ticket of another port: %d, want 401", resp.StatusCode)
		}
		tk := s.ticket(t, key, id, api.TicketForward, appPort)
		resp, _ = fwd(t, s, "GET", "", base+"/hello?x=1&ticket="+tk.Ticket, "", nil)
		if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != base+"/hello?x=1" {
			t.Fatalf("first visit: %d Location %q, want 307 to the URL without the ticket", resp.StatusCode, resp.Header.Get("Location"))
		}
		var grant *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "chaser_forward" {
				grant = c
			}
		}
		if grant == nil || !grant.HttpOnly || strings.Contains(grant.Value, key) {
			t.Fatalf("first visit set no HttpOnly grant cookie: %v", resp.Cookies())
		}
		resp, body := fwd(t, s, "GET", "", base+"/hello?x=1", "", nil, "Cookie", grant.Name+"="+grant.Value)
		if resp.StatusCode != 200 || body != "hello" {
			t.Errorf("with the grant: %d %q", resp.StatusCode, body)
		}
		resp, _ = fwd(t, s, "GET", "", base+"/hello?ticket="+tk.Ticket, "", nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("a spent forward ticket: %d, want 401", resp.StatusCode)
		}
		// The app cannot widen a Service Worker's scope to the whole origin.
		resp, _ = fwd(t, s, "GET", "", base+"/sw.js", key, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Service-Worker-Allowed") != "" {
			t.Errorf("sw.js: %d, Service-Worker-Allowed %q reached the browser", resp.StatusCode, resp.Header.Get("Service-Worker-Allowed"))
		}
	})
	t.Run("refused", func(t *testing.T) {
		stranger := s.account(t, "free")
		for _, c := range []struct {
			key, id, body string
			status        int
			code          string
		}{
			{key, id, `{"purpose":"shell"}`, 400, "invalid_argument"},
			{key, id, `{"purpose":"forward"}`, 400, "invalid_argument"},
			{key, id, `{"purpose":"forward","port":70000}`, 400, "invalid_argument"},
			{key, id, `{"purpose":"pty","port":80}`, 400, "invalid_argument"},
			{key, id, `{"purpose":`, 400, "invalid_argument"},
			{stranger, id, `{"purpose":"pty"}`, 404, "not_found"},
			{key, "s_nosuch", `{"purpose":"pty"}`, 404, "not_found"},
			{"", id, `{"purpose":"pty"}`, 401, "unauthenticated"},
		} {
			status, b := s.do(t, c.key, "POST", "/v1/sessions/"+c.id+"/tickets", c.body)
			expectError(t, status, b, c.status, c.code)
		}
	})
}
