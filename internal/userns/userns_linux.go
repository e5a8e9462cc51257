package userns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// Own makes dir, a writable directory a sandbox mounts (an overlay's upper
// or work directory, a workspace), belong to the sandbox's root: the one
// place where Chaser hands host directories to the range, so that a disk
// quota's loop-mounted upper (or anything else that makes such
// directories) goes through it too. A directory made under another setting
// (a workspace from before the remap, owned by host root) has its whole
// tree shifted once (ShiftTree), so its files keep their owners as the
// sandbox sees them. Off, Own does nothing.
func (m Remap) Own(dir string) error {
	if !m.Enabled() {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return err
	}
	if st.Uid == m.Base && st.Gid == m.Base {
		return nil
	}
	return m.ShiftTree(dir)
}

// ShiftTree moves the owners of everything under root (root last, so an
// interrupted shift is finished by the next Own) into the range: an id
// below Size becomes Base+id; ids already shifted, or beyond the range,
// stay. Set-id bits, which chown clears, are restored. Hard links are
// shifted once.
func (m Remap) ShiftTree(root string) error {
	var rootErr error
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		return m.shift(p)
	})
	if err == nil {
		rootErr = m.shift(root)
	}
	return errors.Join(err, rootErr)
}

func (m Remap) shift(p string) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return err
	}
	uid, gid := st.Uid, st.Gid
	if uid < m.Size {
		uid += m.Base
	}
	if gid < m.Size {
		gid += m.Base
	}
	if uid == st.Uid && gid == st.Gid {
		return nil
	}
	if err := unix.Lchown(p, int(uid), int(gid)); err != nil {
		return fmt.Errorf("shift owner of %s: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK && st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
		if err := unix.Chmod(p, st.Mode&0o7777); err != nil {
			return fmt.Errorf("restore mode of %s: %w", p, err)
		}
	}
	return nil
}

// IDMap mounts the host directory src read-only at dst (which must exist)
// as an idmapped mount: its files appear owned by the range (host root as
// Base) to whoever looks through dst. Overlays of host directories Chaser
// does not own (the host image's /usr) use it as their lower layer, so
// that copy-ups give the sandbox files it owns. Only src's own mount is
// cloned, not mounts beneath it. The kernel needs idmapped mount support
// for src's file system (ext4, xfs, btrfs, tmpfs since 6.3, ...).
func (m Remap) IDMap(src, dst string) error {
	ns, err := m.nsFD()
	if err != nil {
		return err
	}
	defer unix.Close(ns)
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("idmapped mount of %s: open_tree: %w", src, err)
	}
	defer unix.Close(fd)
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOSUID, Userns_fd: uint64(ns)}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		return fmt.Errorf("idmapped mount of %s: mount_setattr (does its file system support idmapped mounts?): %w", src, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("idmapped mount of %s: move_mount: %w", src, err)
	}
	return nil
}

// nsFD returns a descriptor of a user namespace with the range's mapping.
// A multithreaded process cannot unshare a user namespace, so a child
// makes it: our own executable, started under ptrace so that it stops at
// its exec and never runs; the namespace outlives it through the
// descriptor.
func (m Remap) nsFD() (int, error) {
	cmd := exec.Command("/proc/self/exe")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(m.Base), Size: int(m.Size)}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(m.Base), Size: int(m.Size)}},
		Ptrace:      true,
		Pdeathsig:   syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("make a user namespace: %w", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open user namespace: %w", err)
	}
	return fd, nil
}

// Unmount detaches whatever is mounted at dst (an IDMap from an earlier
// run); overlays still using it keep it until they go.
func Unmount(dst string) error {
	for {
		err := unix.Unmount(dst, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil // not a mount point (any more)
		}
		if err != nil {
			return err
		}
	}
}

// Enterable tells whether the range's root (uid and gid Base, no
// capability on the host) may enter directory dir.
func Enterable(dir string, m Remap) bool {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return false
	}
	switch {
	case st.Uid == m.Base:
		return st.Mode&0o100 != 0
	case st.Gid == m.Base:
		return st.Mode&0o010 != 0
	default:
		return st.Mode&0o001 != 0
	}
}

// OpenDir lets the range's root enter dir, a directory Chaser owns (the
// data directory), and nobody else who could not before: group Base,
// mode 0710. Nothing in it becomes readable: files that must stay the
// host's are 0600 or in 0700 directories.
func OpenDir(dir string, m Remap) error {
	if err := os.Chown(dir, 0, int(m.Base)); err != nil {
		return err
	}
	return os.Chmod(dir, 0o710)
}
