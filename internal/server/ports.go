package server

import (
	"net"
	"net/http"
	"strconv"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/store"
)

// decorate fills in the forward URLs of a port as this request reaches us.
func (s *Server) decorate(r *http.Request, id string, p api.Port) api.Port {
	p.Path = "/s/" + id + "/forward/" + strconv.Itoa(p.Port) + "/"
	if s.fwd.domain != "" {
		host := id + "." + s.fwd.domain
		if _, port, err := net.SplitHostPort(r.Host); err == nil {
			host = net.JoinHostPort(host, port)
		}
		p.URL = scheme(r) + "://" + host + "/forward/" + strconv.Itoa(p.Port) + "/"
	}
	return p
}

func (s *Server) listPorts(w http.ResponseWriter, r *http.Request, acct store.Account) {
	id := r.PathValue("id")
	list, err := s.sandboxes.Ports(r.Context(), acct, id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	for i := range list {
		list[i] = s.decorate(r, id, list[i])
	}
	writeJSON(w, http.StatusOK, api.PortList{Ports: list})
}

func (s *Server) getPort(w http.ResponseWriter, r *http.Request, acct store.Account) {
	port, err := agent.ParsePort(r.PathValue("port"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	id := r.PathValue("id")
	p, err := s.sandboxes.Port(r.Context(), acct, id, port)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.decorate(r, id, p))
}

func (s *Server) setPort(w http.ResponseWriter, r *http.Request, acct store.Account) {
	port, err := agent.ParsePort(r.PathValue("port"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	var req api.SetPortRequest
	if !decode(w, r, &req) {
		return
	}
	id := r.PathValue("id")
	p, err := s.sandboxes.SetPortPublic(r.Context(), acct, id, port, req.Public)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.decorate(r, id, p))
}
