package mirror

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
)

// Backoff bounds of the retries after a failed batch.
const (
	retryFirst = 250 * time.Millisecond
	retryMax   = 5 * time.Second
)

// Run watches the local tree (recursively, new directories included),
// makes the initial reconcile, calls ready with its stats, then mirrors
// changes in batches until ctx ends (it then returns nil). A failed batch
// (a dropped connection, the server restarting) is retried with backoff
// as a full reconcile, which also repairs whatever the failure left
// half-done. It returns an error when the initial reconcile fails, or
// when the session is gone or the key refused.
func (m *Mirror) Run(ctx context.Context, ready func(Stats)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("cannot watch %s: %w", m.cfg.Local, err)
	}
	defer w.Close()
	// Watch each directory before it is read, so nothing created while
	// scanning is missed; Add on a watched directory is harmless.
	m.onDir = func(rel string) {
		if err := w.Add(m.abs(rel)); err != nil {
			m.cfg.Emit(api.DevEvent{Type: "error", Path: rel, Code: "watch",
				Message: fmt.Sprintf("cannot watch %s: %v (raise fs.inotify.max_user_watches for large trees)", m.abs(rel), err)})
		}
	}
	// "ready" comes first: what the initial reconcile reports (files
	// over the limit, unreadable directories) is held back until then.
	emit := m.cfg.Emit
	var held []api.DevEvent
	m.cfg.Emit = func(ev api.DevEvent) { held = append(held, ev) }
	st, err := m.Reconcile(ctx, false)
	m.cfg.Emit = emit
	if err != nil {
		return err
	}
	ready(st)
	for _, ev := range held {
		emit(ev)
	}

	b := newBatcher(m.cfg.Quiet, m.cfg.MaxDelay)
	for {
		var due <-chan time.Time
		if !b.empty() {
			due = time.After(time.Until(b.due()))
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			rel, ok := m.rel(ev.Name)
			if !ok {
				continue
			}
			if ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Remove) {
				unwatch(w, ev.Name)
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() && !m.matcher.Ignored(rel, true) {
					m.onDir(rel) // at once: files may land in it before the batch
				}
			}
			b.add(rel, time.Now())
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				b.add("", time.Now()) // events were lost: reconcile everything
			}
			m.cfg.Emit(api.DevEvent{Type: "error", Code: "watch", Message: err.Error()})
		case <-due:
			if err := m.flushRetrying(ctx, b.take()); err != nil {
				return err
			}
		}
	}
}

// rel turns an event's path into a relative slash path; ok is false for
// the root itself and for paths outside it.
func (m *Mirror) rel(name string) (string, bool) {
	r, err := filepath.Rel(m.cfg.Local, name)
	if err != nil || r == "." || strings.HasPrefix(r, "..") {
		return "", false
	}
	return filepath.ToSlash(r), true
}

// unwatch drops the watches of a directory that was moved or removed, and
// of those beneath it: inotify keeps watching a moved directory under its
// old name, so its events would name paths that no longer exist. Its new
// place gets a Create event and is watched afresh.
func unwatch(w *fsnotify.Watcher, name string) {
	for _, p := range w.WatchList() {
		if p == name || strings.HasPrefix(p, name+string(filepath.Separator)) {
			_ = w.Remove(p)
		}
	}
}

// fatal reports errors that no retry can fix.
func fatal(err error) bool {
	return errors.Is(err, errdefs.ErrNotFound) || errors.Is(err, errdefs.ErrUnauthenticated) || errors.Is(err, errdefs.ErrPermissionDenied)
}

