package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/userns"
)

// OCI whiteout markers (image-spec layer.md). Unpack turns them into what
// overlayfs reads: a 0:0 character device for a deleted path and the
// trusted.overlay.opaque xattr for a directory whose lower contents are
// hidden.
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
	opaqueXattr    = "trusted.overlay.opaque"
)

// Unpack writes the layer tar stream r into dir, which must exist and be
// empty. Ownership, modes, times, file capabilities and hard links are kept;
// OCI whiteouts become overlayfs whiteouts. It refuses, with
// errdefs.ErrUnprocessable, entries that would land outside dir (".."
// components, hard links out of the layer, paths through symlinks that
// leave it).
//
// Character and block devices are skipped and counted, never created: every
// debootstrap or `docker import` root filesystem has /dev/null, /dev/console
// and the like, Docker, podman and containerd accept such images, and a
// sandbox gets its /dev from the runtime anyway. A device node in a layer
// could only give a sandbox a door to host hardware (or, as a 0:0 device,
// act as an overlay whiteout). FIFOs are created, as Docker does: a named
// pipe reaches nothing outside the sandbox and programs expect theirs.
// All file system access goes through an
// os.Root, so no symlink in the layer can make it touch a path outside dir.
// On error dir is left half-written: the caller unpacks into a temporary
// directory and removes it.
func Unpack(r io.Reader, dir string) (UnpackStats, error) {
	return UnpackShifted(r, dir, userns.Remap{})
}

// UnpackShifted is Unpack with every owner moved into the range m (uid 0
// becomes m.Base), for sandboxes whose root is m.Base on the host
// (--userns-remap). An owner beyond the range cannot be mapped: the layer
// is refused with errdefs.ErrUnprocessable, as Docker refuses it.
func UnpackShifted(r io.Reader, dir string, m userns.Remap) (UnpackStats, error) {
	var st UnpackStats
	root, err := os.OpenRoot(dir)
	if err != nil {
		return st, err
	}
	defer root.Close()
	type dirTime struct {
		name  string
		mtime time.Time
	}
	var dirs []dirTime
	skipped := map[string]bool{} // device entries not created, for hard links to them
	buf := make([]byte, 1<<20)
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("layer is not a valid tar stream: %v: %w", err, errdefs.ErrUnprocessable)
		}
		st.Entries++
		name, err := cleanName(hdr.Name)
		if err != nil {
			return st, err
		}
		if name == "." {
			// The layer root itself: keep its mode and owner.
			if hdr.Typeflag == tar.TypeDir {
				if err := setAttrs(root, ".", hdr, m); err != nil {
					return st, err
				}
			}
			continue
		}
		parent, base := path.Split(name)
		parent = strings.TrimSuffix(parent, "/")
		if parent == "" {
			parent = "."
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			if err := whiteout(root, parent, base); err != nil {
				return st, err
			}
			continue
		}
		if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock {
			st.SkippedDevices++
			skipped[name] = true
			continue
		}
		if hdr.Typeflag == tar.TypeLink {
			if target, err := cleanName(hdr.Linkname); err == nil && skipped[target] {
				st.SkippedDevices++
				skipped[name] = true
				continue
			}
		}
		if err := root.MkdirAll(parent, 0o755); err != nil {
			return st, classify(name, err)
		}
		delete(skipped, name) // a later entry of the same name replaces the device
		// A later entry replaces an earlier one of the same name, except
		// that a directory stays a directory (tar streams repeat them).
		if fi, err := root.Lstat(name); err == nil {
			if !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
				if err := root.RemoveAll(name); err != nil {
					return st, classify(name, err)
				}
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return st, classify(name, err)
			}
			if err := setAttrs(root, name, hdr, m); err != nil {
				return st, err
			}
			dirs = append(dirs, dirTime{name, hdr.ModTime})
		case tar.TypeReg, tar.TypeRegA:
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
			if err != nil {
				return st, classify(name, err)
			}
			n, err := io.CopyBuffer(f, tr, buf)
			st.Bytes += n
			if err == nil {
				err = fsetXattrs(f, hdr)
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return st, fmt.Errorf("write %s: %w", name, err)
			}
			if err := setAttrs(root, name, hdr, m); err != nil {
				return st, err
			}
			if err := root.Chtimes(name, hdr.ModTime, hdr.ModTime); err != nil {
				return st, classify(name, err)
			}
		case tar.TypeSymlink:
			// The target is stored as is: it is resolved inside the
			// sandbox's root at run time, where absolute targets are fine.
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return st, classify(name, err)
			}
			if err := lchown(root, name, hdr, m); err != nil {
				return st, err
			}
		case tar.TypeLink:
			target, err := cleanName(hdr.Linkname)
			if err != nil || target == "." {
				return st, fmt.Errorf("layer entry %s: hard link to %q leaves the layer: %w", name, hdr.Linkname, errdefs.ErrUnprocessable)
			}
			if err := linkInRoot(root, target, name); err != nil {
				return st, err
			}
		case tar.TypeFifo:
			if err := mknod(root, parent, base, unix.S_IFIFO|uint32(hdr.Mode&0o7777), 0); err != nil {
				return st, classify(name, err)
			}
			if err := setAttrs(root, name, hdr, m); err != nil {
				return st, err
			}
		case tar.TypeXGlobalHeader:
			// PAX global header: metadata only.
		default:
			return st, fmt.Errorf("layer entry %s: unsupported tar entry type %q: %w", name, hdr.Typeflag, errdefs.ErrUnprocessable)
		}
	}
	// Directory times last: writing their entries changed them. Deepest
	// first does not matter for mtimes; any order works.
	for _, d := range dirs {
		if err := root.Chtimes(d.name, d.mtime, d.mtime); err != nil {
			return st, classify(d.name, err)
		}
	}
	return st, nil
}

