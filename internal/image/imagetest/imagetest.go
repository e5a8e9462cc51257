// Package imagetest helps tests and benchmarks work with OCI images: a
// registry started in the test (go-containerregistry's pkg/registry on
// loopback) that counts and can corrupt requests, layers built from tar
// entries, and a busybox base layer from the host's busybox-static.
package imagetest

import (
	"archive/tar"
	"bytes"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// BusyboxPath is where Debian's busybox-static installs busybox.
const BusyboxPath = "/bin/busybox"

// Registry is a registry served on loopback for one test.
type Registry struct {
	// Host is HOST:PORT, as written in image references.
	Host string
	srv  *httptest.Server
	// CA is the PEM certificate a TLS registry's clients must trust.
	CA   []byte
	opts []remote.Option // how the test itself pushes

	mu       sync.Mutex
	requests []string        // "METHOD PATH" of every request
	corrupt  map[string]bool // blob digests served with a flipped byte
	cut      map[string]int  // blob digests whose next GET breaks off after n bytes
	user     string          // "user:password" required of pulls (Basic auth) when set
}

// StartRegistry starts a plain-HTTP registry, stopped at the end of the
// test.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	r := &Registry{corrupt: map[string]bool{}, cut: map[string]int{}}
	r.srv = httptest.NewServer(r.handler())
	r.Host = strings.TrimPrefix(r.srv.URL, "http://")
	t.Cleanup(r.Close)
	return r
}

// StartTLSRegistry starts an HTTPS registry whose certificate (for
// 127.0.0.1) is signed by a CA of its own, r.CA, as a self-signed
// registry's is. It is stopped at the end of the test.
func StartTLSRegistry(t testing.TB) *Registry {
	t.Helper()
	r := &Registry{corrupt: map[string]bool{}, cut: map[string]int{}}
	r.srv = httptest.NewUnstartedServer(r.handler())
	// Clients that refuse the certificate are what the tests are about:
	// keep the handshake errors out of the test output.
	r.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	r.srv.StartTLS()
	r.Host = strings.TrimPrefix(r.srv.URL, "https://")
	r.CA = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.srv.Certificate().Raw})
	r.opts = []remote.Option{remote.WithTransport(r.srv.Client().Transport)}
	t.Cleanup(r.Close)
	return r
}

// RequireAuth makes the registry answer pulls only with these Basic
// credentials (pushes by the test itself stay open).
func (r *Registry) RequireAuth(user, password string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.user = user + ":" + password
}

