package server

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/store"
)

// multipartSlack is how much a multipart body may exceed the file limit
// (boundaries, part headers, the path and mode fields) before it is refused
// from its Content-Length alone, without reading it.
const multipartSlack = 64 << 10

// uploadIdle is how long an upload may stall before it is abandoned (and
// the agent discards what it got): a client that stops sending without
// closing must not pin a temporary file forever.
const uploadIdle = 60 * time.Second

func (s *Server) fileRoutes() {
	s.handle("POST /v1/sessions/{id}/upload", s.upload)
	s.handle("GET /v1/sessions/{id}/download", s.download)
	s.handle("GET /v1/sessions/{id}/files", s.listFiles)
	s.handle("DELETE /v1/sessions/{id}/files", s.removeFile)
	s.handle("GET /v1/sessions/{id}/files/stat", s.statFile)
	s.handle("POST /v1/sessions/{id}/files/mkdir", s.mkdir)
	s.handle("POST /v1/sessions/{id}/files/move", s.moveFile)
}

func queryBool(r *http.Request, name string) bool {
	switch r.URL.Query().Get(name) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// idleReader extends the connection's read deadline before every read.
type idleReader struct {
	r  io.Reader
	rc *http.ResponseController
}

func (i idleReader) Read(p []byte) (int, error) {
	_ = i.rc.SetReadDeadline(time.Now().Add(uploadIdle))
	return i.r.Read(p)
}

// upload takes a multipart form (fields path, optional mode and user, then
// file: the order curl -F sends them in) or, for any other content type,
// the raw body with ?path= (and ?mode=, ?user=). Nothing is buffered: the file part streams
// through to the agent.
func (s *Server) upload(w http.ResponseWriter, r *http.Request, acct store.Account) {
	id := r.PathValue("id")
	q := r.URL.Query()
	rc := http.NewResponseController(w)
	body := idleReader{r: r.Body, rc: rc}
	// The deadline would outlive the request on a kept-alive connection.
	defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var (
		info api.FileInfo
		err  error
	)
	// Bodies announced too large are refused before reading: with
	// Expect: 100-continue (curl sends it for large bodies) the client
	// does not even send them.
	if mt != "multipart/form-data" {
		info, err = s.sandboxes.Upload(r.Context(), acct, id, q.Get("path"), q.Get("mode"), q.Get("user"), body, r.ContentLength)
	} else if err = s.sandboxes.CheckUpload(r.Context(), acct, id, r.ContentLength-multipartSlack); err == nil {
		info, err = s.uploadMultipart(r, acct, id, body)
	}
	if err != nil {
		if errors.Is(err, errdefs.ErrTooLarge) {
			// Close the connection after answering: the rest of an
			// over-limit body is not worth reading.
			w.Header().Set("Connection", "close")
		}
		if errors.Is(err, errdefs.ErrInsufficientStorage) {
			// The disk filled up mid-body. The client is still sending
			// (at most the size limit, checked before): read the rest,
			// so it gets the 507 instead of a connection reset.
			_, _ = io.Copy(io.Discard, io.LimitReader(body, s.sandboxes.MaxFileSize()+multipartSlack))
		}
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) uploadMultipart(r *http.Request, acct store.Account, id string, body io.Reader) (api.FileInfo, error) {
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		return api.FileInfo{}, errdefs.New(errdefs.ErrInvalidArgument, "multipart/form-data without a boundary")
	}
	mr := multipart.NewReader(body, params["boundary"])
	q := r.URL.Query()
	p, mode, user := q.Get("path"), q.Get("mode"), q.Get("user")
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			if p == "" {
				return api.FileInfo{}, errdefs.New(errdefs.ErrInvalidArgument, `missing "path" field: send -F path=/workspace/app.js -F file=@./app.js`)
			}
			return api.FileInfo{}, errdefs.New(errdefs.ErrInvalidArgument, `missing "file" field: send -F file=@./app.js`)
		}
		if err != nil {
			return api.FileInfo{}, errdefs.New(errdefs.ErrInvalidArgument, "malformed multipart body: "+err.Error())
		}
		switch name := part.FormName(); name {
		case "path", "mode", "user":
			v, err := io.ReadAll(io.LimitReader(part, 4097))
			if err != nil {
				return api.FileInfo{}, errdefs.New(errdefs.ErrInvalidArgument, "malformed multipart body: "+err.Error())
			}
			if len(v) > 4096 {
				return api.FileInfo{}, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("field %q is too long", name))
			}
			switch name {
			case "path":
				p = string(v)
			case "mode":
				mode = strings.TrimSpace(string(v))
			default:
				user = strings.TrimSpace(string(v))
			}
		case "file":
			if p == "" {
				return api.FileInfo{}, errdefs.New(errdefs.ErrInvalidArgument, `the "path" field must come before the "file" field (or pass ?path=)`)
			}
			return s.sandboxes.Upload(r.Context(), acct, id, p, mode, user, &filePart{part: part, mr: mr}, -1)
		default:
			return api.FileInfo{}, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("unknown field %q: send path, mode and user (optional) and file", name))
		}
	}
}

