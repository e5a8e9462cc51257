//go:build linux

package fs

import (
	"archive/tar"
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

	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
)

// MaxManifestEntries bounds one manifest; beyond it the walk stops with an
// error in the answer.
const MaxManifestEntries = 1_000_000

// MaxSyncPaths bounds the paths of one hashes or prune request.
const MaxSyncPaths = 100_000

// openBeneath opens rel (relative, cleaned) beneath directory rootfd. It
// refuses to leave rootfd — through "..", an absolute symlink or a symlink
// pointing outside — with EXDEV, and /proc magic links with ELOOP. Without
// openat2 it walks component by component and follows no symlink at all.
func openBeneath(rootfd int, rel string, flags int) (int, error) {
	flags |= unix.O_CLOEXEC
	if !noOpenat2.Load() {
		how := unix.OpenHow{Flags: uint64(flags), Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS}
		for {
			fd, err := unix.Openat2(rootfd, rel, &how)
			if err == unix.EINTR {
				continue
			}
			if err != unix.ENOSYS {
				return fd, err
			}
			noOpenat2.Store(true)
			break
		}
	}
	comps := strings.Split(rel, "/")
	cur, err := unix.Dup(rootfd)
	if err != nil {
		return -1, err
	}
	for i, c := range comps {
		f := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i == len(comps)-1 {
			f = flags | unix.O_NOFOLLOW
		}
		next, err := unix.Openat(cur, c, f, 0)
		unix.Close(cur)
		if err != nil {
			return -1, err
		}
		cur = next
	}
	return cur, nil
}

// relError turns a system call error on rel into a class; leaving the
// root (EXDEV from RESOLVE_BENEATH) is an invalid argument.
func relError(rel string, err error) error {
	if err == unix.EXDEV {
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%s: resolves outside the root (through .. or a symlink); refused", rel))
	}
	return classify(rel, err)
}

func syncError(rel string, err error) api.SyncError {
	code, _ := errdefs.Code(err)
	msg := err.Error()
	var e *errdefs.Error
	if errors.As(err, &e) {
		msg = e.Message
	}
	return api.SyncError{Path: rel, Code: code, Message: msg}
}

// Manifest walks directory root (following a symlink at root itself, none
// beneath it) and calls emit for every entry, depth first in name order,
// with paths relative to root. With hash, regular files carry their
// SHA-256. ErrNotFound when root does not exist.
func Manifest(ctx context.Context, root string, hash bool, emit func(api.ManifestEntry) error) error {
	root, err := Clean(root)
	if err != nil {
		return err
	}
	fd, err := openat2(unix.AT_FDCWD, root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return classify(root, err)
	}
	w := &walker{root: root, hash: hash, emit: emit, buf: make([]byte, 64<<10)}
	return w.dir(ctx, fd, "")
}

// walker is one manifest walk.
type walker struct {
	root string
	hash bool
	emit func(api.ManifestEntry) error
	buf  []byte
	n    int
}

// dir emits the entries of directory fd (closing it).
func (w *walker) dir(ctx context.Context, fd int, prefix string) error {
	root := w.root
	f := os.NewFile(uintptr(fd), path.Join(root, prefix))
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return classify(path.Join(root, prefix), err)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		rel := path.Join(prefix, name)
		if isReserved(path.Join(root, rel)) {
			continue
		}
		if w.n >= MaxManifestEntries {
			return errdefs.New(errdefs.ErrResourceExhausted, fmt.Sprintf("more than %d entries under %s", MaxManifestEntries, root))
		}
		info, err := statAt(fd, name, rel)
		if err != nil {
			continue // removed while walking
		}
		w.n++
		e := api.ManifestEntry{Path: rel, Type: info.Type, Size: info.Size, Mode: info.Mode, LinkTarget: info.LinkTarget}
		if w.hash && e.Type == api.FileTypeFile {
			if ffd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0); err == nil {
				e.SHA256, _ = hashFD(ffd, w.buf)
			}
		}
		if err := w.emit(e); err != nil {
			return err
		}
		if e.Type == api.FileTypeDir {
			sub, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				continue // unreadable: listed, not entered
			}
			if err := w.dir(ctx, sub, rel); err != nil {
				return err
			}
		}
	}
	return nil
}

