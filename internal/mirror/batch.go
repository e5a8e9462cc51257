package mirror

import (
	"sort"
	"time"
)

// batcher gathers changed paths into batches: a batch is due once no
// change came for quiet, or max after its first change, whichever is
// first — so a burst (a git checkout of hundreds of files) goes as one
// batch, and a steady stream of writes is still mirrored within max.
type batcher struct {
	quiet, max  time.Duration
	first, last time.Time
	paths       map[string]struct{}
}

func newBatcher(quiet, max time.Duration) *batcher {
	return &batcher{quiet: quiet, max: max, paths: map[string]struct{}{}}
}

// add records a change of rel at now.
func (b *batcher) add(rel string, now time.Time) {
	if len(b.paths) == 0 {
		b.first = now
	}
	b.last = now
	b.paths[rel] = struct{}{}
}

// empty reports whether nothing is pending.
func (b *batcher) empty() bool { return len(b.paths) == 0 }

// due returns when the pending batch is due (zero when nothing pends).
func (b *batcher) due() time.Time {
	if b.empty() {
		return time.Time{}
	}
	d := b.last.Add(b.quiet)
	if m := b.first.Add(b.max); m.Before(d) {
		d = m
	}
	return d
}

// take returns the pending paths, sorted, and starts a new batch.
func (b *batcher) take() []string {
	out := make([]string, 0, len(b.paths))
	for p := range b.paths {
		out = append(out, p)
	}
	sort.Strings(out)
	b.paths = map[string]struct{}{}
	return out
}
