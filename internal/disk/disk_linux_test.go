package disk

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/internal/errdefs"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
}

// fill writes zeros to path until the file system refuses, and returns
// the error that stopped it and the bytes written.
func fill(t *testing.T, path string, most int64) (int64, error) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for n < most {
		k, err := f.Write(buf)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, f.Sync()
}

// TestImage formats, mounts, fills, grows online and offline, and
// unmounts an image, and checks no loop device outlives it.
func TestImage(t *testing.T) {
	needRoot(t)
	for _, journal := range []bool{false, true} {
		t.Run(map[bool]string{false: "nojournal", true: "journal"}[journal], func(t *testing.T) {
			dir := t.TempDir()
			img, mnt := filepath.Join(dir, "a.img"), filepath.Join(dir, "mnt")
			if err := Create(t.Context(), img, 32<<20, Options{Journal: journal}); err != nil {
				t.Fatal(err)
			}
			if err := Create(t.Context(), img, 32<<20, Options{}); err == nil {
				t.Fatal("Create over an existing image succeeded")
			}
			var st unix.Stat_t
			if err := unix.Stat(img, &st); err != nil {
				t.Fatal(err)
			}
			if st.Blocks*512 > 8<<20 {
				t.Errorf("a fresh 32 MiB image takes %d bytes of the host: not sparse", st.Blocks*512)
			}
			// A fresh image mounts either way (MountNew skips the check
			// that no loop device holds it); the check still holds after.
			mount := map[bool]func(string, string) error{false: Mount, true: MountNew}[journal]
			if err := mount(img, mnt); err != nil {
				t.Fatal(err)
			}
			defer Unmount(mnt)
			if err := Mount(img, filepath.Join(dir, "again")); !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Fatalf("second mount of one image: %v, want ErrFailedPrecondition", err)
			}
			n, err := fill(t, filepath.Join(mnt, "big"), 64<<20)
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatalf("writing 64 MiB into 32 MiB: wrote %d, err %v; want ENOSPC", n, err)
			}
			if err := unix.Stat(img, &st); err != nil {
				t.Fatal(err)
			}
			if st.Blocks*512 > 33<<20 {
				t.Errorf("image takes %d bytes of the host, more than its 32 MiB", st.Blocks*512)
			}
			os.Remove(filepath.Join(mnt, "big"))

			u, err := UsageOf(mnt)
			if err != nil {
				t.Fatal(err)
			}
			if err := Grow(t.Context(), img, 16<<20); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("shrink: %v, want ErrInvalidArgument", err)
			}
			err = Grow(t.Context(), img, 64<<20)
			if !CanGrowOnline() {
				// This process lacks CAP_SYS_RESOURCE: refused, and
				// nothing changed.
				if !errors.Is(err, ErrInUse) || !errors.Is(err, errdefs.ErrFailedPrecondition) {
					t.Fatalf("online grow without CAP_SYS_RESOURCE: %v, want ErrInUse", err)
				}
				if fi, _ := os.Stat(img); fi.Size() != 32<<20 {
					t.Fatalf("refused grow left the image at %d bytes", fi.Size())
				}
				if err := Unmount(mnt); err != nil {
					t.Fatal(err)
				}
				if err := Grow(t.Context(), img, 64<<20); err != nil {
					t.Fatal(err)
				}
				if err := Mount(img, mnt); err != nil {
					t.Fatal(err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			u2, err := UsageOf(mnt)
			if err != nil {
				t.Fatal(err)
			}
			if u2.Size < u.Size+28<<20 {
				t.Fatalf("grow: size %d -> %d", u.Size, u2.Size)
			}
			if n, err := fill(t, filepath.Join(mnt, "big"), 40<<20); err != nil {
				t.Fatalf("after growing to 64 MiB, 40 MiB: wrote %d: %v", n, err)
			}

			if err := Unmount(mnt); err != nil {
				t.Fatal(err)
			}
			if devs, _ := Devices(img); len(devs) > 0 {
				t.Fatalf("loop devices left after unmount: %v", devs)
			}
			if _, err := UsageOf(mnt); err == nil {
				t.Fatal("usage of an unmounted dir")
			}
			if err := Grow(t.Context(), img, 96<<20); err != nil {
				t.Fatalf("offline grow: %v", err)
			}
			if err := Mount(img, mnt); err != nil {
				t.Fatal(err)
			}
			u3, err := UsageOf(mnt)
			if err != nil {
				t.Fatal(err)
			}
			if u3.Size < u2.Size+28<<20 {
				t.Fatalf("offline grow: size %d -> %d", u2.Size, u3.Size)
			}
			if b, err := os.ReadFile(filepath.Join(mnt, "big")); err != nil || len(b) != 40<<20 {
				t.Fatalf("data after remount: %d bytes, %v", len(b), err)
			}
			if err := Unmount(mnt); err != nil {
				t.Fatal(err)
			}
			if devs, _ := Devices(img); len(devs) > 0 {
				t.Fatalf("loop devices left after unmount: %v", devs)
			}
			if m, _ := Mounts(dir); len(m) > 0 {
				t.Fatalf("mounts left: %v", m)
			}
		})
	}
}

