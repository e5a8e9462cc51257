// Package bench holds benchmarks of Chaser against real runtimes; they need
// root and runc, and skip with a message without root.
package bench

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/image"
	"github.com/chaserhq/chaser/internal/image/imagetest"
)

var (
	imageBinOnce sync.Once
	imageBin     string
	imageBinErr  error
)

// imageBinary builds the static chaser binary once per run.
func imageBinary(b *testing.B) string {
	if os.Geteuid() != 0 {
		b.Skip("skipping: image benchmarks need root (runc, overlay mounts); CI runs as root")
	}
	imageBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "chaser-bench-")
		if err != nil {
			imageBinErr = err
			return
		}
		imageBin = filepath.Join(dir, "chaser")
		cmd := exec.Command("go", "build", "-o", imageBin, "../cmd/chaser")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			imageBinErr = fmt.Errorf("build: %v: %s", err, out)
		}
	})
	if imageBinErr != nil {
		b.Fatal(imageBinErr)
	}
	return imageBin
}

// imageServer starts `chaser serve` on a fresh data dir and returns an
// admin client; it stops and removes everything at the end.
func imageServer(b *testing.B, args ...string) *client.Client {
	bin := imageBinary(b)
	dir, err := os.MkdirTemp("", "chaser-bench-data-")
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var log bytes.Buffer
	cmd := exec.Command(bin, append([]string{"serve", "--addr", addr, "--data-dir", dir}, args...)...)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		os.RemoveAll(dir)
	})
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("server did not start: %s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	key, err := os.ReadFile(filepath.Join(dir, "admin.key"))
	if err != nil {
		b.Fatal(err)
	}
	return client.New("http://"+addr, strings.TrimSpace(string(key)))
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
