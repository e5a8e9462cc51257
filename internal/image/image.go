// Package image resolves image references to root filesystems: stacks of
// read-only layers that the runtime mounts under a sandbox's own writable
// directory. The built-in image "host" is made from the host's /usr (and
// /bin, /lib*, /sbin where they are not symlinks into /usr) and a curated
// /etc, so it needs no download and works offline. Any other reference is
// an OCI image pulled from its registry with go-containerregistry (oci.go),
// unpacked once per layer into a content-addressed layer store and kept
// until removed and garbage-collected (gc.go).
package image

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/sync/singleflight"

	"github.com/chaserhq/chaser/internal/runtime"
	"github.com/chaserhq/chaser/internal/userns"
)

// HostRef is the reference of the built-in host image.
const HostRef = "host"

// Image is a resolved image.
type Image struct {
	Ref      string
	Overlays []runtime.Overlay
	// Env is the image's environment (PATH, HOME, ...).
	Env []string
	// WorkingDir is the default directory of commands; empty means
	// /workspace.
	WorkingDir string
	// User is the image's configured user as written ("app", "1000:1000");
	// UID, GID and Groups are what it resolved to in the image's
	// /etc/passwd and /etc/group. Empty User means root.
	User   string
	UID    uint32
	GID    uint32
	Groups []uint32
	// Home is the user's home directory from /etc/passwd, if found.
	Home string

	release func()
}

// Release ends the image's lease on its layers: until then the garbage
// collector keeps them even if no image record names them any more. Call
// it once the sandbox's rootfs is mounted (a mounted layer is kept anyway)
// or its creation failed. Release may be called more than once.
func (img *Image) Release() {
	if img != nil && img.release != nil {
		img.release()
	}
}

// Store resolves references and owns the OCI image cache.
type Store struct {
	dir  string
	log  *slog.Logger
	host *Image

	remap     userns.Remap // owners of unpacked files (WithRemap)
	idmaps    []string     // idmapped mounts of host directories made for remap, to unmount at Close
	insecure  map[string]bool
	keychain  authn.Keychain
	certsDir  string
	guard     guard             // the registries pulls may reach besides public addresses (dialer.go)
	transport http.RoundTripper // of every registry call, built by NewStore

	// mu guards state and leases. It is never held across network or
	// disk-heavy work, only across the small state file's rewrite.
	mu     sync.Mutex
	state  *state
	leases map[string]int // layer id -> active leases

	// gcMu is held shared by every running pull and exclusively by GC.
	gcMu    sync.RWMutex
	pulls   singleflight.Group // by canonical reference
	layers  singleflight.Group // by compressed layer digest
	flights sync.Map           // canonical reference -> *progress of a running pull

	onGC []func(context.Context) // see OnGC
}

// Option configures a Store.
type Option func(*Store)

// WithInsecureRegistries lets the store talk plain HTTP to these registries
// (HOST or HOST:PORT, as written in references), and HTTPS without
// verifying their certificates, like Docker's --insecure-registry. Plain
// HTTP to loopback registries is allowed anyway.
func WithInsecureRegistries(hosts []string) Option {
	return func(s *Store) {
		for _, h := range hosts {
			s.insecure[h] = true
		}
	}
}

// WithKeychain sets where registry credentials come from (default: the
// podman/skopeo auth.json and the Docker config of the server's user, see
// credentialFiles).
func WithKeychain(k authn.Keychain) Option { return func(s *Store) { s.keychain = k } }

// WithCertsDir sets the directory of per-registry TLS certificates, laid
// out as Docker's /etc/docker/certs.d (DefaultCertsDir, the default):
// HOST[:PORT]/*.crt are trusted CAs, HOST[:PORT]/NAME.cert with NAME.key a
// client certificate. Empty disables it.
func WithCertsDir(dir string) Option { return func(s *Store) { s.certsDir = dir } }

// WithRemap makes the store's files belong to the range m: OCI layers are
// unpacked with shifted owners, the host image's skeleton is owned by
// m.Base, and its host directories (/usr, ...) are lower layers through
// idmapped mounts (see userns.Remap.IDMap), so that a sandbox whose root is
// m.Base on the host owns what it owns without the remap. The caller gives
// such a store a directory of its own (userns.Remap.Suffix): files
// unpacked for another range must never be served.
func WithRemap(m userns.Remap) Option { return func(s *Store) { s.remap = m } }

