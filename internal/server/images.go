package server

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
	"github.com/chaserhq/chaser/internal/image"
	"github.com/chaserhq/chaser/internal/paging"
	"github.com/chaserhq/chaser/internal/store"
)

// The image cache is server-wide: every account lists the same images and
// may pull (a create pulls anyway); removing is for admins, since it takes
// an image away from every account.

func (s *Server) imageRoutes() {
	s.handle("GET /v1/images", s.listImages)
	s.handle("POST /v1/images", s.pullImage)
	s.handle("GET /v1/images/{ref...}", s.getImage)
	s.handle("DELETE /v1/images/{ref...}", s.deleteImage)
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request, acct store.Account) {
	q, err := paging.Parse(r.URL.Query(), "images")
	if err != nil {
		writeError(w, r, err)
		return
	}
	list, next := s.sandboxes.ListImages(q)
	writeJSON(w, http.StatusOK, api.ImageList{Images: list, NextToken: next})
}

func (s *Server) getImage(w http.ResponseWriter, r *http.Request, acct store.Account) {
	img, err := s.sandboxes.Images().Get(r.PathValue("ref"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, img)
}

func (s *Server) deleteImage(w http.ResponseWriter, r *http.Request, acct store.Account) {
	if err := s.sandboxes.RemoveImage(r.Context(), acct, r.PathValue("ref")); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// pullImage pulls an image into the cache. With "stream" it answers NDJSON
// api.PullEvent lines: progress while the pull runs, then done or error.
func (s *Server) pullImage(w http.ResponseWriter, r *http.Request, acct store.Account) {
	var req api.PullImageRequest
	if !decode(w, r, &req) {
		return
	}
	if strings.TrimSpace(req.Ref) == "" {
		writeError(w, r, errdefs.New(errdefs.ErrInvalidArgument, `"ref" is required`))
		return
	}
	opts := image.PullOptions{IfMissing: req.IfMissing}
	if !req.Stream {
		img, err := s.sandboxes.Images().Pull(r.Context(), req.Ref, opts)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, img)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	opts.Progress = func(ev api.PullEvent) {
		_ = enc.Encode(ev)
		_ = rc.Flush()
	}
	img, err := s.sandboxes.Images().Pull(r.Context(), req.Ref, opts)
	if err != nil {
		code, _ := errdefs.Code(err)
		_ = enc.Encode(api.PullEvent{Type: "error", Error: &api.ErrorDetail{Code: code, Message: httpjson.Message(err)}})
		return
	}
	_ = enc.Encode(api.PullEvent{Type: "done", Image: &img})
}
