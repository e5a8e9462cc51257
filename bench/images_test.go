package bench

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/image"
	"github.com/chaserhq/chaser/internal/image/imagetest"
	"github.com/chaserhq/chaser/internal/testserver"
)

// imageServer starts `chaser serve` with args on a fresh data dir and
// returns an admin client; it stops and removes everything at the end.
func imageServer(b *testing.B, args ...string) *client.Client {
	if os.Geteuid() != 0 {
		b.Skip("skipping: image benchmarks need root (runc, overlay mounts); CI runs as root")
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

// randomLayer is a layer of n files of size bytes of random (incompressible)
// content.
func randomLayer(b *testing.B, prefix string, n, size int) v1.Layer {
	var entries []imagetest.Entry
	for i := range n {
		body := make([]byte, size)
		rand.Read(body)
		entries = append(entries, imagetest.Entry{Name: fmt.Sprintf("data/%s-%d", prefix, i), Body: body})
	}
	return imagetest.Layer(b, entries...)
}

// benchImages pushes a small image (busybox) and a ~100 MB one (busybox and
// four 25 MB layers of random files).
func benchImages(b *testing.B, reg *imagetest.Registry) map[string]string {
	base := imagetest.BusyboxLayer(b)
	layers := []v1.Layer{base}
	for i := range 4 {
		layers = append(layers, randomLayer(b, fmt.Sprint(i), 25, 1<<20))
	}
	return map[string]string{
		"small": reg.Push(b, "bench/small:v1", imagetest.Image(b, v1.Config{}, base)),
		"100MB": reg.Push(b, "bench/big:v1", imagetest.Image(b, v1.Config{}, layers...)),
	}
}

// BenchmarkImageCreate measures creating a sandbox of an OCI image and
// running `true` in it: cold (pull, verify, unpack, start: the cache is
// emptied before each round) and warm (cached layers).
func BenchmarkImageCreate(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("skipping: image benchmarks need root (runc, overlay mounts); CI runs as root")
	}
	reg := imagetest.StartRegistry(b)
	refs := benchImages(b, reg)
	c := imageServer(b, "--insecure-registry", reg.Host)
	ctx := context.Background()
	refs["host"] = image.HostRef // baseline: the built-in image
	for _, size := range []string{"host", "small", "100MB"} {
		ref := refs[size]
		for _, mode := range []string{"cold", "warm"} {
			if size == "host" && mode == "cold" {
				continue
			}
			b.Run(size+"/"+mode, func(b *testing.B) {
				if mode == "warm" && ref != image.HostRef {
					if _, err := c.PullImage(ctx, api.PullImageRequest{Ref: ref}, nil); err != nil {
						b.Fatal(err)
					}
				}
				for b.Loop() {
					if mode == "cold" {
						b.StopTimer()
						if err := c.DeleteImage(ctx, ref); err != nil && !strings.Contains(err.Error(), "not cached") {
							b.Fatal(err)
						}
						b.StartTimer()
					}
					s, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true, Image: ref})
					if err != nil {
						b.Fatal(err)
					}
					if res, err := c.Exec(ctx, s.ID, api.ExecRequest{Command: "true"}); err != nil || res.ExitCode != 0 {
						b.Fatalf("exec: %v %+v", err, res)
					}
					b.StopTimer()
					if err := c.DeleteSession(ctx, s.ID); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			})
		}
	}
}

// BenchmarkUnpack measures unpacking a 100 MB uncompressed layer of 100
// files (the cost after download and decompression), in MB/s.
func BenchmarkUnpack(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("skipping: unpacking keeps ownership, which needs root")
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := make([]byte, 1<<20)
	for i := range 100 {
		rand.Read(body)
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/f%d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: time.Now()})
		tw.Write(body)
	}
	tw.Close()
	data := buf.Bytes()
	parent := b.TempDir()
	b.SetBytes(int64(len(data)))
	i := 0
	for b.Loop() {
		dir := filepath.Join(parent, fmt.Sprint(i))
		i++
		os.Mkdir(dir, 0o755)
		if _, err := image.Unpack(io.Reader(bytes.NewReader(data)), dir); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(dir)
		b.StartTimer()
	}
}