// NewStore returns a store keeping its files under dir. It builds the host
// image's skeleton (a few KB) if this version of it is not there yet, loads
// the OCI cache's state and removes what a crash left half-done.
func NewStore(dir string, log *slog.Logger, opts ...Option) (*Store, error) {
	s := &Store{
		dir:      dir,
		log:      log.With("component", "image"),
		insecure: map[string]bool{},
		keychain: &fileKeychain{},
		certsDir: DefaultCertsDir,
		leases:   map[string]int{},
	}
	for _, o := range opts {
		o(s)
	}
	s.transport = newRegistryTransport(s.certsDir, s.insecure, s.guardDialer())
	host, err := buildHost(dir, s.remap)
	if err != nil {
		return nil, fmt.Errorf("host image: %w", err)
	}
	if s.remap.Enabled() {
		if err := s.idmapHost(host); err != nil {
			s.Close()
			return nil, fmt.Errorf("host image: %w", err)
		}
	}
	s.host = host
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("image cache in %s: %w", dir, err)
	}
	return s, nil
}

// Resolve returns the image for ref, pulling it when it is not cached. A
// cached image is used without asking its registry (so it starts when the
// registry is down); `chaser images pull` refreshes a tag. The caller must
// Release the image. Errors: ErrInvalidArgument for a malformed reference,
// ErrNotFound for an unknown repository or tag, ErrUnavailable when the
// registry cannot be reached, ErrUnprocessable for a layer that fails
// verification or tries to escape its root.
func (s *Store) Resolve(ctx context.Context, ref string) (*Image, error) {
	if ref == "" || ref == HostRef {
		return s.host, nil
	}
	return s.resolveOCI(ctx, ref, nil)
}

// idmapHost replaces the host directories among the host image's lower
// layers by idmapped mounts of them in DIR/idmap, made once for the
// server's life (an earlier run's are detached first).
func (s *Store) idmapHost(host *Image) error {
	for i, o := range host.Overlays {
		if o.Target == "/" {
			continue
		}
		dst := filepath.Join(s.dir, "idmap", overlayName(o.Target))
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if err := userns.Unmount(dst); err != nil {
			return err
		}
		if err := s.remap.IDMap(o.Lower[0], dst); err != nil {
			return err
		}
		s.idmaps = append(s.idmaps, dst)
		host.Overlays[i].Lower = []string{dst}
	}
	return nil
}

// Close unmounts the idmapped mounts of host directories (WithRemap);
// overlays of sandboxes still running keep theirs until they go.
func (s *Store) Close() error {
	var errs []error
	for _, d := range s.idmaps {
		if err := userns.Unmount(d); err != nil {
			errs = append(errs, err)
		}
	}
	s.idmaps = nil
	return errors.Join(errs...)
}

func overlayName(target string) string {
	return strings.ReplaceAll(strings.Trim(target, "/"), "/", "_")
}

// layerDir is where layer id is unpacked. Names are short (a base-36
// counter) because every lower directory goes into one overlay mount
// option, which the kernel limits to a page.
func (s *Store) layerDir(id string) string { return filepath.Join(s.dir, "l", id) }

func (s *Store) tmpDir() string { return filepath.Join(s.dir, "tmp") }

// open loads the state file and clears leftovers of a crash: temporary
// unpack directories and layer directories no state names (unpacked but
// not recorded before the crash).
func (s *Store) open() error {
	for _, d := range []string{filepath.Join(s.dir, "l"), s.tmpDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	st, err := loadState(s.statePath())
	if err != nil {
		return err
	}
	s.state = st
	if err := os.RemoveAll(s.tmpDir()); err != nil {
		return err
	}
	if err := os.MkdirAll(s.tmpDir(), 0o700); err != nil {
		return err
	}
	known := map[string]bool{}
	for _, l := range st.Layers {
		known[l.ID] = true
	}
	ents, err := os.ReadDir(filepath.Join(s.dir, "l"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !known[e.Name()] {
			s.log.Info("removing unrecorded layer left by a crash", "layer", e.Name())
			if err := os.RemoveAll(s.layerDir(e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