// hashFD returns the SHA-256 of regular file fd (closing it); empty for
// anything else. buf is the read buffer, reused across files: a tree of
// small files must not cost an allocation each.
func hashFD(fd int, buf []byte) (string, error) {
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", err
	}
	h := sha256.New()
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", err
		}
		if n == 0 {
			return hex.EncodeToString(h.Sum(nil)), nil
		}
		h.Write(buf[:n])
	}
}

// HashFiles returns the SHA-256 of the regular files among paths
// (relative to root, resolved beneath it, final symlinks not followed).
// Missing paths and other types are left out; a bad path is an error.
func HashFiles(ctx context.Context, root string, paths []string) (map[string]string, error) {
	root, err := Clean(root)
	if err != nil {
		return nil, err
	}
	if len(paths) > MaxSyncPaths {
		return nil, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("at most %d paths per request", MaxSyncPaths))
	}
	rootfd, err := openat2(unix.AT_FDCWD, root, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, classify(root, err)
	}
	defer unix.Close(rootfd)
	out := make(map[string]string, len(paths))
	buf := make([]byte, 64<<10)
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rel, err := CleanRel(p)
		if err != nil {
			return nil, err
		}
		fd, err := openBeneath(rootfd, rel, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY)
		if err != nil {
			continue
		}
		if sum, err := hashFD(fd, buf); err == nil && sum != "" {
			out[rel] = sum
		}
	}
	return out, nil
}

// extractor applies one tar stream beneath root. It keeps the parent
// directory of the last entry open: archives list siblings together.
type extractor struct {
	rootfd  int
	root    string
	max     int64
	owner   Owner
	lastDir string
	lastFD  int
	buf     []byte
}

func (x *extractor) close() {
	if x.lastFD >= 0 {
		unix.Close(x.lastFD)
		x.lastFD = -1
	}
}

// parent opens (creating missing components, 0755) the directory holding
// rel, beneath root.
func (x *extractor) parent(rel string) (int, string, error) {
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	if dir == x.lastDir && x.lastFD >= 0 {
		return x.lastFD, base, nil
	}
	x.close()
	if dir == "" {
		fd, err := unix.Dup(x.rootfd)
		if err != nil {
			return -1, "", classify(x.root, err)
		}
		x.lastDir, x.lastFD = dir, fd
		return fd, base, nil
	}
	fd, err := openBeneath(x.rootfd, dir, unix.O_PATH|unix.O_DIRECTORY)
	if err == unix.ENOENT {
		fd, err = x.makeDirs(dir)
	}
	if err != nil {
		return -1, "", relError(dir, err)
	}
	x.lastDir, x.lastFD = dir, fd
	return fd, base, nil
}

// makeDirs creates the missing components of dir, each beneath root.
func (x *extractor) makeDirs(dir string) (int, error) {
	cur, err := unix.Dup(x.rootfd)
	if err != nil {
		return -1, err
	}
	sofar := ""
	for _, c := range strings.Split(dir, "/") {
		sofar = path.Join(sofar, c)
		switch err := unix.Mkdirat(cur, c, 0o755); err {
		case nil:
			if err := unix.Fchownat(cur, c, x.owner.UID, x.owner.GID, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				unix.Close(cur)
				return -1, err
			}
		case unix.EEXIST:
		default:
			unix.Close(cur)
			return -1, err
		}
		unix.Close(cur)
		if cur, err = openBeneath(x.rootfd, sofar, unix.O_PATH|unix.O_DIRECTORY); err != nil {
			return -1, err
		}
	}
	return cur, nil
}

