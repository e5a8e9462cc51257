package oci

import (
	"fmt"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/runtime"
	"github.com/chaserhq/chaser/internal/userns"
)

// This file holds what --userns-remap changes in a runc sandbox (Config.Remap):
// root inside is the range's base on the host, in a user namespace of its
// own. Everything a sandbox writes must then belong to the range, and what
// it only reads must be readable by it:
//
//   - the writable directories (overlay uppers and works, a workspace) are
//     handed over by userns.Remap.Own, the one place that chowns them;
//   - every overlay is mounted on the host, by host root, as the rootfs
//     always was: runc 1.1 would mount the others inside the user
//     namespace, where overlayfs copies up with the namespace's
//     credentials and cannot give a copied-up file an owner outside the
//     range. The sandbox gets bind mounts of them (as under runsc);
//   - the state directory is entered by runc's init inside the namespace
//     (bind sources, the rootfs): it gets the range's base as its group,
//     mode 0710, as Docker's remapped root directory does;
//   - ping_group_range can only name groups the namespace maps.
//
// Image layers arrive already owned by the range (image.WithRemap).

// ownUpper hands the writable directories of sandbox s to the range.
func (r *Runtime) ownUpper(s runtime.Spec) error {
	m := r.cfg.Remap
	if err := m.Own(s.Rootfs.UpperDir); err != nil {
		return fmt.Errorf("upper directory: %w", err)
	}
	for _, o := range s.Rootfs.Overlays {
		u, w := overlayDirs(s.Rootfs.UpperDir, o)
		for _, d := range []string{filepath.Dir(u), u, w} {
			if err := m.Own(d); err != nil {
				return fmt.Errorf("upper directory: %w", err)
			}
		}
	}
	return nil
}

// openStateDir lets the range's root (runc's init inside the user
// namespace) enter state directory dir, and no one else.
func (r *Runtime) openStateDir(dir string) error { return userns.OpenDir(dir, r.cfg.Remap) }

// remapSpec puts spec's sandbox in a user namespace mapping root to the
// range, with the overlays beyond the root replaced by bind mounts of the
// host mounts made for them (hostMount in state directory dir).
func remapSpec(spec *specs.Spec, s runtime.Spec, dir string, m userns.Remap) {
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	ids := []specs.LinuxIDMapping{{ContainerID: 0, HostID: m.Base, Size: m.Size}}
	spec.Linux.UIDMappings, spec.Linux.GIDMappings = ids, ids
	if _, ok := spec.Linux.Sysctl["net.ipv4.ping_group_range"]; ok {
		sysctl := map[string]string{}
		for k, v := range spec.Linux.Sysctl {
			sysctl[k] = v
		}
		sysctl["net.ipv4.ping_group_range"] = "0 " + strconv.FormatUint(uint64(m.Size-1), 10)
		spec.Linux.Sysctl = sysctl
	}
	for i, mnt := range spec.Mounts {
		if mnt.Type != "overlay" {
			continue
		}
		for _, o := range s.Rootfs.Overlays[1:] {
			if o.Target == mnt.Destination {
				spec.Mounts[i] = specs.Mount{Destination: o.Target, Type: "bind", Source: hostMount(dir, o), Options: []string{"rbind", "rw"}}
			}
		}
	}
}

// Remap is the range the runtime's sandboxes map root to (off: the zero
// Remap).
func (r *Runtime) Remap() userns.Remap { return r.cfg.Remap }

// openStateRoot lets the range's root reach the sandboxes' state
// directories below stateDir: stateDir gets the range's base as its group
// (mode 0710), and each of its parents must already let the range enter
// (others may, or its group is the range's base). The data directory is
// the daemon's to open (daemon.openDataDir); a parent the runtime does not
// own is never changed: New fails with errdefs.ErrFailedPrecondition
// naming it.
func openStateRoot(stateDir string, m userns.Remap) error {
	if err := userns.OpenDir(stateDir, m); err != nil {
		return err
	}
	for d := filepath.Dir(stateDir); ; d = filepath.Dir(d) {
		if !userns.Enterable(d, m) {
			return fmt.Errorf("--userns-remap: sandbox root (host uid %d) cannot enter %s, on the way to the sandboxes' state in %s; let it (chgrp %d %s && chmod g+x %s) or choose a --data-dir below directories others may enter: %w",
				m.Base, d, stateDir, m.Base, d, d, errdefs.ErrFailedPrecondition)
		}
		if d == "/" {
			return nil
		}
	}
}
