package disk

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// mountOptions: discard hands the blocks of deleted files back to the
// host (the loop driver punches holes in the image), so an image takes
// host space for what it holds now, not for the most it ever held;
// noinit_itable keeps the kernel from zeroing inode tables in the
// background, which would fill the sparse image with zeros for nothing.
const mountOptions = "discard,noinit_itable"

// Create makes a sparse image file of size bytes at path and formats it
// ext4 (or copies o.Templates' image of that size). path must not exist.
// On error nothing is left behind.
func Create(ctx context.Context, path string, size int64, o Options) error {
	if err := checkSize(size); err != nil {
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	if o.Templates == "" {
		return format(ctx, path, size, o)
	}
	for try := 0; ; try++ {
		tpl, err := template(ctx, size, o)
		if err != nil {
			return err
		}
		// Another create may have pruned it in between: make it again.
		if err := clone(tpl, path, size); !errors.Is(err, errTemplateGone) || try > 0 {
			return err
		}
	}
}

// errTemplateGone: the template was removed before it was opened.
var errTemplateGone = errors.New("disk template removed")

// maxTemplates bounds the formatted images kept in Options.Templates:
// the least recently used beyond it are removed.
const maxTemplates = 8

// template returns the path of the formatted image of size bytes (and
// o's journal setting) in o.Templates, formatting it first if missing.
// A template is formatted under a temporary name, synced and then
// renamed: a crash never leaves a half-written one under its name.
func template(ctx context.Context, size int64, o Options) (string, error) {
	path := filepath.Join(o.Templates, templateName(size, o))
	now := time.Now()
	if err := os.Chtimes(path, now, now); err == nil { // used: kept by prune
		return path, nil
	}
	if err := os.MkdirAll(o.Templates, 0o700); err != nil {
		return "", err
	}
	tmp := fmt.Sprintf("%s.%d-%d.tmp", path, os.Getpid(), now.UnixNano())
	if err := format(ctx, tmp, size, Options{Journal: o.Journal}); err != nil {
		return "", err
	}
	if err := syncFile(tmp); err != nil {
		os.Remove(tmp)
		return "", err
	}
	// Two creates may format the same template at once: the last rename
	// wins, and both are whole images.
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", err
	}
	pruneTemplates(o.Templates)
	return path, nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// ForgetTemplate removes the template Create copies for images of size
// bytes with o: the next Create formats it again. For a copy that would
// not mount (a template damaged on the host's disk).
func ForgetTemplate(size int64, o Options) error {
	if o.Templates == "" {
		return nil
	}
	err := os.Remove(filepath.Join(o.Templates, templateName(size, o)))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// PruneTemplates removes what a killed process left in o.Templates (a
// template it was formatting) and the least recently used templates
// beyond those kept; for a server's start.
func PruneTemplates(o Options) {
	if o.Templates != "" {
		pruneTemplates(o.Templates)
	}
}

func templateName(size int64, o Options) string {
	if o.Journal {
		return fmt.Sprintf("ext4-journal-%d.img", size)
	}
	return fmt.Sprintf("ext4-%d.img", size)
}

// pruneTemplates removes the least recently used templates in dir beyond
// maxTemplates, and temporary files a crash left (older than a minute).
func pruneTemplates(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type tpl struct {
		path string
		used time.Time
	}
	var tpls []tpl
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if strings.HasSuffix(e.Name(), ".tmp") {
			if time.Since(fi.ModTime()) > time.Minute {
				os.Remove(p)
			}
			continue
		}
		tpls = append(tpls, tpl{p, fi.ModTime()})
	}
	slices.SortFunc(tpls, func(a, b tpl) int { return b.used.Compare(a.used) })
	for _, t := range tpls[min(len(tpls), maxTemplates):] {
		os.Remove(t.path)
	}
}

// clone copies template, a sparse image of size bytes, to a new sparse
// image at path: only the template's data ranges (SEEK_DATA/SEEK_HOLE),
// by copy_file_range where the file system allows it.
func clone(template, path string, size int64) (err error) {
	src, err := os.Open(template)
	if errors.Is(err, os.ErrNotExist) {
		return errTemplateGone
	}
	if err != nil {
		return err
	}
	defer src.Close()
	if fi, err := src.Stat(); err != nil {
		return err
	} else if fi.Size() != size {
		return fmt.Errorf("disk template %s is %d bytes, want %d", filepath.Base(template), fi.Size(), size)
	}
	dst, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	if err := dst.Truncate(size); err != nil {
		return err
	}
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(src.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data after off
		}
		if err != nil {
			return fmt.Errorf("read disk template: %w", err)
		}
		hole, err := unix.Seek(int(src.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("read disk template: %w", err)
		}
		if err := copyRange(src, dst, data, hole-data); err != nil {
			return fmt.Errorf("copy disk template: %w", err)
		}
		off = hole
	}
	return nil
}

// copyRange copies n bytes at off from src to the same offset in dst.
func copyRange(src, dst *os.File, off, n int64) error {
	for n > 0 {
		roff, woff := off, off
		c, err := unix.CopyFileRange(int(src.Fd()), &roff, int(dst.Fd()), &woff, int(n), 0)
		if err != nil {
			if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
				_, err = io.Copy(io.NewOffsetWriter(dst, off), io.NewSectionReader(src, off, n))
			}
			return err
		}
		if c == 0 {
			return io.ErrUnexpectedEOF
		}
		off, n = off+int64(c), n-int64(c)
	}
	return nil
}

