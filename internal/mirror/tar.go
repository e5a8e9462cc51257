package mirror

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/chaserhq/chaser/api"
)

// sent is what was put into a tar stream for one path: the state the
// remote copy will have once the entry is applied.
type sent struct {
	Entry
	SHA string
}

// writeTar writes the entries of paths (relative to root, parents first)
// to w as one tar stream, reading each file as it goes (never a whole
// file in memory) and hashing it on the way. Paths gone since they were
// listed are left out; a file that shrinks while read is padded and left
// out of the returned map, so it is not taken as synced (its change is
// seen again by the watcher or the next reconcile). Files that cannot be
// opened (permissions) are left out and reported by unreadable.
func writeTar(w io.Writer, root string, paths []string, unreadable func(rel string, err error)) (map[string]sent, error) {
	tw := tar.NewWriter(w)
	out := make(map[string]sent, len(paths))
	buf := make([]byte, 64<<10)
	for _, rel := range paths {
		abs := filepath.Join(root, filepath.FromSlash(rel))
		fi, err := os.Lstat(abs)
		if err != nil {
			continue
		}
		e, ok := entryOf(abs, fi)
		if !ok {
			continue
		}
		hdr := &tar.Header{Name: rel, Mode: int64(e.Mode), ModTime: e.MTime, Format: tar.FormatPAX}
		switch e.Type {
		case api.FileTypeDir:
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
			if err := tw.WriteHeader(hdr); err != nil {
				return out, err
			}
			out[rel] = sent{Entry: e}
		case api.FileTypeSymlink:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.Link
			if err := tw.WriteHeader(hdr); err != nil {
				return out, err
			}
			out[rel] = sent{Entry: e}
		case api.FileTypeFile:
			s, err := writeFile(tw, abs, hdr, buf)
			var ue unreadableError
			if errors.As(err, &ue) {
				if unreadable != nil {
					unreadable(rel, ue.err)
				}
				continue
			}
			if err != nil {
				return out, err
			}
			if s != nil {
				out[rel] = *s
			}
		}
	}
	return out, tw.Close()
}

// writeFile adds the regular file abs; nil when it is gone or changed
// while being read.
func writeFile(tw *tar.Writer, abs string, hdr *tar.Header, buf []byte) (*sent, error) {
	f, err := os.OpenFile(abs, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrPermission) {
		return nil, unreadableError{err}
	}
	if err != nil {
		return nil, nil // gone or replaced by a symlink: seen again later
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, nil
	}
	e, _ := entryOf(abs, fi)
	hdr.Typeflag, hdr.Size, hdr.Mode, hdr.ModTime = tar.TypeReg, fi.Size(), int64(e.Mode), fi.ModTime()
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(tw, h), io.LimitReader(f, fi.Size()), buf)
	if err != nil && !isReadErr(err) {
		return nil, err
	}
	if n < fi.Size() {
		// It shrank: the header promised more, so pad with zeros.
		if _, err := io.CopyN(tw, zeros{}, fi.Size()-n); err != nil {
			return nil, err
		}
		return nil, nil
	}
	return &sent{Entry: e, SHA: hex.EncodeToString(h.Sum(nil))}, nil
}

// isReadErr tells a failing local read (the file changed) from a failing
// tar writer (the upload broke).
func isReadErr(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe)
}

// unreadableError is a local file that cannot be opened.
type unreadableError struct{ err error }

func (u unreadableError) Error() string { return u.err.Error() }

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// hashFile returns the hex SHA-256 of local file abs, reading through buf.
func hashFile(abs string, buf []byte) (string, error) {
	f, err := os.OpenFile(abs, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", abs)
	}
	h := sha256.New()
	// A plain read loop: io.CopyBuffer would take *os.File's WriteTo and
	// allocate a buffer per file.
	for {
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			return hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return "", err
		}
	}
}