// Extract applies the tar stream r beneath directory root (created when
// missing): directories, regular files and symlinks, with their permission
// bits and modification times. Each entry is resolved beneath root
// (openat2 RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS from root's descriptor);
// absolute names, "..", a symlinked parent pointing outside, entries over
// max bytes and other entry types are reported in Errors and skipped, and
// the rest goes on. Regular files are written to a temporary file and
// renamed into place, symlinks created beside and renamed too, so a reader
// sees the old or the new entry, never a partial one; whatever was at the
// name (a file, a symlink, a directory with its contents) is replaced:
// the archive is authoritative. What it writes belongs to owner (the
// tree is the user's mirror). Files are not fsynced: the tree is a
// mirror of the client's, which a crash is repaired from.
//
// The stream is read once, without buffering a whole file. A malformed or
// cut stream stops the extraction with ErrInvalidArgument; what was
// written before stays, entry by entry complete.
func Extract(ctx context.Context, root string, r io.Reader, max int64, owner Owner) (api.ArchiveResult, error) {
	res := api.ArchiveResult{Written: []api.SyncEntry{}, Errors: []api.SyncError{}}
	root, err := Clean(root)
	if err != nil {
		return res, err
	}
	res.Root = root
	if isReserved(root) {
		return res, reservedError(root)
	}
	if max <= 0 {
		max = DefaultMaxFileSize
	}
	pd, err := makeParents(root, owner)
	if err != nil {
		return res, err
	}
	defer pd.close()
	x := &extractor{rootfd: pd.fd, root: root, max: max, owner: owner, lastFD: -1, buf: make([]byte, 64<<10)}
	defer x.close()
	body := &readErr{r: r}
	tr := tar.NewReader(body)
	for {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("extraction into %s: %w: %w", root, err, errdefs.ErrUnavailable)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return res, nil
		}
		if err != nil {
			return res, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("archive malformed or cut after %d entries: %v", len(res.Written)+len(res.Errors), err))
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		rel, err := CleanRel(name)
		if err == nil && isReserved(path.Join(root, rel)) {
			err = reservedError(path.Join(root, rel))
		}
		if err != nil {
			res.Errors = append(res.Errors, syncError(hdr.Name, err))
			continue
		}
		var typ string
		switch hdr.Typeflag {
		case tar.TypeDir:
			typ, err = api.FileTypeDir, x.dir(rel, hdr)
		case tar.TypeReg:
			typ = api.FileTypeFile
			if hdr.Size > max {
				err = TooLarge(max)
				break
			}
			err = x.file(rel, hdr, tr)
			if body.err != nil || errors.Is(err, io.ErrUnexpectedEOF) {
				return res, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("archive cut in the middle of %s", rel))
			}
		case tar.TypeSymlink:
			typ, err = api.FileTypeSymlink, x.symlink(rel, hdr)
		default:
			err = errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%s: entry type %q is not supported (directories, regular files and symlinks only)", rel, hdr.Typeflag))
		}
		if err != nil {
			res.Errors = append(res.Errors, syncError(rel, err))
			continue
		}
		e := api.SyncEntry{Path: rel, Type: typ}
		if typ == api.FileTypeFile {
			e.Size = hdr.Size
			res.Bytes += hdr.Size
		}
		res.Written = append(res.Written, e)
	}
}

type writerOnly struct{ io.Writer }

func perm(hdr *tar.Header) uint32 { return uint32(hdr.Mode) & 0o7777 }

// replaceAt removes whatever is at base in pfd unless it is a directory and
// keepDir is set; it reports whether a directory is left there.
func replaceAt(pfd int, base, full string, keepDir bool) (bool, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return false, nil
		}
		return false, classify(full, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if keepDir {
			return true, nil
		}
		return false, removeAll(pfd, base, full)
	}
	if keepDir {
		if err := unix.Unlinkat(pfd, base, 0); err != nil && err != unix.ENOENT {
			return false, classify(full, err)
		}
	}
	return false, nil
}

func (x *extractor) dir(rel string, hdr *tar.Header) error {
	pfd, base, err := x.parent(rel)
	if err != nil {
		return err
	}
	full := path.Join(x.root, rel)
	isDir, err := replaceAt(pfd, base, full, true)
	if err != nil {
		return err
	}
	if !isDir {
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil && err != unix.EEXIST {
			return classify(full, err)
		}
	}
	if err := unix.Fchownat(pfd, base, x.owner.UID, x.owner.GID, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return classify(full, err)
	}
	// Fchmodat, not the mkdir mode: the umask must not change what was sent.
	if err := unix.Fchmodat(pfd, base, perm(hdr), 0); err != nil {
		return classify(full, err)
	}
	if x.lastDir == rel {
		x.close() // replaced: a cached descriptor would be stale
	}
	return nil
}