// format makes a sparse image file of size bytes at path and formats it
// ext4. On error nothing is left behind.
func format(ctx context.Context, path string, size int64, o Options) (err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// Lazy init leaves inode tables and the journal unwritten (sparse):
	// mkfs of 1 GiB takes milliseconds and a few hundred KiB of the host.
	// -m 0: no blocks reserved for root, the quota is what the user gets.
	args := []string{"-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard"}
	if !o.Journal {
		args = append(args, "-O", "^has_journal")
	}
	return run(ctx, "mkfs.ext4", append(args, path)...)
}

// run runs an e2fsprogs tool; its output becomes the error.
func run(ctx context.Context, name string, args ...string) error {
	path, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("%s is not installed (apt-get install -y e2fsprogs): %w", name, errdefs.ErrFailedPrecondition)
	}
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Mount attaches image to a free loop device and mounts its file system
// at dir (made if missing). The loop device is autoclear: Unmount
// releases it, and so does a crash of this process before the mount.
// An image already attached somewhere is refused (ErrFailedPrecondition):
// two mounts of one ext4 would corrupt it.
func Mount(image, dir string) error {
	image, err := realPath(image)
	if err != nil {
		return err
	}
	if devs, err := Devices(image); err != nil {
		return err
	} else if len(devs) > 0 {
		return fmt.Errorf("disk image %s is attached to %s already: %w", filepath.Base(image), strings.Join(devs, ", "), errdefs.ErrFailedPrecondition)
	}
	return mount(image, dir)
}

// MountNew is Mount of an image Create has just made, which nothing can
// have attached yet: it skips the look through every loop device's
// backing file, which on a host with hundreds of loop devices took
// milliseconds of each sandbox's create.
func MountNew(image, dir string) error {
	image, err := realPath(image)
	if err != nil {
		return err
	}
	return mount(image, dir)
}

func mount(image, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	dev, loop, err := attach(image)
	if err != nil {
		return err
	}
	// Once mounted, the mount holds the device; closing ours then lets
	// autoclear detach it at the unmount. Before that, closing it
	// detaches it at once.
	defer loop.Close()
	if err := unix.Mount(dev, dir, "ext4", 0, mountOptions); err != nil {
		return fmt.Errorf("mount disk image %s: %w", filepath.Base(image), err)
	}
	return nil
}

// attachMu makes this process's loop attaches one at a time:
// LOOP_CTL_GET_FREE hands every concurrent caller the same free device and
// all but one lose it (EBUSY), again and again — 50 parallel creates ran
// one out of its retries (TestAttachParallel). Other processes may still
// take a device between the two calls: the retries are for them.
var attachMu sync.Mutex

// attach binds image to a free loop device and returns the device's path
// and an open file of it.
func attach(image string) (string, *os.File, error) {
	img, err := os.OpenFile(image, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, err
	}
	defer img.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("loop devices: %w", err)
	}
	defer ctl.Close()
	cfg := unix.LoopConfig{Fd: uint32(img.Fd())}
	cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], image)
	// Another process may take the free device between the two calls
	// (EBUSY): ask again.
	attachMu.Lock()
	defer attachMu.Unlock()
	for try := 0; ; try++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", nil, fmt.Errorf("find a free loop device: %w", err)
		}
		dev := "/dev/loop" + strconv.Itoa(n)
		f, err := openDevice(dev)
		if err != nil {
			return "", nil, err
		}
		err = unix.IoctlLoopConfigure(int(f.Fd()), &cfg)
		if err == nil {
			return dev, f, nil
		}
		f.Close()
		if !errors.Is(err, unix.EBUSY) || try >= 50 {
			return "", nil, fmt.Errorf("attach %s to %s: %w", filepath.Base(image), dev, err)
		}
		if try >= 5 { // another process keeps winning: let it finish
			time.Sleep(time.Duration(try) * time.Millisecond)
		}
	}
}

