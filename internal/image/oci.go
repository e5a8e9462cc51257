package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/runtime"
)

// Pull limits.
const (
	// pullTimeout bounds a whole pull. A pull runs on its own context: the
	// request that started it may go away, and others may be waiting on it.
	pullTimeout = 30 * time.Minute
	// parallelLayers is how many layers of one image download at once.
	parallelLayers = 3
	// maxLowerLen bounds the overlay lowerdir option. mount(2) takes at
	// most a page of options, and upperdir/workdir need room too.
	maxLowerLen = 3300
	// defaultPath is set when an image's config has no PATH.
	defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// PullOptions tune Pull.
type PullOptions struct {
	// IfMissing answers from the cache without asking the registry.
	IfMissing bool
	// Progress, when set, is called every few hundred milliseconds while
	// the caller waits, from the caller's goroutine.
	Progress func(api.PullEvent)
}

// progress counts a running pull; every waiter on the pull reads it.
type progress struct {
	current, total     atomic.Int64
	layersDone, layers atomic.Int64
}

func (p *progress) event() api.PullEvent {
	return api.PullEvent{Type: "progress", Current: p.current.Load(), Total: p.total.Load(),
		LayersDone: int(p.layersDone.Load()), Layers: int(p.layers.Load())}
}

// Pull makes sure ref is cached and returns it. Unless opts.IfMissing is
// set and the image is cached, it asks the registry for the reference's
// manifest and fetches the layers it does not have. Concurrent pulls of
// the same reference share one pull, and concurrent pulls of images sharing
// a layer fetch it once. If ctx ends the caller stops waiting; the pull goes
// on and its result is cached. Errors as for Resolve.
func (s *Store) Pull(ctx context.Context, ref string, opts PullOptions) (api.Image, error) {
	if ref == HostRef {
		return api.Image{}, errdefs.New(errdefs.ErrInvalidArgument, `"host" is the built-in image: there is nothing to pull`)
	}
	r, err := s.parseRef(ref)
	if err != nil {
		return api.Image{}, err
	}
	rec, err := s.pull(ctx, r, opts)
	if err != nil {
		return api.Image{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.infoLocked(rec), nil
}

func (s *Store) pull(ctx context.Context, r name.Reference, opts PullOptions) (*imageRecord, error) {
	key := r.Name()
	if opts.IfMissing {
		rec, err := s.cached(r)
		if rec != nil || err != nil {
			return rec, err
		}
	}
	ch := s.pulls.DoChan(key, func() (any, error) {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pullTimeout)
		defer cancel()
		prog := &progress{}
		s.flights.Store(key, prog)
		defer s.flights.Delete(key)
		start := time.Now()
		rec, err := s.fetchImage(pctx, r, prog)
		if err != nil {
			// Logged as well as returned: the pull outlives its waiters,
			// who may all have gone.
			var cfe *configFileError
			if errors.As(err, &cfe) {
				// What the client's message leaves out.
				s.log.Warn("pull failed", "image", key, "err", err, "file", cfe.path, "cause", cfe.err)
			} else {
				s.log.Warn("pull failed", "image", key, "err", err)
			}
			return nil, err
		}
		s.log.Info("pulled", "image", key, "digest", rec.Digest, "layers", len(rec.Layers), "took", time.Since(start))
		return rec, nil
	})
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case res := <-ch:
			if res.Err != nil {
				return nil, res.Err
			}
			rec := res.Val.(*imageRecord)
			if opts.Progress != nil {
				// A pull may end before the first tick: report it whole.
				opts.Progress(s.doneEvent(rec))
			}
			return rec, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the pull of %s: %w (it goes on in the background)", key, ctx.Err())
		case <-tick.C:
			if p, ok := s.flights.Load(key); ok && opts.Progress != nil {
				opts.Progress(p.(*progress).event())
			}
		}
	}
}