// cleanName turns a tar entry name into a clean path relative to the layer
// root, or refuses it when it climbs out with "..".
func cleanName(name string) (string, error) {
	n := strings.TrimLeft(name, "/")
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", fmt.Errorf("layer entry %q leaves the layer root: %w", name, errdefs.ErrUnprocessable)
		}
	}
	n = path.Clean(n)
	if n == "" {
		n = "."
	}
	return n, nil
}

// classify marks os.Root's refusal to leave the root (a path through a
// symlink pointing out of the layer) as bad input; other errors are the
// host's.
func classify(name string, err error) error {
	if strings.Contains(err.Error(), "path escapes from parent") || errors.Is(err, unix.ELOOP) {
		return fmt.Errorf("layer entry %s leaves the layer root through a symlink: %w", name, errdefs.ErrUnprocessable)
	}
	// The layer started empty: a clash with what exists comes from the
	// layer's own entries.
	if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("layer entry %s lies under a path the layer has as a file: %w", name, errdefs.ErrUnprocessable)
	}
	return fmt.Errorf("layer entry %s: %w", name, err)
}

// whiteout records the deletion of parent/name (or, for the opaque marker,
// of everything lower layers hold in parent).
func whiteout(root *os.Root, parent, base string) error {
	if err := root.MkdirAll(parent, 0o755); err != nil {
		return classify(parent, err)
	}
	if base == whiteoutOpaque {
		d, err := root.Open(parent)
		if err != nil {
			return classify(parent, err)
		}
		defer d.Close()
		if err := unix.Fsetxattr(int(d.Fd()), opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("mark %s opaque: %w", parent, err)
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil // other AUFS metadata (.wh..wh.plnk ...): nothing to do on overlayfs
	}
	target := strings.TrimPrefix(base, whiteoutPrefix)
	if target == "" || target == "." || target == ".." {
		return fmt.Errorf("layer whiteout %s/%s names nothing: %w", parent, base, errdefs.ErrUnprocessable)
	}
	full := path.Join(parent, target)
	if err := root.RemoveAll(full); err != nil {
		return classify(full, err)
	}
	return mknod(root, parent, target, unix.S_IFCHR, 0)
}

// mknod makes a node in the directory parent of root. The parent is opened
// through root, so the node cannot land outside it.
func mknod(root *os.Root, parent, base string, mode uint32, dev int) error {
	d, err := root.Open(parent)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Mknodat(int(d.Fd()), base, mode, dev)
}

// linkInRoot hard-links target to name, both inside root. os.Root.Link
// refuses a target outside the root; a target that is itself a symlink is
// linked as the symlink, never followed.
func linkInRoot(root *os.Root, target, name string) error {
	fi, err := root.Lstat(target)
	if err != nil {
		return fmt.Errorf("layer entry %s: hard link target %s is not in this layer: %w", name, target, errdefs.ErrUnprocessable)
	}
	if fi.IsDir() {
		return fmt.Errorf("layer entry %s: hard link to directory %s: %w", name, target, errdefs.ErrUnprocessable)
	}
	if err := root.Link(target, name); err != nil {
		return classify(name, err)
	}
	return nil
}

// lchown gives name the header's owner, moved into the range m.
func lchown(root *os.Root, name string, hdr *tar.Header, m userns.Remap) error {
	uid, err := m.Host(hdr.Uid)
	if err != nil {
		return fmt.Errorf("layer entry %s: owner: %w", name, err)
	}
	gid, err := m.Host(hdr.Gid)
	if err != nil {
		return fmt.Errorf("layer entry %s: group: %w", name, err)
	}
	if err := root.Lchown(name, uid, gid); err != nil {
		return classify(name, err)
	}
	return nil
}

// setAttrs applies owner (moved into the range m) and mode of a header
// (not a symlink). Owner first: chown clears set-id bits.
func setAttrs(root *os.Root, name string, hdr *tar.Header, m userns.Remap) error {
	if err := lchown(root, name, hdr, m); err != nil {
		return err
	}
	mode := fs.FileMode(hdr.Mode & 0o777)
	if hdr.Mode&04000 != 0 {
		mode |= fs.ModeSetuid
	}
	if hdr.Mode&02000 != 0 {
		mode |= fs.ModeSetgid
	}
	if hdr.Mode&01000 != 0 {
		mode |= fs.ModeSticky
	}
	if err := root.Chmod(name, mode); err != nil {
		return classify(name, err)
	}
	return nil
}

// fsetXattrs applies the extended attributes of a regular file that make
// sense in an image: file capabilities and user attributes. trusted.* (which
// overlayfs itself interprets) and other security labels are dropped.
func fsetXattrs(f *os.File, hdr *tar.Header) error {
	for k, v := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || !(attr == "security.capability" || strings.HasPrefix(attr, "user.")) {
			continue
		}
		if err := unix.Fsetxattr(int(f.Fd()), attr, []byte(v), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("xattr %s: %w", attr, err)
		}
	}
	return nil
}

// syncDir flushes the file system holding dir, so an unpacked layer is on
// disk before the state names it (one syncfs instead of an fsync per file).
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