// openDevice opens a loop device node. devtmpfs makes the node of a new
// device shortly after LOOP_CTL_GET_FREE created it: wait a little.
func openDevice(dev string) (*os.File, error) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		f, err := os.OpenFile(dev, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err == nil || !errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			return f, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Unmount unmounts the image mounted at dir, which frees its loop device,
// and removes dir. A dir that is not a mount point (or is gone) is only
// removed.
func Unmount(dir string) error {
	for {
		err := unix.Unmount(dir, 0)
		if err == nil {
			continue // stacked mounts: unmount until none is left
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break
		}
		if errors.Is(err, unix.EBUSY) {
			// Something still uses it (a process that outlived its
			// sandbox's kill, a copy of the mount elsewhere): detach it
			// here; the loop device goes once the last user lets go.
			if derr := unix.Unmount(dir, unix.MNT_DETACH); derr == nil {
				continue
			}
		}
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Grow grows image to size bytes, its file system with it. With the image
// mounted the file system grows online; otherwise it is checked and grown
// offline. Shrinking is refused (ErrInvalidArgument).
func Grow(ctx context.Context, image string, size int64) error {
	image, err := realPath(image)
	if err != nil {
		return err
	}
	fi, err := os.Stat(image)
	if err != nil {
		return err
	}
	if size < fi.Size() {
		return fmt.Errorf("disk image %s is %d bytes; it cannot shrink to %d: %w", filepath.Base(image), fi.Size(), size, errdefs.ErrInvalidArgument)
	}
	if size == fi.Size() {
		return nil
	}
	devs, err := Devices(image)
	if err != nil {
		return err
	}
	if len(devs) > 0 && !CanGrowOnline() {
		return fmt.Errorf("disk image %s is in use, and growing a mounted file system needs CAP_SYS_RESOURCE, which this server lacks: %w: %w", filepath.Base(image), ErrInUse, errdefs.ErrFailedPrecondition)
	}
	if err := os.Truncate(image, size); err != nil {
		return err
	}
	if len(devs) == 0 {
		// e2fsck exits 1 when it fixed something: still fine to grow.
		if err := run(ctx, "e2fsck", "-f", "-p", image); err != nil && !exitCode(err, 1) {
			return err
		}
		return run(ctx, "resize2fs", image)
	}
	// The loop device learns the file's new size, then ext4 grows into
	// it while mounted.
	f, err := os.OpenFile(devs[0], os.O_RDWR|unix.O_CLOEXEC, 0)
	if err == nil {
		defer f.Close()
		err = setCapacity(f)
	}
	if err == nil {
		err = run(ctx, "resize2fs", devs[0])
	}
	if err != nil {
		// The file system kept its size: so does the image.
		if terr := os.Truncate(image, fi.Size()); terr == nil && f != nil {
			_ = setCapacity(f)
		}
		return err
	}
	return nil
}

func setCapacity(f *os.File) error {
	if _, err := unix.IoctlRetInt(int(f.Fd()), unix.LOOP_SET_CAPACITY); err != nil {
		return fmt.Errorf("loop set capacity of %s: %w", f.Name(), err)
	}
	return nil
}

// CanGrowOnline tells whether this process may grow a mounted ext4:
// the kernel wants CAP_SYS_RESOURCE (some containers drop it).
func CanGrowOnline() bool {
	var hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[unix.CAP_SYS_RESOURCE/32].Effective&(1<<(unix.CAP_SYS_RESOURCE%32)) != 0
}

func exitCode(err error, code int) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.ExitCode() == code
}

// realPath is the path the kernel shows for a loop device's backing file:
// absolute, without symlinks.
func realPath(p string) (string, error) {
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(p)
}

// Devices returns the loop devices whose backing file is image.
func Devices(image string) ([]string, error) {
	image, err := realPath(image)
	if err != nil {
		return nil, err
	}
	all, err := Loops()
	if err != nil {
		return nil, err
	}
	var devs []string
	for dev, file := range all {
		if file == image {
			devs = append(devs, dev)
		}
	}
	return devs, nil
}

// Loops returns every attached loop device ("/dev/loopN") with the host
// path of its backing file. A backing file deleted while attached keeps
// the kernel's " (deleted)" suffix.
func Loops() (map[string]string, error) {
	paths, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // detached meanwhile
		}
		dev := "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(p)))
		out[dev] = strings.TrimSuffix(string(b), "\n")
	}
	return out, nil
}

// Mounts returns the mount points at or under dir, from this process's
// mount table.
func Mounts(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		mp := unescape(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, sc.Err()
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// UsageOf returns how full the image mounted at dir is, or ErrNotMounted.
func UsageOf(dir string) (Usage, error) {
	var st, parent unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return Usage{}, err
	}
	if err := unix.Statfs(filepath.Dir(dir), &parent); err != nil {
		return Usage{}, err
	}
	if st.Fsid == parent.Fsid {
		return Usage{}, ErrNotMounted
	}
	bs := int64(st.Bsize)
	return Usage{Size: int64(st.Blocks) * bs, Used: int64(st.Blocks-st.Bfree) * bs}, nil
}
