package e2b

import (
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/e2b/spec/filesystem"
	"github.com/chaserhq/chaser/internal/e2b/spec/filesystem/filesystemconnect"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
	"github.com/chaserhq/chaser/internal/sandbox"
)

// filesystemService serves filesystem.Filesystem over the sandbox
// service's file calls (done by the agent inside the sandbox); directory
// watches (WatchDir and the watcher trio, watch.go) use the agent's
// GET /v1/watch.
type filesystemService struct {
	filesystemconnect.UnimplementedFilesystemHandler
	h *Handler
}

var _ filesystemconnect.FilesystemHandler = (*filesystemService)(nil)

func entry(fi api.FileInfo) *filesystem.EntryInfo {
	e := &filesystem.EntryInfo{Name: fi.Name, Path: fi.Path, Size: fi.Size, Permissions: fi.Mode}
	if e.Name == "" {
		e.Name = path.Base(fi.Path)
	}
	if m, err := strconv.ParseUint(fi.Mode, 8, 32); err == nil {
		e.Mode = uint32(m)
	}
	if !fi.ModTime.IsZero() {
		e.ModifiedTime = timestamppb.New(fi.ModTime)
	}
	switch fi.Type {
	case api.FileTypeFile:
		e.Type = filesystem.FileType_FILE_TYPE_FILE
	case api.FileTypeDir:
		e.Type = filesystem.FileType_FILE_TYPE_DIRECTORY
	case api.FileTypeSymlink:
		e.Type = filesystem.FileType_FILE_TYPE_SYMLINK
		if fi.LinkTarget != "" {
			e.SymlinkTarget = &fi.LinkTarget
		}
	}
	return e
}

// abs makes a path of the SDK absolute: relative ones are under the
// user's home in envd; here under the default working directory.
func abs(p string) string {
	if p == "" || !strings.HasPrefix(p, "/") {
		return path.Join(sandbox.DefaultCwd, p)
	}
	return p
}

func (f *filesystemService) Stat(ctx context.Context, req *connect.Request[filesystem.StatRequest]) (*connect.Response[filesystem.StatResponse], error) {
	t, err := f.h.target(ctx, req.Header())
	if err == nil {
		err = f.h.checkUser(ctx, t)
	}
	if err != nil {
		return nil, f.h.connectError(err)
	}
	fi, err := f.h.sandboxes.StatFile(ctx, t.acct, t.id, abs(req.Msg.GetPath()))
	if err != nil {
		return nil, f.h.connectError(err)
	}
	return connect.NewResponse(&filesystem.StatResponse{Entry: entry(fi)}), nil
}

func (f *filesystemService) ListDir(ctx context.Context, req *connect.Request[filesystem.ListDirRequest]) (*connect.Response[filesystem.ListDirResponse], error) {
	t, err := f.h.target(ctx, req.Header())
	if err == nil {
		err = f.h.checkUser(ctx, t)
	}
	if err != nil {
		return nil, f.h.connectError(err)
	}
	depth := int(req.Msg.GetDepth())
	if depth == 0 {
		depth = 1
	}
	root := path.Clean(abs(req.Msg.GetPath()))
	list, err := f.h.sandboxes.ListFiles(ctx, t.acct, t.id, root, depth > 1)
	if err != nil {
		return nil, f.h.connectError(err)
	}
	out := &filesystem.ListDirResponse{}
	for _, fi := range list.Entries {
		rel := strings.TrimPrefix(strings.TrimPrefix(fi.Path, root), "/")
		if rel == "" || strings.Count(rel, "/")+1 > depth {
			continue
		}
		out.Entries = append(out.Entries, entry(fi))
	}
	return connect.NewResponse(out), nil
}

func (f *filesystemService) MakeDir(ctx context.Context, req *connect.Request[filesystem.MakeDirRequest]) (*connect.Response[filesystem.MakeDirResponse], error) {
	t, err := f.h.target(ctx, req.Header())
	if err != nil {
		return nil, f.h.connectError(err)
	}
	fi, created, err := f.h.sandboxes.Mkdir(ctx, t.acct, t.id, api.MkdirRequest{Path: abs(req.Msg.GetPath()), User: t.user})
	if err != nil {
		return nil, f.h.connectError(err)
	}
	if !created {
		// envd answers an existing directory with already_exists; the
		// SDK's makeDir turns that into false.
		return nil, connect.NewError(connect.CodeAlreadyExists, errors.New("directory "+fi.Path+" already exists"))
	}
	return connect.NewResponse(&filesystem.MakeDirResponse{Entry: entry(fi)}), nil
}

