//go:build linux

package fs

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
)

// noOpenat2 is set once openat2 turned out to be missing (Linux < 5.6, old
// gVisor). The fallback, openat, follows magic links; under gVisor those
// lead into the sentry's own virtual /proc, still inside the sandbox.
var noOpenat2 atomic.Bool

// openat2 opens p (absolute, or relative to dirfd) following ordinary
// symlinks but refusing /proc magic links (ELOOP).
func openat2(dirfd int, p string, flags int, mode uint32) (int, error) {
	flags |= unix.O_CLOEXEC
	for {
		var fd int
		var err error
		if noOpenat2.Load() {
			fd, err = unix.Openat(dirfd, p, flags, mode)
		} else {
			how := unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode), Resolve: unix.RESOLVE_NO_MAGICLINKS}
			fd, err = unix.Openat2(dirfd, p, &how)
			if err == unix.ENOSYS {
				noOpenat2.Store(true)
				continue
			}
		}
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// classify turns a system call error on sandbox path p into an errdefs
// class with a message in the sandbox's terms.
func classify(p string, err error) error {
	var en unix.Errno
	if !errors.As(err, &en) {
		return fmt.Errorf("%s: %w: %w", p, err, errdefs.ErrInternal)
	}
	var cls error
	var msg string
	switch en {
	case unix.ENOENT:
		cls, msg = errdefs.ErrNotFound, fmt.Sprintf("%s: no such file or directory in the sandbox", p)
	case unix.ENOTDIR:
		cls, msg = errdefs.ErrInvalidArgument, fmt.Sprintf("%s: not a directory (or a parent of it is not)", p)
	case unix.EISDIR:
		cls, msg = errdefs.ErrInvalidArgument, fmt.Sprintf("%s is a directory", p)
	case unix.EEXIST:
		cls, msg = errdefs.ErrAlreadyExists, fmt.Sprintf("%s already exists", p)
	case unix.ENOTEMPTY:
		cls, msg = errdefs.ErrFailedPrecondition, fmt.Sprintf("%s is a directory that is not empty", p)
	case unix.EACCES, unix.EPERM:
		cls, msg = errdefs.ErrPermissionDenied, fmt.Sprintf("%s: permission denied", p)
	case unix.EROFS:
		cls, msg = errdefs.ErrPermissionDenied, fmt.Sprintf("%s: read-only file system", p)
	case unix.EBUSY:
		cls, msg = errdefs.ErrPermissionDenied, fmt.Sprintf("%s is a mount point and cannot be replaced, moved or removed", p)
	case unix.ENXIO:
		cls, msg = errdefs.ErrInvalidArgument, fmt.Sprintf("%s is not a regular file (a socket, or a device with nothing behind it)", p)
	case unix.ELOOP:
		cls, msg = errdefs.ErrInvalidArgument, fmt.Sprintf("%s: too many symlinks, or a symlink through a /proc magic link (such as /proc/1/root or /proc/self/fd/N), which the agent does not follow", p)
	case unix.EXDEV:
		cls, msg = errdefs.ErrFailedPrecondition, fmt.Sprintf("%s: cannot move across file systems", p)
	case unix.ENOSPC, unix.EDQUOT:
		cls, msg = errdefs.ErrInsufficientStorage, fmt.Sprintf("%s: no space left on the sandbox's disk (its quota is full); delete files or, for a workspace, grow it", p)
	case unix.ENAMETOOLONG:
		cls, msg = errdefs.ErrInvalidArgument, fmt.Sprintf("%s: name too long", p)
	case unix.EINVAL:
		cls, msg = errdefs.ErrInvalidArgument, fmt.Sprintf("%s: invalid operation", p)
	default:
		return fmt.Errorf("%s: %w: %w", p, err, errdefs.ErrInternal)
	}
	return errdefs.New(cls, msg)
}

func fileType(m uint32) string {
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		return api.FileTypeFile
	case unix.S_IFDIR:
		return api.FileTypeDir
	case unix.S_IFLNK:
		return api.FileTypeSymlink
	}
	return api.FileTypeOther
}

func infoFromStat(p string, st *unix.Stat_t) api.FileInfo {
	name := path.Base(p)
	return api.FileInfo{
		Path: p, Name: name, Type: fileType(st.Mode), Size: st.Size,
		Mode:    FormatMode(st.Mode),
		ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UTC(),
	}
}

