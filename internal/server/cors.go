package server

import (
	"net"
	"net/http"
	"strings"
)

// corsExposed are the response headers a browser page may read: the
// request id, the offset of command output, file metadata of downloads,
// Retry-After of a 429, and the MCP session header.
var corsExposed = strings.Join([]string{
	"X-Request-Id", "X-Output-Start", "X-Chaser-File-Mode", "X-Chaser-File-Path",
	"Content-Disposition", "Retry-After", "WWW-Authenticate", "Location", "Mcp-Session-Id",
}, ", ")

// corsMethods are the methods the API uses.
const corsMethods = "GET, HEAD, POST, PUT, DELETE"

// corsMaxAge is how long (seconds) a browser may cache a preflight answer.
const corsMaxAge = "600"

// cors lets pages of the listed origins call the API with a Bearer key.
// Nothing is allowed by default. Credentials (cookies) are never allowed:
// the API authenticates with the Authorization header, which a page only
// sends when its own script sets it.
type cors struct {
	origins map[string]bool // exact "scheme://host[:port]" values
	any     bool            // "*": every origin
}

// WithCORS lets browser pages of origins ("scheme://host[:port]", or "*"
// for any) use the API. The daemon validates the values.
func (s *Server) WithCORS(origins []string) *Server {
	s.cors = cors{origins: map[string]bool{}}
	for _, o := range origins {
		if o == "*" {
			s.cors.any = true
		}
		s.cors.origins[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	return s
}

// serveCORS adds the CORS headers to an API request from an allowed origin
// and answers its preflight itself; it reports whether it answered. A
// request from any other origin, and every forwarded URL, gets no CORS
// header from Chaser: on forwarded URLs the app in the sandbox decides,
// and its headers pass through untouched.
func (s *Server) serveCORS(w http.ResponseWriter, r *http.Request) bool {
	c := s.cors
	if len(c.origins) == 0 || s.isForward(r) {
		return false
	}
	h := w.Header()
	if !c.any {
		h.Add("Vary", "Origin")
	}
	origin := r.Header.Get("Origin")
	if origin == "" || !(c.any || c.origins[strings.ToLower(origin)]) {
		return false
	}
	if c.any {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		h.Set("Access-Control-Expose-Headers", corsExposed)
		return false
	}
	// A preflight: the page asks whether it may send its real request.
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	h.Set("Access-Control-Allow-Methods", corsMethods)
	if rh := r.Header.Get("Access-Control-Request-Headers"); rh != "" {
		// The origin is trusted: it may send any header (Authorization,
		// Content-Type, Mcp-Session-Id, …); the key still decides access.
		h.Set("Access-Control-Allow-Headers", rh)
	}
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
	return true
}

// isForward reports whether r is for a forwarded URL: path style
// /s/{id}/forward/…, or any request on a host under the forwarding domain
// (host-style forwards of sessions and ports).
func (s *Server) isForward(r *http.Request) bool {
	p := r.URL.Path
	if rest, ok := strings.CutPrefix(p, "/s/"); ok {
		if _, after, ok := strings.Cut(rest, "/"); ok && (after == "forward" || strings.HasPrefix(after, "forward/")) {
			return true
		}
	}
	if p == "/forward" || strings.HasPrefix(p, "/forward/") {
		return true
	}
	if d := s.fwd.domain; d != "" {
		host := strings.ToLower(r.Host)
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		return strings.HasSuffix(host, "."+d)
	}
	return false
}
