package bench

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/disk"
	"github.com/chaserhq/chaser/internal/testserver"
)

func serverArgs(b *testing.B, args ...string) *client.Client {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("skipping: benchmarks run real sandboxes and need root")
	}
	s, err := testserver.Start("", args...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		s.Stop()
		os.RemoveAll(s.DataDir)
	})
	return client.New(s.URL, s.AdminKey)
}

// BenchmarkDiskQuota measures what the disk quota adds to creating a
// sandbox: create + first exec + delete on a server with 1 GiB disk images
// (the free tier's) against one with --no-disk-quota, in the same run; and
// the image alone: mkfs, loop mount, unmount and delete.
func BenchmarkDiskQuota(b *testing.B) {
	ctx := context.Background()
	cycle := func(c *client.Client) func(b *testing.B) {
		return func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				sess, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
				if err != nil {
					b.Fatal(err)
				}
				if res, err := c.Exec(ctx, sess.ID, api.ExecRequest{Command: "true"}); err != nil || res.ExitCode != 0 {
					b.Fatal(res, err)
				}
				b.StopTimer()
				if err := c.DeleteSession(ctx, sess.ID); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		}
	}
	quota := serverArgs(b, "--disk-size", "1GiB")
	none := serverArgs(b, "--no-disk-quota")
	b.Run("create-quota", cycle(quota))
	b.Run("create-noquota", cycle(none))
	dir := b.TempDir()
	for _, journal := range []bool{false, true} {
		b.Run("image-1GiB-journal="+strconv.FormatBool(journal), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				img, mnt := filepath.Join(dir, "a.img"), filepath.Join(dir, "mnt")
				if err := disk.Create(ctx, img, 1<<30, disk.Options{Journal: journal}); err != nil {
					b.Fatal(err)
				}
				if err := disk.Mount(img, mnt); err != nil {
					b.Fatal(err)
				}
				if err := disk.Unmount(mnt); err != nil {
					b.Fatal(err)
				}
				os.Remove(img)
			}
		})
	}
}