// statAt describes name in dirfd without following a final symlink.
func statAt(dirfd int, name, p string) (api.FileInfo, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return api.FileInfo{}, classify(p, err)
	}
	info := infoFromStat(p, &st)
	if info.Type == api.FileTypeSymlink {
		buf := make([]byte, maxPath)
		if n, err := unix.Readlinkat(dirfd, name, buf); err == nil {
			info.LinkTarget = string(buf[:n])
		}
	}
	return info, nil
}

func statRoot() (api.FileInfo, error) {
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		return api.FileInfo{}, classify("/", err)
	}
	info := infoFromStat("/", &st)
	info.Name = "/"
	return info, nil
}

// openParent opens the directory holding cleaned path p (not "/") and
// returns it with p's last component.
func openParent(p string) (int, string, error) {
	dir := path.Dir(p)
	fd, err := openat2(unix.AT_FDCWD, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, "", classify(dir, err)
	}
	return fd, path.Base(p), nil
}

// parents is a directory opened by makeParents, with what it created.
type parents struct {
	fd      int   // the directory (O_PATH)
	fds     []int // every descriptor to close
	created []struct {
		parent int
		name   string
	}
}

// makeParents opens directory dir, creating missing components (0755,
// belonging to owner) like mkdir -p. undo removes what it created, deepest
// first.
func makeParents(dir string, owner Owner) (*parents, error) {
	pd := &parents{}
	cur, err := openat2(unix.AT_FDCWD, "/", unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, classify("/", err)
	}
	pd.fds = append(pd.fds, cur)
	sofar := ""
	for _, c := range strings.Split(strings.Trim(dir, "/"), "/") {
		if c == "" {
			continue
		}
		sofar += "/" + c
		fd, err := openat2(cur, c, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err == unix.ENOENT {
			switch merr := unix.Mkdirat(cur, c, 0o755); merr {
			case nil:
				pd.created = append(pd.created, struct {
					parent int
					name   string
				}{cur, c})
				if cerr := unix.Fchownat(cur, c, owner.UID, owner.GID, unix.AT_SYMLINK_NOFOLLOW); cerr != nil {
					err = cerr
				}
			case unix.EEXIST: // made concurrently, or a dangling symlink
			default:
				err = merr
			}
			if err == unix.ENOENT {
				fd, err = openat2(cur, c, unix.O_PATH|unix.O_DIRECTORY, 0)
			}
		}
		if err != nil {
			pd.undo()
			pd.close()
			return nil, classify(sofar, err)
		}
		pd.fds = append(pd.fds, fd)
		cur = fd
	}
	pd.fd = cur
	return pd, nil
}

func (pd *parents) undo() {
	for i := len(pd.created) - 1; i >= 0; i-- {
		c := pd.created[i]
		_ = unix.Unlinkat(c.parent, c.name, unix.AT_REMOVEDIR)
	}
	pd.created = nil
}

func (pd *parents) close() {
	for _, fd := range pd.fds {
		unix.Close(fd)
	}
	pd.fds = nil
}

// createTemp creates a new hidden file next to base in dirfd.
func createTemp(dirfd int, base string) (string, *os.File, error) {
	prefix := base
	if len(prefix) > 100 {
		prefix = prefix[:100]
	}
	for i := 0; ; i++ {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		name := "." + prefix + ".chaser-upload-" + hex.EncodeToString(b)
		fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == unix.EEXIST && i < 10 {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		return name, os.NewFile(uintptr(fd), name), nil
	}
}

// readErr remembers the error of the body being uploaded, to tell an
// interrupted upload from a failing disk.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// Write stores r at sandbox path p atomically: it creates missing parent
// directories, writes a temporary file in the target directory and renames
// it over p only when the whole body arrived within o.Max bytes. On any
// error — ErrTooLarge beyond o.Max, an interrupted body, a directory at p,
// ErrPermissionDenied on a read-only path — the old file is left intact and
// nothing is left behind, including the parents it created. The answer
// carries the SHA-256 of what was written.
func Write(ctx context.Context, p string, r io.Reader, o WriteOptions) (api.FileInfo, error) {
	p, err := Clean(p)
	if err != nil {
		return api.FileInfo{}, err
	}
	if p == "/" {
		return api.FileInfo{}, errdefs.New(errdefs.ErrInvalidArgument, "/ is a directory; give the path of a file")
	}
	if isReserved(p) {
		return api.FileInfo{}, reservedError(p)
	}
	limit := o.Max
	if limit <= 0 {
		limit = DefaultMaxFileSize
	}
	if o.Size > limit {
		return api.FileInfo{}, TooLarge(limit)
	}
	base := path.Base(p)
	pd, err := makeParents(path.Dir(p), o.Owner)
	if err != nil {
		return api.FileInfo{}, err
	}
	defer pd.close()
	done := false
	defer func() {
		if !done {
			pd.undo()
		}
	}()

	var old unix.Stat_t
	exists := false
	switch err := unix.Fstatat(pd.fd, base, &old, unix.AT_SYMLINK_NOFOLLOW); {
	case err == nil:
		exists = old.Mode&unix.S_IFMT == unix.S_IFREG
		if old.Mode&unix.S_IFMT == unix.S_IFDIR {
			return api.FileInfo{}, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%s is a directory; give the path of a file inside it", p))
		}
	case err != unix.ENOENT:
		return api.FileInfo{}, classify(p, err)
	}
	mode := uint32(0o644)
	if o.Mode != nil {
		mode = *o.Mode
	} else if exists {
		mode = old.Mode & 0o7777
	}

	tmp, f, err := createTemp(pd.fd, base)
	if err != nil {
		return api.FileInfo{}, classify(p, err)
	}
	renamed := false
	defer func() {
		if f != nil {
			f.Close()
		}
		if !renamed {
			_ = unix.Unlinkat(pd.fd, tmp, 0)
		}
	}()

	h := sha256.New()
	body := &readErr{r: r}
	n, err := io.CopyBuffer(io.MultiWriter(f, h), &io.LimitedReader{R: body, N: limit + 1}, make([]byte, 64<<10))
	switch {
	case body.err != nil:
		var cls *errdefs.Error
		if errors.As(body.err, &cls) {
			return api.FileInfo{}, body.err
		}
		return api.FileInfo{}, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("upload of %s interrupted after %d bytes: %v", p, n, body.err))
	case err != nil:
		return api.FileInfo{}, classify(p, err)
	case n > limit:
		return api.FileInfo{}, TooLarge(limit)
	case o.Size >= 0 && n != o.Size:
		return api.FileInfo{}, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("upload of %s ended after %d of %d bytes", p, n, o.Size))
	}
	if err := ctx.Err(); err != nil {
		return api.FileInfo{}, fmt.Errorf("upload of %s: %w: %w", p, err, errdefs.ErrUnavailable)
	}
	fd := int(f.Fd())
	owner := o.Owner
	if exists {
		owner = Owner{int(old.Uid), int(old.Gid)}
	}
	if err := unix.Fchown(fd, owner.UID, owner.GID); err != nil {
		return api.FileInfo{}, classify(p, err)
	}
	// Fchmod, not the open mode: the umask must not change what was asked.
	if err := unix.Fchmod(fd, mode); err != nil {
		return api.FileInfo{}, classify(p, err)
	}
	if err := f.Sync(); err != nil {
		return api.FileInfo{}, classify(p, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return api.FileInfo{}, classify(p, err)
	}
	if err := unix.Renameat(pd.fd, tmp, pd.fd, base); err != nil {
		return api.FileInfo{}, classify(p, err)
	}
	renamed, done = true, true
	info, err := statAt(pd.fd, base, p)
	if err != nil {
		return api.FileInfo{}, err
	}
	info.SHA256 = hex.EncodeToString(h.Sum(nil))
	return info, nil
}

// Open opens the regular file at sandbox path p for download, following
// ordinary symlinks. Errors: ErrNotFound, ErrInvalidArgument for a
// directory or a special file (a FIFO must not block the agent, a device
// has no end), ErrTooLarge beyond max bytes (0: DefaultMaxFileSize). The
// caller reads at most info.Size bytes: /proc files report size 0 and so
// download empty.
func Open(p string, max int64) (*os.File, api.FileInfo, error) {
	p, err := Clean(p)
	if err != nil {
		return nil, api.FileInfo{}, err
	}
	fd, err := openat2(unix.AT_FDCWD, p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, api.FileInfo{}, classify(p, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, api.FileInfo{}, classify(p, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		unix.Close(fd)
		return nil, api.FileInfo{}, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%s is a directory, not a file; list it with GET /v1/sessions/{id}/files?path=%s", p, p))
	default:
		unix.Close(fd)
		return nil, api.FileInfo{}, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%s is not a regular file (a device, FIFO or socket)", p))
	}
	if max <= 0 {
		max = DefaultMaxFileSize
	}
	if st.Size > max {
		unix.Close(fd)
		return nil, api.FileInfo{}, TooLarge(max)
	}
	_ = unix.SetNonblock(fd, false)
	return os.NewFile(uintptr(fd), p), infoFromStat(p, &st), nil
}

// Stat describes sandbox path p without following a final symlink (its
// target is in LinkTarget).
func Stat(p string) (api.FileInfo, error) {
	p, err := Clean(p)
	if err != nil {
		return api.FileInfo{}, err
	}
	if p == "/" {
		return statRoot()
	}
	pfd, base, err := openParent(p)
	if err != nil {
		return api.FileInfo{}, err
	}
	defer unix.Close(pfd)
	return statAt(pfd, base, p)
}

// List lists directory p (following ordinary symlinks to it); recursive
// walks the whole tree, depth first in name order, without following
// symlinked directories. It stops at MaxEntries and sets Truncated.
func List(p string, recursive bool) (api.FileList, error) {
	p, err := Clean(p)
	if err != nil {
		return api.FileList{}, err
	}
	fd, err := openat2(unix.AT_FDCWD, p, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err == unix.ENOTDIR {
		return api.FileList{}, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%s is not a directory; download it with GET /v1/sessions/{id}/download?path=%s", p, p))
	}
	if err != nil {
		return api.FileList{}, classify(p, err)
	}
	l := api.FileList{Path: p, Entries: []api.FileInfo{}, MaxEntries: MaxEntries}
	if err := walk(fd, p, recursive, &l); err != nil {
		return api.FileList{}, err
	}
	return l, nil
}

// walk appends the entries of directory fd (closing it). Subdirectories
// are opened relative to their parent with O_NOFOLLOW.
func walk(fd int, dir string, recursive bool, l *api.FileList) error {
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return classify(dir, err)
	}
	sort.Strings(names)
	for _, name := range names {
		if len(l.Entries) >= MaxEntries {
			l.Truncated = true
			return nil
		}
		p := path.Join(dir, name)
		info, err := statAt(fd, name, p)
		if err != nil {
			continue // removed while listing
		}
		l.Entries = append(l.Entries, info)
		if recursive && info.Type == api.FileTypeDir {
			sub, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				continue // unreadable: listed, not entered
			}
			_ = walk(sub, p, recursive, l)
			if l.Truncated {
				return nil
			}
		}
	}
	return nil
}

// Mkdir creates directory p and its missing parents (mkdir -p), owned by
// owner; mode (octal, default 0755) applies to p. created is false when p
// already was a directory; ErrAlreadyExists when it is something else.
func Mkdir(p, modeStr string, owner Owner) (api.FileInfo, bool, error) {
	p, err := Clean(p)
	if err != nil {
		return api.FileInfo{}, false, err
	}
	mode, hasMode, err := ParseMode(modeStr)
	if err != nil {
		return api.FileInfo{}, false, err
	}
	if p == "/" {
		info, err := statRoot()
		return info, false, err
	}
	if isReserved(p) {
		return api.FileInfo{}, false, reservedError(p)
	}
	base := path.Base(p)
	pd, err := makeParents(path.Dir(p), owner)
	if err != nil {
		return api.FileInfo{}, false, err
	}
	defer pd.close()
	perm := uint32(0o755)
	if hasMode {
		perm = mode
	}
	switch err := unix.Mkdirat(pd.fd, base, perm); err {
	case nil:
		if err := unix.Fchownat(pd.fd, base, owner.UID, owner.GID, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			_ = unix.Unlinkat(pd.fd, base, unix.AT_REMOVEDIR)
			pd.undo()
			return api.FileInfo{}, false, classify(p, err)
		}
		if hasMode {
			_ = unix.Fchmodat(pd.fd, base, perm, 0)
		}
		info, err := statAt(pd.fd, base, p)
		return info, true, err
	case unix.EEXIST:
		// Like mkdir -p, a directory (or a symlink to one) is fine.
		dfd, derr := openat2(pd.fd, base, unix.O_PATH|unix.O_DIRECTORY, 0)
		if derr != nil {
			pd.undo()
			return api.FileInfo{}, false, errdefs.New(errdefs.ErrAlreadyExists, fmt.Sprintf("%s exists and is not a directory", p))
		}
		unix.Close(dfd)
		info, err := statAt(pd.fd, base, p)
		return info, false, err
	default:
		pd.undo()
		return api.FileInfo{}, false, classify(p, err)
	}
}

// Remove removes p (a symlink itself, never its target). A non-empty
// directory needs recursive, else ErrFailedPrecondition. "/" and the
// agent's own directory are refused.
func Remove(p string, recursive bool) error {
	p, err := Clean(p)
	if err != nil {
		return err
	}
	if p == "/" {
		return errdefs.New(errdefs.ErrInvalidArgument, "refusing to remove /")
	}
	if isReserved(p) {
		return reservedError(p)
	}
	pfd, base, err := openParent(p)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return classify(p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(pfd, base, 0); err != nil {
			return classify(p, err)
		}
		return nil
	}
	if !recursive {
		switch err := unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR); err {
		case nil:
			return nil
		case unix.ENOTEMPTY, unix.EEXIST:
			return errdefs.New(errdefs.ErrFailedPrecondition, fmt.Sprintf("%s is a directory that is not empty; pass recursive=true to remove it with its contents", p))
		default:
			return classify(p, err)
		}
	}
	return removeAll(pfd, base, p)
}

// removeAll removes name in dirfd and everything under it, descending
// through descriptors opened with O_NOFOLLOW.
func removeAll(dirfd int, name, p string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return classify(p, err)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return classify(p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	for {
		names, rerr := f.Readdirnames(1024)
		for _, n := range names {
			if err := removeAll(fd, n, path.Join(p, n)); err != nil {
				f.Close()
				return err
			}
		}
		if rerr != nil || len(names) == 0 {
			break
		}
	}
	f.Close()
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return classify(p, err)
	}
	return nil
}

// Move renames req.From to req.To (whose parent must exist). Without
// Overwrite an existing destination is ErrAlreadyExists; it is checked
// atomically (RENAME_NOREPLACE) where the file system supports it.
func Move(req api.MoveRequest) (api.FileInfo, error) {
	from, err := Clean(req.From)
	if err != nil {
		return api.FileInfo{}, fmt.Errorf("from: %w", err)
	}
	to, err := Clean(req.To)
	if err != nil {
		return api.FileInfo{}, fmt.Errorf("to: %w", err)
	}
	switch {
	case from == "/" || to == "/":
		return api.FileInfo{}, errdefs.New(errdefs.ErrInvalidArgument, "cannot move / or replace it")
	case isReserved(from):
		return api.FileInfo{}, reservedError(from)
	case isReserved(to):
		return api.FileInfo{}, reservedError(to)
	case strings.HasPrefix(to, from+"/"):
		return api.FileInfo{}, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("cannot move %s into itself", from))
	}
	ffd, fbase, err := openParent(from)
	if err != nil {
		return api.FileInfo{}, err
	}
	defer unix.Close(ffd)
	tfd, tbase, err := openParent(to)
	if err != nil {
		return api.FileInfo{}, err
	}
	defer unix.Close(tfd)
	var st unix.Stat_t
	if err := unix.Fstatat(ffd, fbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return api.FileInfo{}, classify(from, err)
	}
	if from != to {
		var flags uint
		if !req.Overwrite {
			flags = unix.RENAME_NOREPLACE
		}
		err = unix.Renameat2(ffd, fbase, tfd, tbase, flags)
		if flags != 0 && (err == unix.EINVAL || err == unix.ENOSYS) {
			// No RENAME_NOREPLACE here: check, then rename (racy only
			// against the sandbox's own processes).
			if unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
				err = unix.EEXIST
			} else {
				err = unix.Renameat(ffd, fbase, tfd, tbase)
			}
		}
		switch err {
		case nil:
		case unix.EEXIST:
			return api.FileInfo{}, errdefs.New(errdefs.ErrAlreadyExists, fmt.Sprintf("%s already exists; pass overwrite=true to replace it", to))
		case unix.ENOTEMPTY:
			return api.FileInfo{}, errdefs.New(errdefs.ErrFailedPrecondition, fmt.Sprintf("%s is a directory that is not empty and cannot be replaced", to))
		default:
			return api.FileInfo{}, classify(to, err)
		}
	}
	return statAt(tfd, tbase, to)
}
