package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/agent/fs"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/passwd"
	"github.com/chaserhq/chaser/internal/store"
)

// File operations. The agent does the work inside the sandbox (see package
// agent/fs for how paths are resolved and why writes are atomic); this
// service adds what only the server knows: whose session it is and the
// operator's size limit, which it enforces on the stream itself too, so an
// over-limit upload is cut at limit+1 bytes whatever the client claimed.

// MaxFileSize is the most bytes one upload or download may carry.
func (s *Service) MaxFileSize() int64 {
	if s.cfg.MaxFileSize > 0 {
		return s.cfg.MaxFileSize
	}
	return fs.DefaultMaxFileSize
}

// CheckUser refuses, with ErrInvalidArgument, a request's user that is
// not a name or uid optionally followed by :group or :gid. Whether the
// user exists only the sandbox knows: the agent checks that.
func CheckUser(user string) error {
	if user == "" {
		return nil
	}
	if err := passwd.Check(user); err != nil {
		return errdefs.New(errdefs.ErrInvalidArgument, err.Error())
	}
	return nil
}

// limitReader fails with errdefs.ErrTooLarge once more than n bytes come.
type limitReader struct {
	r     io.Reader
	n     int64 // bytes still allowed
	limit int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		return 0, fs.TooLarge(l.limit)
	}
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		return n, fs.TooLarge(l.limit)
	}
	return n, err
}

// Upload stores body at sandbox path p of session id, atomically; size is
// the announced length or -1. mode is octal ("0755") or empty. A new file
// and the parents made for it belong to user (a name or uid[:gid]; empty:
// the image's user); a replaced file keeps its owner. Errors: ErrNotFound
// (no such session for acct), ErrInvalidArgument (bad path, mode or user,
// interrupted body), ErrTooLarge beyond MaxFileSize — the old file stays
// intact and nothing is left behind — and the agent's errors.
func (s *Service) Upload(ctx context.Context, acct store.Account, id, p, mode, user string, body io.Reader, size int64) (api.FileInfo, error) {
	c, _, err := s.Agent(ctx, acct, id)
	if err != nil {
		return api.FileInfo{}, err
	}
	if p, err = fs.Clean(p); err != nil {
		return api.FileInfo{}, err
	}
	if _, _, err := fs.ParseMode(mode); err != nil {
		return api.FileInfo{}, err
	}
	if err := CheckUser(user); err != nil {
		return api.FileInfo{}, err
	}
	limit := s.MaxFileSize()
	if size > limit {
		return api.FileInfo{}, fs.TooLarge(limit)
	}
	start := time.Now()
	info, err := c.WriteFile(ctx, p, mode, user, limit, &limitReader{r: body, n: limit, limit: limit}, size)
	if err != nil {
		var e *errdefs.Error
		if !errors.As(err, &e) && !errors.Is(err, errdefs.ErrUnavailable) {
			// The client's body failed: it went away or stalled.
			err = errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("upload of %s interrupted: %v", p, err))
		}
		return api.FileInfo{}, err
	}
	s.log.Info("file uploaded", "session_id", id, "path", p, "bytes", info.Size, "ms", time.Since(start).Milliseconds())
	return info, nil
}

// CheckUpload refuses, before anything is read, an upload to session id
// whose file is at least size bytes: ErrTooLarge beyond MaxFileSize, and
// ErrNotFound first for a session that is not acct's.
func (s *Service) CheckUpload(ctx context.Context, acct store.Account, id string, size int64) error {
	if _, _, err := s.Agent(ctx, acct, id); err != nil {
		return err
	}
	if limit := s.MaxFileSize(); size > limit {
		return fs.TooLarge(limit)
	}
	return nil
}

// Download is an open file of a sandbox being downloaded.
type Download struct {
	Body        io.ReadCloser
	Size        int64
	ContentType string
	Info        api.FileInfo
}

