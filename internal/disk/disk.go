// Package disk gives a sandbox's writable layer a hard size: a sparse ext4
// image file, attached to a loop device and mounted where the runtime puts
// the overlay upper and work directories. Writes past the image's size fail
// with ENOSPC inside the sandbox and never reach the host's free space
// beyond it. The kernel here has no project quotas, and an image per
// sandbox needs nothing of the host's file system but sparse files.
//
// The loop device is set up with LOOP_CONFIGURE (no losetup or mount
// binary) and flagged autoclear: it detaches by itself when the file system
// on it is unmounted, or when the process that attached it dies before
// mounting it. Formatting and growing run mkfs.ext4 and resize2fs from
// e2fsprogs.
package disk

import (
	"errors"
	"fmt"
)

// MinSize is the smallest image: ext4 with a journal needs a few MiB for
// its metadata before any file fits.
const MinSize = 16 << 20

// Options tell how to format an image.
type Options struct {
	// Journal keeps an ext4 journal: a host crash leaves the file system
	// consistent. Workspaces, which outlive sandboxes, want it; an
	// ephemeral sandbox's layer dies with the sandbox and goes faster
	// without.
	Journal bool
	// Templates, when not empty, is a directory of formatted images, one
	// per size and journal setting: Create copies the one it needs (made
	// by mkfs.ext4 the first time) instead of formatting. Copying a 10
	// GiB image's ~4 MiB of metadata takes ~2 ms, mkfs ~10 ms. Copies
	// share the template's UUID and directory-hash seed: fine for images
	// that only their own sandbox mounts, not for images kept apart and
	// mounted side by side by tools that tell file systems by UUID.
	Templates string
}

// ErrInUse is returned by Grow for a mounted image this process cannot
// grow while mounted.
var ErrInUse = errors.New("disk image in use")

// ErrNotMounted is returned by Usage for a directory with no image on it.
var ErrNotMounted = errors.New("no disk image mounted")

// Usage is how full a mounted image is.
type Usage struct {
	Size int64 // bytes the file system holds in all
	Used int64 // bytes in use
}

func checkSize(size int64) error {
	if size < MinSize {
		return fmt.Errorf("disk size %d bytes is below the minimum of %d MiB", size, MinSize>>20)
	}
	return nil
}