func (x *extractor) file(rel string, hdr *tar.Header, r io.Reader) error {
	pfd, base, err := x.parent(rel)
	if err != nil {
		return err
	}
	full := path.Join(x.root, rel)
	tmp, f, err := createTemp(pfd, base)
	if err != nil {
		return classify(full, err)
	}
	renamed := false
	defer func() {
		if f != nil {
			f.Close()
		}
		if !renamed {
			_ = unix.Unlinkat(pfd, tmp, 0)
		}
	}()
	// writerOnly hides *os.File's ReadFrom, which would allocate a buffer
	// per file instead of using x.buf.
	n, err := io.CopyBuffer(writerOnly{f}, r, x.buf)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if n != hdr.Size {
		return io.ErrUnexpectedEOF
	}
	fd := int(f.Fd())
	if err := unix.Fchown(fd, x.owner.UID, x.owner.GID); err != nil {
		return classify(full, err)
	}
	if err := unix.Fchmod(fd, perm(hdr)); err != nil {
		return classify(full, err)
	}
	if !hdr.ModTime.IsZero() {
		ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
		_ = unix.UtimesNanoAt(pfd, tmp, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return classify(full, err)
	}
	if _, err := replaceAt(pfd, base, full, false); err != nil {
		return err
	}
	if err := unix.Renameat(pfd, tmp, pfd, base); err != nil {
		return classify(full, err)
	}
	renamed = true
	if x.lastDir == rel {
		x.close()
	}
	return nil
}

func (x *extractor) symlink(rel string, hdr *tar.Header) error {
	if hdr.Linkname == "" || len(hdr.Linkname) > maxPath {
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%s: bad symlink target", rel))
	}
	pfd, base, err := x.parent(rel)
	if err != nil {
		return err
	}
	full := path.Join(x.root, rel)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	tmp := "." + truncate(base, 100) + ".chaser-link-" + hex.EncodeToString(b)
	// The target is stored as written and never resolved: a link to
	// /etc/passwd is a link, not a copy.
	if err := unix.Symlinkat(hdr.Linkname, pfd, tmp); err != nil {
		return classify(full, err)
	}
	if err := unix.Fchownat(pfd, tmp, x.owner.UID, x.owner.GID, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		_ = unix.Unlinkat(pfd, tmp, 0)
		return classify(full, err)
	}
	if _, err := replaceAt(pfd, base, full, false); err != nil {
		_ = unix.Unlinkat(pfd, tmp, 0)
		return err
	}
	if err := unix.Renameat(pfd, tmp, pfd, base); err != nil {
		_ = unix.Unlinkat(pfd, tmp, 0)
		return classify(full, err)
	}
	if x.lastDir == rel {
		x.close()
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Prune removes each of paths (relative to root, resolved beneath it) with
// everything beneath it; a symlink is removed, never its target. Missing
// paths count as removed; a bad path or a failure is reported in Errors
// and the others go on. ErrNotFound when root does not exist.
func Prune(root string, paths []string) (api.PruneResult, error) {
	res := api.PruneResult{Removed: []string{}, Errors: []api.SyncError{}}
	root, err := Clean(root)
	if err != nil {
		return res, err
	}
	res.Root = root
	if len(paths) > MaxSyncPaths {
		return res, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("at most %d paths per request", MaxSyncPaths))
	}
	rootfd, err := openat2(unix.AT_FDCWD, root, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return res, classify(root, err)
	}
	defer unix.Close(rootfd)
	for _, p := range paths {
		rel, err := CleanRel(p)
		if err == nil && isReserved(path.Join(root, rel)) {
			err = reservedError(path.Join(root, rel))
		}
		if err != nil {
			res.Errors = append(res.Errors, syncError(p, err))
			continue
		}
		if err := pruneOne(rootfd, root, rel); err != nil {
			res.Errors = append(res.Errors, syncError(rel, err))
			continue
		}
		res.Removed = append(res.Removed, rel)
	}
	return res, nil
}

func pruneOne(rootfd int, root, rel string) error {
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	var pfd int
	var err error
	if dir == "" {
		pfd, err = unix.Dup(rootfd)
	} else {
		pfd, err = openBeneath(rootfd, dir, unix.O_PATH|unix.O_DIRECTORY)
	}
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return nil // its parent is gone: so is it
	}
	if err != nil {
		return relError(rel, err)
	}
	defer unix.Close(pfd)
	return removeAll(pfd, base, path.Join(root, rel))
}