// Download opens sandbox file p of session id. The caller streams Body
// (exactly Size bytes) and closes it. Errors: ErrNotFound, ErrTooLarge
// beyond MaxFileSize, ErrInvalidArgument for a directory or special file.
func (s *Service) Download(ctx context.Context, acct store.Account, id, p string) (*Download, error) {
	c, _, err := s.Agent(ctx, acct, id)
	if err != nil {
		return nil, err
	}
	if p, err = fs.Clean(p); err != nil {
		return nil, err
	}
	resp, err := c.ReadFile(ctx, p, s.MaxFileSize())
	if err != nil {
		return nil, err
	}
	d := &Download{Body: resp.Body, Size: resp.ContentLength, ContentType: resp.Header.Get("Content-Type")}
	d.Info = api.FileInfo{
		Path: resp.Header.Get(agent.HeaderFilePath), Type: api.FileTypeFile, Size: resp.ContentLength,
		Mode: resp.Header.Get(agent.HeaderFileMode), ModTime: agent.ParseModTime(resp.Header.Get("Last-Modified")),
	}
	if d.Size < 0 || d.Size > s.MaxFileSize() {
		resp.Body.Close()
		return nil, fmt.Errorf("download of %s: agent answered length %s: %w", p, strconv.FormatInt(d.Size, 10), errdefs.ErrInternal)
	}
	return d, nil
}

// ListFiles lists directory p (its whole tree when recursive, up to
// fs.MaxEntries entries).
func (s *Service) ListFiles(ctx context.Context, acct store.Account, id, p string, recursive bool) (api.FileList, error) {
	c, _, err := s.Agent(ctx, acct, id)
	if err != nil {
		return api.FileList{}, err
	}
	if p, err = fs.Clean(p); err != nil {
		return api.FileList{}, err
	}
	return c.ListFiles(ctx, p, recursive)
}

// StatFile describes p without following a final symlink.
func (s *Service) StatFile(ctx context.Context, acct store.Account, id, p string) (api.FileInfo, error) {
	c, _, err := s.Agent(ctx, acct, id)
	if err != nil {
		return api.FileInfo{}, err
	}
	if p, err = fs.Clean(p); err != nil {
		return api.FileInfo{}, err
	}
	return c.StatFile(ctx, p)
}

// Mkdir creates a directory with its parents, owned by req.User (the
// image's user by default); created is false when it already was one.
// ErrAlreadyExists when something else is there.
func (s *Service) Mkdir(ctx context.Context, acct store.Account, id string, req api.MkdirRequest) (api.FileInfo, bool, error) {
	c, _, err := s.Agent(ctx, acct, id)
	if err != nil {
		return api.FileInfo{}, false, err
	}
	if req.Path, err = fs.Clean(req.Path); err != nil {
		return api.FileInfo{}, false, err
	}
	if _, _, err := fs.ParseMode(req.Mode); err != nil {
		return api.FileInfo{}, false, err
	}
	if err := CheckUser(req.User); err != nil {
		return api.FileInfo{}, false, err
	}
	return c.Mkdir(ctx, req)
}

// RemoveFile removes p; a non-empty directory needs recursive
// (ErrFailedPrecondition otherwise).
func (s *Service) RemoveFile(ctx context.Context, acct store.Account, id, p string, recursive bool) error {
	c, _, err := s.Agent(ctx, acct, id)
	if err != nil {
		return err
	}
	if p, err = fs.Clean(p); err != nil {
		return err
	}
	return c.RemoveFile(ctx, p, recursive)
}

// MoveFile renames req.From to req.To; ErrAlreadyExists when To exists and
// Overwrite is not set. Like mv, it keeps the owner of what it moves.
func (s *Service) MoveFile(ctx context.Context, acct store.Account, id string, req api.MoveRequest) (api.FileInfo, error) {
	c, _, err := s.Agent(ctx, acct, id)
	if err != nil {
		return api.FileInfo{}, err
	}
	if req.From, err = fs.Clean(req.From); err != nil {
		return api.FileInfo{}, fmt.Errorf("from: %w", err)
	}
	if req.To, err = fs.Clean(req.To); err != nil {
		return api.FileInfo{}, fmt.Errorf("to: %w", err)
	}
	return c.MoveFile(ctx, req)
}
