// Package vm runs each sandbox as its own virtual machine: QEMU's
// `microvm` machine, with KVM when /dev/kvm is usable and TCG (software
// emulation) otherwise, booting a Debian kernel with a small initramfs
// (scripts/microvm.sh builds both into KernelDir) whose init hands over to
// the Chaser agent, the same binary as in containers, in its VM mode.
//
// Disks: the image's layers become one read-only ext4 disk, built once
// per layer stack (CacheDir/base-HASH.ext4, made with mkfs.ext4 -d from
// the layers merged by a read-only overlay mount); each sandbox gets a
// sparse raw ext4 disk, Spec.Rootfs.UpperDir/disk.ext4, which the guest
// stacks over the base with overlayfs. The writable disk lives in the
// upper directory, so a workspace keeps it between sessions.
//
// Host↔agent: one virtio-serial port (no vsock needed) whose host end is
// a unix socket STATE/ID/serial.sock; it carries a yamux session, and Dial
// opens a stream on it, so many connections share the one port.
//
// QEMU runs detached from the server (its own session), as a uid of its
// own under seccomp (-runas, -sandbox), and writes STATE/ID/qemu.pid: VMs
// outlive a server crash, and a new server finds them (List) by their
// state directories, reconnects to their serial sockets or removes them.
package vm

import (
	"log/slog"

	"github.com/chaserhq/chaser/internal/runtime"
)

// Config configures a Runtime.
type Config struct {
	// StateDir holds one directory per sandbox.
	StateDir string
	// CacheDir holds the base disks of images and the agent's initramfs
	// archives.
	CacheDir string
	// KernelDir holds vmlinux and initramfs.cpio (scripts/microvm.sh);
	// default DefaultKernelDir.
	KernelDir string
	// QEMU is qemu-system-x86_64, a path or a name on PATH.
	QEMU string
	// Accel is "kvm", "tcg" or "" (kvm when /dev/kvm is usable).
	Accel string
	Log   *slog.Logger

	// UIDBase and UIDCount are the host uids QEMU processes run as, one
	// per running VM (default DefaultUIDBase, DefaultUIDCount: beyond
	// the user namespace remap's default 100000:65536).
	UIDBase, UIDCount int
}

// The default uids of QEMU processes; see Config.UIDBase.
const (
	DefaultUIDBase  = 300000
	DefaultUIDCount = 65536
)

// DefaultKernelDir is where scripts/microvm.sh builds the guest kernel.
const DefaultKernelDir = "/var/cache/chaser-microvm"

// KernelSetup is the command that builds the guest kernel and initramfs.
const KernelSetup = "scripts/microvm.sh " + DefaultKernelDir

// GuestOverhead is the memory a guest gets beyond the sandbox's memory
// limit: its kernel and the agent. With no limit a guest gets
// DefaultMemory.
const (
	GuestOverhead = 96 << 20
	DefaultMemory = 512 << 20
	// DefaultDisk is the size of the writable disk when the sandbox has
	// no disk limit (a sparse file: it costs what is written).
	DefaultDisk = 4 << 30
)

var (
	_ runtime.Runtime = (*Runtime)(nil)
	_ runtime.Closer  = (*Runtime)(nil)
)
