package image

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// resolveUser turns the image's User ("name", "uid", "name:group",
// "uid:gid", ...) into ids using the image's own /etc/passwd and
// /etc/group, read from its layers on the host (as Docker does at create
// time). A numeric user needs no passwd entry; a name must have one.
// Supplementary groups are the /etc/group entries listing the user.
func (img *Image) resolveUser() error {
	lower := img.Overlays[0].Lower
	passwd, _ := readImageFile(lower, "etc/passwd")
	spec := img.User
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	var name string
	img.Home = "/"
	if userPart == "" {
		userPart = "0"
	}
	found := false
	if n, err := strconv.ParseUint(userPart, 10, 32); err == nil {
		img.UID = uint32(n)
		for _, f := range parseColonFile(passwd, 7) {
			if f[2] == userPart {
				name, found = f[0], true
				if g, err := strconv.ParseUint(f[3], 10, 32); err == nil {
					img.GID = uint32(g)
				}
				img.Home = f[5]
				break
			}
		}
	} else {
		for _, f := range parseColonFile(passwd, 7) {
			if f[0] == userPart {
				u, err1 := strconv.ParseUint(f[2], 10, 32)
				g, err2 := strconv.ParseUint(f[3], 10, 32)
				if err1 != nil || err2 != nil {
					return errdefs.New(errdefs.ErrUnprocessable, fmt.Sprintf("image %s: /etc/passwd entry of user %q is malformed", img.Ref, userPart))
				}
				img.UID, img.GID, img.Home, name, found = uint32(u), uint32(g), f[5], f[0], true
				break
			}
		}
		if !found {
			return errdefs.New(errdefs.ErrUnprocessable, fmt.Sprintf("image %s runs as user %q, which its /etc/passwd does not have", img.Ref, userPart))
		}
	}
	if !found && img.UID == 0 {
		img.Home = "/root"
	}
	group, _ := readImageFile(lower, "etc/group")
	groups := parseColonFile(group, 4)
	if hasGroup && groupPart != "" {
		if g, err := strconv.ParseUint(groupPart, 10, 32); err == nil {
			img.GID = uint32(g)
		} else {
			ok := false
			for _, f := range groups {
				if f[0] == groupPart {
					if g, err := strconv.ParseUint(f[2], 10, 32); err == nil {
						img.GID, ok = uint32(g), true
					}
					break
				}
			}
			if !ok {
				return errdefs.New(errdefs.ErrUnprocessable, fmt.Sprintf("image %s runs as group %q, which its /etc/group does not have", img.Ref, groupPart))
			}
		}
	}
	if name != "" {
		for _, f := range groups {
			for _, m := range strings.Split(f[3], ",") {
				if m == name {
					if g, err := strconv.ParseUint(f[2], 10, 32); err == nil && uint32(g) != img.GID {
						img.Groups = append(img.Groups, uint32(g))
					}
				}
			}
		}
	}
	return nil
}

// parseColonFile splits passwd/group lines into n fields, skipping
// comments and malformed lines.
func parseColonFile(b []byte, n int) [][]string {
	var out [][]string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < n {
			continue
		}
		out = append(out, f)
	}
	return out
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