// fetchImage fetches ref's manifest and config, then each layer it lacks,
// and records the image. GC is held off meanwhile (gcMu), so layers fetched
// for this image cannot be collected before the image record names them.
func (s *Store) fetchImage(ctx context.Context, r name.Reference, prog *progress) (*imageRecord, error) {
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	desc, err := remote.Get(r, s.remoteOptions(ctx)...)
	if err != nil {
		return nil, s.registryError(r, err)
	}
	img, err := desc.Image()
	if err != nil {
		if strings.Contains(err.Error(), "no child with platform") {
			p := Platform()
			return nil, errdefs.New(errdefs.ErrUnprocessable, fmt.Sprintf("image %s has no %s/%s variant", r, p.OS, p.Architecture))
		}
		if rerr := s.registryError(r, err); !errors.Is(rerr, errdefs.ErrInternal) {
			if _, status := errdefs.Code(rerr); status != 500 {
				return nil, rerr
			}
		}
		return nil, fmt.Errorf("image %s: %v: %w", r, err, errdefs.ErrUnprocessable)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, s.registryError(r, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, s.registryError(r, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, s.registryError(r, err)
	}
	if len(layers) == 0 || len(cf.RootFS.DiffIDs) != len(layers) {
		return nil, errdefs.New(errdefs.ErrUnprocessable, fmt.Sprintf(
			"image %s: its config lists %d layers, its manifest %d", r, len(cf.RootFS.DiffIDs), len(layers)))
	}
	prog.layers.Store(int64(len(layers)))
	for _, l := range layers {
		if n, err := l.Size(); err == nil {
			prog.total.Add(n)
		}
	}
	digests := make([]string, len(layers))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelLayers)
	for i, l := range layers {
		g.Go(func() error {
			d, err := s.ensureLayer(gctx, r, l, cf.RootFS.DiffIDs[i], prog)
			digests[i] = d
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	rec := &imageRecord{
		Ref: r.Name(), Digest: desc.Digest.String(), ManifestDigest: digest.String(), Layers: digests,
		Env: cf.Config.Env, WorkingDir: cf.Config.WorkingDir, User: cf.Config.User,
		PulledAt: time.Now().UTC(),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.state.Images[rec.Ref]; old == nil || old.ManifestDigest != rec.ManifestDigest {
		// Once per image, not per layer or per refresh of a tag.
		if n := s.skippedDevicesLocked(rec); n > 0 {
			s.log.Info("device nodes skipped", "image", rec.Ref, "digest", rec.Digest, "count", n)
		}
	}
	s.state.Images[rec.Ref] = rec
	if err := s.saveLocked(); err != nil {
		delete(s.state.Images, rec.Ref)
		return nil, err
	}
	return rec, nil
}

// ensureLayer makes sure layer l is unpacked and returns its digest.
func (s *Store) ensureLayer(ctx context.Context, r name.Reference, l v1.Layer, diffID v1.Hash, prog *progress) (string, error) {
	d, err := l.Digest()
	if err != nil {
		return "", s.registryError(r, err)
	}
	size, _ := l.Size()
	key := d.String()
	ran := false
	_, err, _ = s.layers.Do(key, func() (any, error) {
		s.mu.Lock()
		_, ok := s.state.Layers[key]
		s.mu.Unlock()
		if ok {
			return nil, nil
		}
		ran = true
		return nil, s.fetchLayer(ctx, r, l, d, diffID, size, prog)
	})
	if err != nil {
		return "", err
	}
	if !ran {
		prog.current.Add(size) // cached, or fetched by another pull
	}
	prog.layersDone.Add(1)
	return key, nil
}

// countingReader counts bytes into a progress and keeps the first read
// error, so a failed unpack can tell a network or digest failure from bad
// layer content.
type countingReader struct {
	r    io.Reader
	prog *progress
	err  error
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.prog.current.Add(int64(n))
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// fetchLayer downloads, verifies and unpacks one layer into a temporary
// directory, then renames it into the layer store and records it. On any
// failure the temporary directory goes: nothing partial is left.
func (s *Store) fetchLayer(ctx context.Context, r name.Reference, l v1.Layer, d, diffID v1.Hash, size int64, prog *progress) (err error) {
	start := time.Now()
	rc, err := l.Compressed() // go-containerregistry checks size and digest at EOF
	if err != nil {
		return s.registryError(r, err)
	}
	defer rc.Close()
	cr := &countingReader{r: rc, prog: prog}
	br := bufio.NewReaderSize(cr, 1<<20)
	dr, closeDR, err := decompress(br)
	if err != nil {
		if cr.err != nil {
			return s.registryError(r, cr.err)
		}
		return fmt.Errorf("layer %s of %s: %v: %w", d, r, err, errdefs.ErrUnprocessable)
	}
	defer closeDR()
	h := sha256.New()
	tee := io.TeeReader(dr, h)

	tmp, err := os.MkdirTemp(s.tmpDir(), "layer-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	st, uerr := UnpackShifted(tee, tmp, s.remap)
	if uerr == nil {
		// Read to the end: the rest of the tar (padding) feeds the diff
		// hash, the rest of the blob lets the digest be checked.
		_, uerr = io.Copy(io.Discard, tee)
		if uerr == nil {
			_, uerr = io.Copy(io.Discard, br)
		}
	}
	if uerr != nil && cr.err == nil {
		// Bad content may just be a corrupted download: read the rest of
		// the blob so its digest check can say so.
		_, _ = io.Copy(io.Discard, br)
	}
	if cr.err != nil {
		return s.registryError(r, cr.err)
	}
	if uerr != nil {
		if errors.Is(uerr, errdefs.ErrUnprocessable) {
			return fmt.Errorf("image %s, layer %s: %w", r, d, uerr)
		}
		return fmt.Errorf("unpack layer %s of %s: %w", d, r, uerr)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != diffID.String() {
		return errdefs.New(errdefs.ErrUnprocessable, fmt.Sprintf(
			"image %s, layer %s: its content hashes to %s, the image config says %s", r, d, got, diffID))
	}
	if err := syncDir(tmp); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.newLayerIDLocked()
	if err := os.Rename(tmp, s.layerDir(id)); err != nil {
		return err
	}
	s.state.Layers[d.String()] = &layerRecord{ID: id, Digest: d.String(), DiffID: diffID.String(), Size: st.Bytes, Compressed: size,
		SkippedDevices: st.SkippedDevices}
	if err := s.saveLocked(); err != nil {
		delete(s.state.Layers, d.String())
		os.RemoveAll(s.layerDir(id))
		return err
	}
	s.log.Debug("layer unpacked", "image", r.Name(), "layer", d.String(), "dir", id,
		"bytes", st.Bytes, "entries", st.Entries, "took", time.Since(start))
	return nil
}

// decompress recognises gzip and zstd by their magic numbers; anything
// else is read as an uncompressed tar.
func decompress(br *bufio.Reader) (io.Reader, func(), error) {
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		zr.Multistream(true)
		return zr, func() { zr.Close() }, nil
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

// resolveOCI returns a cached image (pulling it when missing) with a lease
// on its layers.
func (s *Store) resolveOCI(ctx context.Context, ref string, onProgress func(api.PullEvent)) (*Image, error) {
	r, err := s.parseRef(ref)
	if err != nil {
		return nil, err
	}
	rec, err := s.pull(ctx, r, PullOptions{IfMissing: true, Progress: onProgress})
	if err != nil {
		return nil, err
	}
	img, err := s.lease(rec.Ref)
	if err != nil {
		return nil, err
	}
	if err := img.resolveUser(); err != nil {
		img.Release()
		return nil, err
	}
	return img, nil
}

// lease builds the Image of a cached reference and holds its layers
// against garbage collection until Release.
func (s *Store) lease(ref string) (*Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.state.Images[ref]
	if rec == nil {
		return nil, errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("image %s was removed from the cache meanwhile; retry", ref))
	}
	ids := make([]string, 0, len(rec.Layers))
	lower := make([]string, 0, len(rec.Layers))
	seen := map[string]bool{}
	for i := len(rec.Layers) - 1; i >= 0; i-- { // overlay wants the topmost first
		l := s.state.Layers[rec.Layers[i]]
		if l == nil {
			return nil, fmt.Errorf("image %s: layer %s is not in the cache: %w", ref, rec.Layers[i], errdefs.ErrInternal)
		}
		// A layer repeated in an image (old builders' empty layers) is
		// stacked once, at its topmost place: overlayfs refuses the same
		// lower directory twice, and the topmost copy already re-applies
		// everything the lower copies would.
		if seen[l.ID] {
			continue
		}
		seen[l.ID] = true
		ids = append(ids, l.ID)
		lower = append(lower, s.layerDir(l.ID))
	}
	if n := len(strings.Join(lower, ":")); n > maxLowerLen {
		return nil, errdefs.New(errdefs.ErrUnprocessable, fmt.Sprintf(
			"image %s has %d layers: too many to stack in one overlay mount from data dir %s (%d bytes of paths, at most %d); squash the image or use a shorter --data-dir",
			ref, len(lower), s.dir, n, maxLowerLen))
	}
	for _, id := range ids {
		s.leases[id]++
	}
	var once sync.Once
	img := &Image{
		Ref:        rec.Ref,
		Overlays:   []runtime.Overlay{{Target: "/", Lower: lower}},
		Env:        append([]string(nil), rec.Env...),
		WorkingDir: rec.WorkingDir,
		User:       rec.User,
		release: func() {
			once.Do(func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				for _, id := range ids {
					if s.leases[id]--; s.leases[id] <= 0 {
						delete(s.leases, id)
					}
				}
			})
		},
	}
	hasPath := false
	for _, kv := range img.Env {
		if strings.HasPrefix(kv, "PATH=") {
			hasPath = true
		}
	}
	if !hasPath {
		img.Env = append([]string{defaultPath}, img.Env...)
	}
	return img, nil
}

// doneEvent is the progress event of a finished pull.
func (s *Store) doneEvent(rec *imageRecord) api.PullEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := api.PullEvent{Type: "progress", Layers: len(rec.Layers), LayersDone: len(rec.Layers)}
	for _, d := range rec.Layers {
		if l := s.state.Layers[d]; l != nil {
			ev.Total += l.Compressed
		}
	}
	ev.Current = ev.Total
	return ev
}

// infoLocked describes a record for the API. s.mu must be held.
func (s *Store) infoLocked(rec *imageRecord) api.Image {
	out := api.Image{Ref: rec.Ref, Digest: rec.Digest, ManifestDigest: rec.ManifestDigest, Layers: len(rec.Layers), Env: rec.Env,
		WorkingDir: rec.WorkingDir, User: rec.User, PulledAt: rec.PulledAt, SkippedDevices: s.skippedDevicesLocked(rec)}
	for _, d := range rec.Layers {
		if l := s.state.Layers[d]; l != nil {
			out.Size += l.Size
		}
	}
	return out
}

// skippedDevicesLocked counts the device nodes not created in an image's
// layers. s.mu must be held.
func (s *Store) skippedDevicesLocked(rec *imageRecord) int {
	n := 0
	for _, d := range rec.Layers {
		if l := s.state.Layers[d]; l != nil {
			n += l.SkippedDevices
		}
	}
	return n
}

// cached returns the cached record of r, or nil. A REPO@DIGEST that was
// not pulled by that name is found too when a cached image of the same
// repository has that digest (the registry's digest of a tag, or this
// platform's manifest digest): the image is the same content, so it is
// recorded under the digest reference and starts without the registry.
func (s *Store) cached(r name.Reference) (*imageRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec := s.state.Images[r.Name()]; rec != nil {
		return rec, nil
	}
	d, ok := r.(name.Digest)
	if !ok {
		return nil, nil
	}
	for _, rec := range s.state.Images {
		other, err := name.ParseReference(rec.Ref, name.WeakValidation)
		if err != nil || other.Context().Name() != d.Context().Name() ||
			(rec.Digest != d.DigestStr() && rec.ManifestDigest != d.DigestStr()) {
			continue
		}
		alias := *rec
		alias.Ref = d.Name()
		alias.Digest = d.DigestStr()
		alias.Layers = append([]string(nil), rec.Layers...)
		s.state.Images[alias.Ref] = &alias
		if err := s.saveLocked(); err != nil {
			delete(s.state.Images, alias.Ref)
			return nil, err
		}
		s.log.Info("digest reference found in the cache", "image", alias.Ref, "as", rec.Ref)
		return &alias, nil
	}
	return nil, nil
}

// List returns the cached images, sorted by reference.
func (s *Store) List() []api.Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]api.Image, 0, len(s.state.Images))
	for _, rec := range s.state.Images {
		out = append(out, s.infoLocked(rec))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out
}

// Get returns a cached image, or ErrNotFound.
func (s *Store) Get(ref string) (api.Image, error) {
	r, err := s.parseRef(ref)
	if err != nil {
		return api.Image{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.state.Images[r.Name()]
	if rec == nil {
		return api.Image{}, errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("image %s is not cached (pull it with: chaser images pull %s)", r.Name(), ref))
	}
	return s.infoLocked(rec), nil
}

// Remove forgets a cached reference and collects the layers no image uses
// any more (layers of running sandboxes stay until they end). It returns
// ErrNotFound when ref is not cached.
func (s *Store) Remove(ctx context.Context, ref string) error {
	r, err := s.parseRef(ref)
	if err != nil {
		return err
	}
	s.mu.Lock()
	rec := s.state.Images[r.Name()]
	if rec == nil {
		s.mu.Unlock()
		return errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("image %s is not cached", r.Name()))
	}
	delete(s.state.Images, rec.Ref)
	err = s.saveLocked()
	if err != nil {
		s.state.Images[rec.Ref] = rec
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.log.Info("image removed", "image", rec.Ref)
	if _, err := s.GC(ctx); err != nil {
		s.log.Warn("layer garbage collection after remove", "err", err)
	}
	return nil
}