// flushRetrying mirrors one batch; after a failure it retries with
// backoff, as a full reconcile, until one succeeds or ctx ends.
func (m *Mirror) flushRetrying(ctx context.Context, paths []string) error {
	err := m.flush(ctx, paths)
	wait := retryFirst
	for err != nil && ctx.Err() == nil {
		if fatal(err) {
			return err
		}
		m.cfg.Emit(api.DevEvent{Type: "error", Code: "sync_failed", Message: fmt.Sprintf("%s; retrying in %s with a full reconcile", message(err), wait)})
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(wait*2, retryMax)
		var st Stats
		if st, err = m.Reconcile(ctx, true); err == nil {
			m.cfg.Emit(api.DevEvent{Type: "reconcile", Files: st.Files, Uploaded: st.Uploaded, Deleted: st.Deleted, Bytes: st.Bytes})
		}
	}
	return nil
}

// flush mirrors the changed paths of one batch: each is looked at as it
// is now (so a burst of writes to one file sends it once), new or changed
// directories with everything beneath them. A change of ignore rules, or
// lost events, makes it a full reconcile.
func (m *Mirror) flush(ctx context.Context, paths []string) error {
	for _, rel := range paths {
		if rel == "" || isIgnoreFile(rel) {
			st, err := m.Reconcile(ctx, true)
			if err == nil {
				m.cfg.Emit(api.DevEvent{Type: "reconcile", Files: st.Files, Uploaded: st.Uploaded, Deleted: st.Deleted, Bytes: st.Bytes})
			}
			return err
		}
	}
	local := Tree{}
	var del []string
	for _, rel := range paths {
		abs := m.abs(rel)
		fi, err := os.Lstat(abs)
		if err != nil {
			if _, ok := m.remote[rel]; ok {
				del = append(del, rel)
			}
			continue
		}
		e, ok := entryOf(abs, fi)
		if !ok || m.matcher.Ignored(rel, e.Type == api.FileTypeDir) {
			continue
		}
		local[rel] = e
		if e.Type == api.FileTypeDir {
			// The watcher may have missed what was created in it before
			// it was watched (a moved-in or unpacked tree): take it all.
			s := &scanner{root: m.cfg.Local, matcher: m.matcher, onDir: m.onDir, tree: local}
			s.scan(rel)
			for _, err := range s.errs {
				m.cfg.Emit(api.DevEvent{Type: "error", Code: "unreadable", Message: err.Error()})
			}
		}
	}
	var upload []string
	for rel, e := range local {
		if m.differs(rel, e) {
			upload = append(upload, rel)
		}
	}
	sort.Strings(upload)
	del = m.pruneList(del)
	_, _, err := m.apply(ctx, upload, del, local, true)
	return err
}

// differs reports whether local entry e of rel differs from what the
// sandbox holds.
func (m *Mirror) differs(rel string, e Entry) bool {
	r, ok := m.remote[rel]
	switch {
	case !ok || r.Type != e.Type:
		return true
	case e.Type == api.FileTypeSymlink:
		return r.Link != e.Link
	case r.Mode != e.Mode:
		return true
	case e.Type == api.FileTypeDir:
		return false
	case r.Size != e.Size || r.SHA == "":
		return true
	}
	sum, err := m.localHash(rel, e)
	return err != nil || sum != r.SHA
}

// pruneList expands the local deletions of a batch into what to prune:
// each path with what the sandbox holds beneath it, ignored paths kept.
func (m *Mirror) pruneList(del []string) []string {
	if len(del) == 0 {
		return nil
	}
	set := map[string]bool{}
	for _, rel := range del {
		set[rel] = true
	}
	var gone []string
	for rel := range m.remote {
		if set[rel] || underAny(rel, set) {
			gone = append(gone, rel)
		}
	}
	isDir := func(rel string) bool { return m.remote[rel].Type == api.FileTypeDir }
	return prunable(gone, isDir, m.matcher.Ignored, nil)
}

// underAny reports whether a parent directory of rel is in set.
func underAny(rel string, set map[string]bool) bool {
	for i := strings.LastIndexByte(rel, '/'); i > 0; i = strings.LastIndexByte(rel[:i], '/') {
		if set[rel[:i]] {
			return true
		}
	}
	return false
}