func TestCreateTooSmall(t *testing.T) {
	err := Create(t.Context(), filepath.Join(t.TempDir(), "a.img"), 1<<20, Options{})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("1 MiB image: %v", err)
	}
}

func TestUnescape(t *testing.T) {
	if got := unescape(`/a\040b\134c`); got != `/a b\c` {
		t.Fatalf("got %q", got)
	}
}

// TestTemplates checks images copied from Options.Templates: one template
// per size, each copy sparse and a whole file system of its own (two
// mounted at once, writes to one seen in neither the other nor the
// template, full at its size, clean under e2fsck), and at most
// maxTemplates kept.
func TestTemplates(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	tpls := filepath.Join(dir, "templates")
	o := Options{Templates: tpls}
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	for _, img := range []string{a, b} {
		if err := Create(t.Context(), img, 32<<20, o); err != nil {
			t.Fatal(err)
		}
	}
	if err := Create(t.Context(), a, 32<<20, o); err == nil {
		t.Fatal("Create over an existing image succeeded")
	}
	entries, _ := os.ReadDir(tpls)
	if len(entries) != 1 || entries[0].Name() != "ext4-33554432.img" {
		t.Fatalf("templates after two creates of one size: %v", entries)
	}
	tpl := filepath.Join(tpls, entries[0].Name())
	before, err := os.ReadFile(tpl)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(a, &st); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(a); fi.Size() != 32<<20 || st.Blocks*512 > 8<<20 {
		t.Fatalf("copy: %d bytes, %d of them on the host; want 32 MiB, sparse", fi.Size(), st.Blocks*512)
	}
	ma, mb := filepath.Join(dir, "ma"), filepath.Join(dir, "mb")
	if err := MountNew(a, ma); err != nil {
		t.Fatal(err)
	}
	defer Unmount(ma)
	if err := MountNew(b, mb); err != nil {
		t.Fatalf("a second copy beside the first: %v", err)
	}
	defer Unmount(mb)
	if err := os.WriteFile(filepath.Join(ma, "only-a"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(mb, "only-a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file written to one copy shows in the other: %v", err)
	}
	if n, err := fill(t, filepath.Join(mb, "big"), 64<<20); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("writing 64 MiB into a 32 MiB copy: wrote %d, err %v; want ENOSPC", n, err)
	}
	for _, m := range []string{ma, mb} {
		if err := Unmount(m); err != nil {
			t.Fatal(err)
		}
	}
	for _, img := range []string{a, b} {
		if out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput(); err != nil {
			t.Fatalf("e2fsck -fn of a copy after use: %v\n%s", err, out)
		}
	}
	if after, _ := os.ReadFile(tpl); !bytes.Equal(before, after) {
		t.Fatal("writing to the copies changed the template")
	}

	// More sizes than are kept: the least recently used go.
	for i := range maxTemplates + 2 {
		if err := Create(t.Context(), filepath.Join(dir, fmt.Sprintf("s%d.img", i)), int64(40+i)<<20, o); err != nil {
			t.Fatal(err)
		}
	}
	if entries, _ := os.ReadDir(tpls); len(entries) != maxTemplates {
		t.Fatalf("%d templates kept, want %d", len(entries), maxTemplates)
	}
	if _, err := os.Stat(tpl); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the least recently used template was kept: %v", err)
	}
}

// TestAttachParallel attaches many images at once, as parallel creates
// do, in rounds: every one gets a loop device. LOOP_CTL_GET_FREE gives
// them all the same free device and all but one lose it (EBUSY); 50
// parallel creates once ran one out of its retries (a 500).
func TestAttachParallel(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	const n = 48
	var imgs []string
	for i := range n {
		img := filepath.Join(dir, fmt.Sprintf("img%d", i))
		if err := os.WriteFile(img, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, 1<<20); err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	for round := range 10 {
		start := make(chan struct{})
		type result struct {
			f   *os.File
			err error
		}
		results := make(chan result, n)
		for _, img := range imgs {
			go func() {
				<-start
				_, f, err := attach(img)
				results <- result{f, err}
			}()
		}
		close(start)
		var files []*os.File
		for range n {
			r := <-results
			if r.err != nil {
				t.Errorf("round %d: %v", round, r.err)
			}
			if r.f != nil {
				files = append(files, r.f)
			}
		}
		for _, f := range files {
			f.Close() // autoclear: the device goes with its last user
		}
	}
}
