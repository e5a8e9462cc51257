package image

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// GC removes unpacked layers that no cached image names, unless a sandbox
// uses them: held by a lease (a create between Resolve and its mount) or
// mounted (any overlay in the host's mount table with the layer as a lower
// directory — this also covers sandboxes that outlived a server restart).
// It skips its work while a pull runs (a pull's fresh layers are named by
// no image yet) and reports how many layers it removed.
func (s *Store) GC(ctx context.Context) (int, error) {
	if !s.gcMu.TryLock() {
		s.log.Debug("layer GC deferred: a pull is running")
		return 0, nil
	}
	defer s.gcMu.Unlock()
	mounted, err := mountedLowers()
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	used := map[string]bool{}
	for _, rec := range s.state.Images {
		for _, d := range rec.Layers {
			used[d] = true
		}
	}
	var victims []*layerRecord
	for d, l := range s.state.Layers {
		if used[d] || s.leases[l.ID] > 0 || mounted[s.layerDir(l.ID)] {
			continue
		}
		victims = append(victims, l)
		delete(s.state.Layers, d)
	}
	if len(victims) == 0 {
		s.mu.Unlock()
		return 0, nil
	}
	// Forget first, delete after: a crash in between leaves unnamed
	// directories, which open removes.
	err = s.saveLocked()
	if err != nil {
		for _, l := range victims {
			s.state.Layers[l.Digest] = l
		}
	}
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	for _, l := range victims {
		if err := os.RemoveAll(s.layerDir(l.ID)); err != nil {
			return 0, err
		}
		s.log.Info("layer collected", "layer", l.Digest, "dir", l.ID)
	}
	for _, f := range s.onGC {
		f(ctx)
	}
	return len(victims), nil
}

// OnGC registers f to run after each GC that collected layers: caches
// made from layers (the microvm runtime's base disks) collect theirs.
// Call it before the store is used.
func (s *Store) OnGC(f func(context.Context)) { s.onGC = append(s.onGC, f) }

// RunGC collects layers every interval until ctx ends: layers of removed
// images that running sandboxes held when they were removed.
func (s *Store) RunGC(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.GC(ctx); err != nil {
				s.log.Error("layer GC", "err", err)
			}
		}
	}
}

// mountedLowers returns every lower directory of the overlay mounts in the
// host's mount table.
func mountedLowers() (map[string]bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ... - overlay overlay rw,lowerdir=a:b,upperdir=...
		_, after, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields := strings.Fields(after)
		if len(fields) < 3 || fields[0] != "overlay" {
			continue
		}
		for _, opt := range strings.Split(fields[2], ",") {
			if v, ok := strings.CutPrefix(opt, "lowerdir="); ok {
				for _, d := range strings.Split(v, ":") {
					out[filepath.Clean(d)] = true
				}
			}
		}
	}
	return out, sc.Err()
}