// filePart reads the file part, then makes sure the form ends there: the
// upload is committed only when the whole body arrived, so a body cut
// after the file's last byte but before the closing boundary is refused.
type filePart struct {
	part *multipart.Part
	mr   *multipart.Reader
}

func (f *filePart) Read(p []byte) (int, error) {
	n, err := f.part.Read(p)
	if err != io.EOF {
		return n, err
	}
	next, nerr := f.mr.NextPart()
	switch {
	case nerr == io.EOF:
		return n, io.EOF
	case nerr != nil:
		return n, fmt.Errorf("multipart body ended early: %w", nerr)
	default:
		return n, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("field %q comes after \"file\": send path, mode and user first", next.FormName()))
	}
}

func (s *Server) download(w http.ResponseWriter, r *http.Request, acct store.Account) {
	d, err := s.sandboxes.Download(r.Context(), acct, r.PathValue("id"), r.URL.Query().Get("path"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer d.Body.Close()
	h := w.Header()
	h.Set("Content-Type", d.ContentType)
	h.Set("Content-Length", strconv.FormatInt(d.Size, 10))
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(d.Info.Path)}))
	h.Set("X-Content-Type-Options", "nosniff")
	if !d.Info.ModTime.IsZero() {
		h.Set("Last-Modified", d.Info.ModTime.Format(http.TimeFormat))
	}
	h.Set("X-Chaser-File-Mode", d.Info.Mode)
	w.WriteHeader(http.StatusOK)
	// A failure midway leaves the answer shorter than Content-Length,
	// which every client reports as a truncated transfer.
	if _, err := io.CopyBuffer(w, d.Body, make([]byte, 64<<10)); err != nil {
		s.log.Debug("download cut short", "session_id", r.PathValue("id"), "err", err)
	}
}

func (s *Server) listFiles(w http.ResponseWriter, r *http.Request, acct store.Account) {
	l, err := s.sandboxes.ListFiles(r.Context(), acct, r.PathValue("id"), r.URL.Query().Get("path"), queryBool(r, "recursive"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, l)
}

func (s *Server) statFile(w http.ResponseWriter, r *http.Request, acct store.Account) {
	info, err := s.sandboxes.StatFile(r.Context(), acct, r.PathValue("id"), r.URL.Query().Get("path"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) mkdir(w http.ResponseWriter, r *http.Request, acct store.Account) {
	var req api.MkdirRequest
	if !decode(w, r, &req) {
		return
	}
	info, created, err := s.sandboxes.Mkdir(r.Context(), acct, r.PathValue("id"), req)
	if err != nil {
		writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, info)
}

func (s *Server) removeFile(w http.ResponseWriter, r *http.Request, acct store.Account) {
	if err := s.sandboxes.RemoveFile(r.Context(), acct, r.PathValue("id"), r.URL.Query().Get("path"), queryBool(r, "recursive")); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) moveFile(w http.ResponseWriter, r *http.Request, acct store.Account) {
	var req api.MoveRequest
	if !decode(w, r, &req) {
		return
	}
	info, err := s.sandboxes.MoveFile(r.Context(), acct, r.PathValue("id"), req)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}
