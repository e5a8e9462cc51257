package agent

import (
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent/fs"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// Headers of a file download from the agent (besides Content-Length,
// Content-Type and Last-Modified).
const (
	HeaderFileMode = "X-Chaser-File-Mode"
	HeaderFilePath = "X-Chaser-File-Path"
)

// fileRoutes adds the file API. Paths are the sandbox's own; the rules
// (validation, atomicity, limits) live in package fs, the server passes
// the operator's size limit as ?max_size=. What uploads and mkdir create
// belongs to the image's user, or to the request's user (?user= of an
// upload, "user" of a mkdir body).
func (a *Agent) fileRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/files", a.listFiles)
	mux.HandleFunc("DELETE /v1/files", a.removeFile)
	mux.HandleFunc("GET /v1/files/stat", a.statFile)
	mux.HandleFunc("GET /v1/files/content", a.readFile)
	mux.HandleFunc("PUT /v1/files/content", a.writeFile)
	mux.HandleFunc("POST /v1/files/mkdir", a.mkdir)
	mux.HandleFunc("POST /v1/files/move", a.moveFile)
}

func queryBool(r *http.Request, name string) bool {
	v := r.URL.Query().Get(name)
	return v == "1" || v == "true"
}

func maxSize(r *http.Request) (int64, error) {
	s := r.URL.Query().Get("max_size")
	if s == "" {
		return fs.DefaultMaxFileSize, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, errdefs.New(errdefs.ErrInvalidArgument, "max_size must be a positive integer")
	}
	return n, nil
}

// writeFile stores the request body at ?path= (see fs.Write). The body's
// length is checked against Content-Length when one was sent.
func (a *Agent) writeFile(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := maxSize(r)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	id, err := a.resolveUser(q.Get("user"))
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	o := fs.WriteOptions{Max: limit, Size: r.ContentLength, Owner: id.owner()}
	if m, ok, err := fs.ParseMode(q.Get("mode")); err != nil {
		httpjson.WriteError(w, err)
		return
	} else if ok {
		o.Mode = &m
	}
	info, err := fs.Write(r.Context(), q.Get("path"), r.Body, o)
	if err != nil {
		a.log.Debug("upload refused", "path", q.Get("path"), "err", err)
		httpjson.WriteError(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, info)
}

// readFile streams the file at ?path= with its exact size. It sends at
// most the size seen when opening, so a file growing meanwhile cannot push
// a download past the limit.
func (a *Agent) readFile(w http.ResponseWriter, r *http.Request) {
	limit, err := maxSize(r)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	f, info, err := fs.Open(r.URL.Query().Get("path"), limit)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	defer f.Close()
	ct := mime.TypeByExtension(path.Ext(info.Path))
	if ct == "" {
		buf := make([]byte, 512)
		n, _ := f.ReadAt(buf, 0)
		ct = http.DetectContentType(buf[:n])
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	h.Set("Last-Modified", info.ModTime.Format(http.TimeFormat))
	h.Set(HeaderFileMode, info.Mode)
	h.Set(HeaderFilePath, info.Path)
	w.WriteHeader(http.StatusOK)
	if _, err := io.CopyN(w, f, info.Size); err != nil {
		a.log.Debug("download cut short", "path", info.Path, "err", err)
	}
}

func (a *Agent) listFiles(w http.ResponseWriter, r *http.Request) {
	l, err := fs.List(r.URL.Query().Get("path"), queryBool(r, "recursive"))
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, l)
}

func (a *Agent) statFile(w http.ResponseWriter, r *http.Request) {
	info, err := fs.Stat(r.URL.Query().Get("path"))
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, info)
}

func (a *Agent) mkdir(w http.ResponseWriter, r *http.Request) {
	var req api.MkdirRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.WriteError(w, err)
		return
	}
	id, err := a.resolveUser(req.User)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	info, created, err := fs.Mkdir(req.Path, req.Mode, id.owner())
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpjson.Write(w, status, info)
}

func (a *Agent) removeFile(w http.ResponseWriter, r *http.Request) {
	if err := fs.Remove(r.URL.Query().Get("path"), queryBool(r, "recursive")); err != nil {
		httpjson.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *Agent) moveFile(w http.ResponseWriter, r *http.Request) {
	var req api.MoveRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.WriteError(w, err)
		return
	}
	info, err := fs.Move(req)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, info)
}

// ParseModTime reads a Last-Modified header; zero when absent or bad.
func ParseModTime(s string) time.Time {
	t, _ := http.ParseTime(s)
	return t.UTC()
}