func (f *filesystemService) Move(ctx context.Context, req *connect.Request[filesystem.MoveRequest]) (*connect.Response[filesystem.MoveResponse], error) {
	t, err := f.h.target(ctx, req.Header())
	if err == nil {
		err = f.h.checkUser(ctx, t)
	}
	if err != nil {
		return nil, f.h.connectError(err)
	}
	fi, err := f.h.sandboxes.MoveFile(ctx, t.acct, t.id, api.MoveRequest{From: abs(req.Msg.GetSource()), To: abs(req.Msg.GetDestination()), Overwrite: true})
	if err != nil {
		return nil, f.h.connectError(err)
	}
	return connect.NewResponse(&filesystem.MoveResponse{Entry: entry(fi)}), nil
}

func (f *filesystemService) Remove(ctx context.Context, req *connect.Request[filesystem.RemoveRequest]) (*connect.Response[filesystem.RemoveResponse], error) {
	t, err := f.h.target(ctx, req.Header())
	if err == nil {
		err = f.h.checkUser(ctx, t)
	}
	if err != nil {
		return nil, f.h.connectError(err)
	}
	if err := f.h.sandboxes.RemoveFile(ctx, t.acct, t.id, abs(req.Msg.GetPath()), true); err != nil {
		return nil, f.h.connectError(err)
	}
	return connect.NewResponse(&filesystem.RemoveResponse{}), nil
}

// envdTarget authenticates a /files call; the user comes as ?username=.
func (h *Handler) envdTarget(r *http.Request) (target, error) {
	t, err := h.target(r.Context(), r.Header)
	if err != nil {
		return t, err
	}
	if u := r.URL.Query().Get("username"); u != "" {
		t.user = u
	}
	return t, nil
}

// getFile serves GET /files?path=: the file's bytes.
func (h *Handler) getFile(w http.ResponseWriter, r *http.Request) {
	t, err := h.envdTarget(r)
	if err == nil {
		err = h.checkUser(r.Context(), t)
	}
	if err != nil {
		writeEnvdError(w, err)
		return
	}
	d, err := h.sandboxes.Download(r.Context(), t.acct, t.id, abs(r.URL.Query().Get("path")))
	if err != nil {
		writeEnvdError(w, err)
		return
	}
	defer d.Body.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(d.Size, 10))
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, d.Body)
}

type writeInfo struct {
	Name string `json:"name"`
	Path string `json:"path"`
	Type string `json:"type"`
}

// postFile serves POST /files: multipart (field "file", its filename the
// path when ?path= is absent, several allowed) or a raw octet-stream body
// for ?path=.
func (h *Handler) postFile(w http.ResponseWriter, r *http.Request) {
	t, err := h.envdTarget(r)
	if err != nil {
		writeEnvdError(w, err)
		return
	}
	qpath := r.URL.Query().Get("path")
	upload := func(p string, body io.Reader, size int64) (writeInfo, error) {
		fi, err := h.sandboxes.Upload(r.Context(), t.acct, t.id, abs(p), "", t.user, body, size)
		if err != nil {
			return writeInfo{}, err
		}
		return writeInfo{Name: path.Base(fi.Path), Path: fi.Path, Type: "file"}, nil
	}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Header.Get("Content-Encoding") != "" && r.Header.Get("Content-Encoding") != "identity" {
		writeEnvdError(w, errdefs.New(errdefs.ErrInvalidArgument, "compressed uploads are not supported: send the file without gzip"))
		return
	}
	var out []writeInfo
	if mt != "multipart/form-data" {
		if qpath == "" {
			writeEnvdError(w, errdefs.New(errdefs.ErrInvalidArgument, "?path= is required for an octet-stream upload"))
			return
		}
		wi, err := upload(qpath, r.Body, r.ContentLength)
		if err != nil {
			writeEnvdError(w, err)
			return
		}
		httpjson.Write(w, http.StatusOK, []writeInfo{wi})
		return
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			writeEnvdError(w, errdefs.New(errdefs.ErrInvalidArgument, "bad multipart body: "+err.Error()))
			return
		}
		if part.FormName() != "file" {
			continue
		}
		p := qpath
		if p == "" || len(out) > 0 {
			// The SDK puts the whole path in the filename, which
			// part.FileName would cut to its base.
			_, cd, _ := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
			p = cd["filename"]
		}
		if p == "" {
			writeEnvdError(w, errdefs.New(errdefs.ErrInvalidArgument, "a file part needs ?path= or a filename that is its path"))
			return
		}
		wi, err := upload(p, part, -1)
		if err != nil {
			writeEnvdError(w, err)
			return
		}
		out = append(out, wi)
	}
	if len(out) == 0 {
		writeEnvdError(w, errdefs.New(errdefs.ErrInvalidArgument, `the multipart body has no "file" part`))
		return
	}
	httpjson.Write(w, http.StatusOK, out)
}
