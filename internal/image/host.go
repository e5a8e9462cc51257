package image

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/chaserhq/chaser/internal/runtime"
	"github.com/chaserhq/chaser/internal/userns"
)

// hostEtc lists what of the host's /etc a sandbox sees: configuration that
// programs need to run, and nothing secret (no shadow files, no SSH host
// keys, no private TLS keys, no credentials of package managers).
var hostEtc = []string{
	"alternatives", "bash.bashrc", "profile", "profile.d", "inputrc", "skel",
	"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone",
	"os-release", "debian_version", "issue", "lsb-release", "shells", "login.defs",
	"ssl/certs", "ssl/openssl.cnf", "ca-certificates", "ca-certificates.conf",
	"mime.types", "protocols", "services", "rpc", "ethertypes", "gai.conf",
	"host.conf", "networks", "terminfo", "magic", "magic.mime",
	"python3", "python3.11", "perl", "vim", "fonts",
	"java-17-openjdk", "gitconfig", "mailcap",
}

// hostDirs are the host directories a sandbox sees read-only (copy-on-write
// through its own overlay). Where the host has them as symlinks into /usr
// (merged /usr), the skeleton gets the same symlink instead.
var hostDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// entry is one file of the skeleton.
type entry struct {
	mode    fs.FileMode // fs.ModeDir, fs.ModeSymlink or a regular file's perm
	content string      // file content or symlink target
}

// hostSkeleton computes the skeleton tree and the overlays of the host image.
func hostSkeleton() (map[string]entry, []runtime.Overlay) {
	tree := map[string]entry{}
	dir := func(p string, perm fs.FileMode) { tree[p] = entry{mode: fs.ModeDir | perm} }
	for _, d := range []string{"proc", "sys", "dev", "etc", "home", "mnt", "opt", "run", "srv", "var", "var/lib", "var/cache", "var/log", "workspace", "usr"} {
		dir(d, 0o755)
	}
	dir("tmp", 0o1777|fs.ModeSticky)
	dir("var/tmp", 0o1777|fs.ModeSticky)
	dir("root", 0o700)

	var overlays []runtime.Overlay
	for _, d := range hostDirs {
		fi, err := os.Lstat(d)
		if err != nil {
			continue
		}
		name := strings.TrimPrefix(d, "/")
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(d)
			if err == nil {
				tree[name] = entry{mode: fs.ModeSymlink, content: target}
			}
			continue
		}
		if fi.IsDir() {
			dir(name, 0o755)
			overlays = append(overlays, runtime.Overlay{Target: d, Lower: []string{d}})
		}
	}

	shell := "/bin/sh"
	if _, err := os.Stat("/bin/bash"); err == nil {
		shell = "/bin/bash"
	}
	tree["etc/passwd"] = entry{mode: 0o644, content: "root:x:0:0:root:/root:" + shell + "\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"}
	tree["etc/group"] = entry{mode: 0o644, content: "root:x:0:\ntty:x:5:\nusers:x:100:\nnogroup:x:65534:\n"}
	tree["etc/nsswitch.conf"] = entry{mode: 0o644, content: "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n"}
	for _, name := range hostEtc {
		copyTree(tree, "/etc", name)
	}
	return tree, overlays
}

// copyTree adds /etc/name (a file, symlink or directory, recursively) to tree.
func copyTree(tree map[string]entry, root, name string) {
	_ = filepath.WalkDir(filepath.Join(root, name), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel("/", p)
		fi, err := os.Lstat(p)
		if err != nil {
			return nil
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if t, err := os.Readlink(p); err == nil {
				tree[rel] = entry{mode: fs.ModeSymlink, content: t}
			}
		case fi.IsDir():
			tree[rel] = entry{mode: fs.ModeDir | 0o755}
		case fi.Mode().IsRegular() && fi.Size() < 4<<20:
			if b, err := os.ReadFile(p); err == nil {
				tree[rel] = entry{mode: fi.Mode().Perm(), content: string(b)}
			}
		}
		return nil
	})
	// Parents of the copied path.
	for d := filepath.Dir(filepath.Join("etc", name)); d != "." && d != "etc"; d = filepath.Dir(d) {
		if _, ok := tree[d]; !ok {
			tree[d] = entry{mode: fs.ModeDir | 0o755}
		}
	}
}

// buildHost writes the host image's skeleton under dir/host/HASH, named by
// the hash of its content so that a changed host (a new /etc/ld.so.cache)
// gets a new skeleton while running sandboxes keep the old one as their
// lower layer. Under the remap m the skeleton's files belong to its range.
func buildHost(dir string, m userns.Remap) (*Image, error) {
	tree, overlays := hostSkeleton()
	paths := make([]string, 0, len(tree))
	for p := range tree {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	h := sha256.New()
	for _, p := range paths {
		e := tree[p]
		h.Write([]byte(p + "\x00" + e.mode.String() + "\x00" + e.content + "\x00"))
	}
	sum := hex.EncodeToString(h.Sum(nil))[:16]
	root := filepath.Join(dir, "host", sum)
	if _, err := os.Stat(root); err != nil {
		tmp := root + ".tmp"
		_ = os.RemoveAll(tmp)
		if err := writeTree(tmp, paths, tree); err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
		if m.Enabled() {
			if err := m.ShiftTree(tmp); err != nil {
				os.RemoveAll(tmp)
				return nil, err
			}
		}
		if err := os.Rename(tmp, root); err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
	}
	img := &Image{
		Ref: HostRef,
		Env: []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"HOME=/root", "USER=root", "LANG=C.UTF-8",
		},
	}
	img.Overlays = append([]runtime.Overlay{{Target: "/", Lower: []string{root}}}, overlays...)
	return img, nil
}

func writeTree(root string, paths []string, tree map[string]entry) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	for _, p := range paths { // sorted: parents come first
		e := tree[p]
		full := filepath.Join(root, p)
		var err error
		switch {
		case e.mode&fs.ModeDir != 0:
			if err = os.MkdirAll(full, 0o755); err == nil {
				err = os.Chmod(full, e.mode&(fs.ModePerm|fs.ModeSticky))
			}
		case e.mode&fs.ModeSymlink != 0:
			err = os.Symlink(e.content, full)
		default:
			err = os.WriteFile(full, []byte(e.content), e.mode.Perm())
		}
		if err != nil {
			return err
		}
	}
	return nil
}
