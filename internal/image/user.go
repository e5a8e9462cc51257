package image

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/passwd"
)

// resolveUser turns the image's User ("name", "uid", "name:group",
// "uid:gid", ...) into ids using the image's own /etc/passwd and
// /etc/group, read from its layers on the host (as Docker does at create
// time), by the same rules the agent applies to a request's user.
func (img *Image) resolveUser() error {
	lower := img.Overlays[0].Lower
	pw, _ := readImageFile(lower, "etc/passwd")
	gr, _ := readImageFile(lower, "etc/group")
	u, err := passwd.Resolve(strings.TrimSuffix(img.User, ":"), pw, gr)
	if err != nil {
		return errdefs.New(errdefs.ErrUnprocessable, fmt.Sprintf("image %s runs as %s", img.Ref, err))
	}
	img.UID, img.GID, img.Groups, img.Home = u.UID, u.GID, u.Groups, u.Home
	return nil
}

// readImageFile reads rel (e.g. "etc/passwd") as the image's overlay would
// show it: from the topmost layer that has it, stopping at a whiteout or at
// an opaque parent directory. Reads go through os.Root, so a symlink in the
// image cannot make the host read one of its own files. At most 1 MiB.
func readImageFile(lower []string, rel string) ([]byte, error) {
	for _, dir := range lower {
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil, err
		}
		b, stop, err := readLayerFile(root, rel)
		root.Close()
		if err == nil || stop {
			return b, err
		}
	}
	return nil, fs.ErrNotExist
}

func readLayerFile(root *os.Root, rel string) (b []byte, stop bool, err error) {
	if fi, err := root.Lstat(rel); err == nil {
		if fi.Mode()&fs.ModeCharDevice != 0 || fi.Mode()&fs.ModeDevice != 0 {
			return nil, true, fs.ErrNotExist // whiteout
		}
		f, err := root.Open(rel)
		if err != nil {
			return nil, true, err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, 1<<20))
		return b, true, err
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, true, err
	}
	// Not in this layer: an opaque or whited-out parent hides lower ones.
	for d := path.Dir(rel); d != "."; d = path.Dir(d) {
		fi, err := root.Lstat(d)
		if err != nil {
			continue
		}
		if fi.Mode()&fs.ModeDevice != 0 {
			return nil, true, fs.ErrNotExist
		}
		if fi.IsDir() && isOpaque(filepath.Join(root.Name(), d)) {
			return nil, true, fs.ErrNotExist
		}
	}
	return nil, false, fs.ErrNotExist
}

func isOpaque(dir string) bool {
	v := make([]byte, 4)
	n, err := unix.Lgetxattr(dir, opaqueXattr, v)
	return err == nil && string(v[:n]) == "y"
}