func (r *Registry) handler() http.Handler {
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, req.Method+" "+req.URL.Path)
		if r.user != "" && (req.Method == http.MethodGet || req.Method == http.MethodHead) {
			u, p, ok := req.BasicAuth()
			if !ok || u+":"+p != r.user {
				r.mu.Unlock()
				w.Header().Set("WWW-Authenticate", `Basic realm="imagetest"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
		}
		bad, cutAt := false, -1
		for d := range r.corrupt {
			if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/blobs/"+d) {
				bad = true
			}
		}
		for d, n := range r.cut {
			if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/blobs/"+d) {
				cutAt = n
				delete(r.cut, d)
			}
		}
		r.mu.Unlock()
		if cutAt >= 0 {
			// The registry goes away mid-download: send the headers and
			// the first bytes, then drop the connection.
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes()[:min(cutAt, rec.Body.Len())])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		if bad {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			body := rec.Body.Bytes()
			if len(body) > 0 {
				body[len(body)/2] ^= 0xff
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(body)
			return
		}
		h.ServeHTTP(w, req)
	})
}

// Close takes the registry away: later requests fail to connect.
func (r *Registry) Close() {
	r.srv.CloseClientConnections()
	r.srv.Close()
}

// Requests returns the requests served so far.
func (r *Registry) Requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

// BlobGets counts GET requests per blob digest among reqs.
func BlobGets(reqs []string) map[string]int {
	out := map[string]int{}
	for _, q := range reqs {
		if m, p, ok := strings.Cut(q, " "); ok && m == http.MethodGet {
			if _, d, ok := strings.Cut(p, "/blobs/"); ok {
				out[d]++
			}
		}
	}
	return out
}

// Corrupt makes the registry serve blob digest with one byte flipped.
func (r *Registry) Corrupt(digest string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.corrupt[digest] = true
}

// CutOnce makes the next GET of blob digest break off after n bytes, as
// if the registry went away in the middle of a download.
func (r *Registry) CutOnce(digest string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cut[digest] = n
}

// Entry is one tar entry of a layer.
type Entry struct {
	Name     string
	Type     byte // tar.TypeReg when 0
	Mode     int64
	Uid, Gid int
	Body     []byte
	Link     string
	// Major and Minor number a device node (tar.TypeChar, tar.TypeBlock).
	Major, Minor int64
}

// Layer builds a gzip-compressed layer from entries.
func Layer(t testing.TB, entries ...Entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.Mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		h := &tar.Header{Name: e.Name, Typeflag: typ, Mode: mode, Uid: e.Uid, Gid: e.Gid, Linkname: e.Link,
			Devmajor: e.Major, Devminor: e.Minor, ModTime: time.Unix(1700000000, 0)}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write(e.Body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// BusyboxLayer is a base layer with the host's static busybox as /bin/busybox,
// a symlink per applet, and /etc/passwd and /etc/group with root, a user
// "app" (1000:1000) and a group "extra" (2000) that lists app. It fails the
// test when busybox-static is not installed.
func BusyboxLayer(t testing.TB) v1.Layer {
	t.Helper()
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		t.Fatalf("%s is missing: these tests need busybox-static (apt-get install -y busybox-static): %v", BusyboxPath, err)
	}
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	entries := []Entry{
		{Name: "bin/", Type: tar.TypeDir},
		{Name: "bin/busybox", Mode: 0o755, Body: bb},
		{Name: "etc/", Type: tar.TypeDir},
		{Name: "etc/passwd", Body: []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n")},
		{Name: "etc/group", Body: []byte("root:x:0:\napp:x:1000:\nextra:x:2000:app\n")},
		{Name: "root/", Type: tar.TypeDir, Mode: 0o700},
		{Name: "home/app/", Type: tar.TypeDir, Uid: 1000, Gid: 1000},
		{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777},
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			entries = append(entries, Entry{Name: "bin/" + applet, Type: tar.TypeSymlink, Link: "busybox"})
		}
	}
	return Layer(t, entries...)
}

// Image stacks layers (bottom first) under a config.
func Image(t testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", "amd64", cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Push pushes img as repo:tag and returns its reference.
func (r *Registry) Push(t testing.TB, repoTag string, img v1.Image) string {
	t.Helper()
	ref := r.Host + "/" + repoTag
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, r.opts...); err != nil {
		t.Fatal(err)
	}
	return ref
}

// PushIndex pushes an index of images by platform ("linux/amd64") as
// repo:tag and returns its reference.
func (r *Registry) PushIndex(t testing.TB, repoTag string, byPlatform map[string]v1.Image) string {
	t.Helper()
	var adds []mutate.IndexAddendum
	for p, img := range byPlatform {
		os, arch, _ := strings.Cut(p, "/")
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: os, Architecture: arch}}})
	}
	idx := mutate.AppendManifests(empty.Index, adds...)
	ref := r.Host + "/" + repoTag
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx, r.opts...); err != nil {
		t.Fatal(err)
	}
	return ref
}

// Digest returns the digest the registry reports for ref (HEAD of its
// manifest): for a multi-platform tag, the index's digest.
func (r *Registry) Digest(t testing.TB, ref string) string {
	t.Helper()
	nr, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(nr, r.opts...)
	if err != nil {
		t.Fatal(err)
	}
	return desc.Digest.String()
}

// LayerDigest returns a layer's digest as a string.
func LayerDigest(t testing.TB, l v1.Layer) string {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// Loopback reports whether host (HOST:PORT) is a loopback address.
func Loopback(host string) bool {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		return false
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
