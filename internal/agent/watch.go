package agent

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	agentfs "github.com/chaserhq/chaser/internal/agent/fs"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// Operations of a WatchEvent.
const (
	WatchCreate = "create"
	WatchWrite  = "write"
	WatchRemove = "remove"
	WatchRename = "rename"
	WatchChmod  = "chmod"
)

// WatchEvent is one line of GET /v1/watch: Name is relative to the
// watched directory ("f", "sub/g").
type WatchEvent struct {
	Name string `json:"name"`
	Op   string `json:"op"`
}

// watchSkip are trees a recursive watch does not descend into: the
// agent's own directory and the kernel's.
var watchSkip = []string{agentfs.Reserved, "/proc", "/sys", "/dev"}

func skipped(p string) bool {
	for _, s := range watchSkip {
		if p == s || strings.HasPrefix(p, s+"/") {
			return true
		}
	}
	return false
}

// watch serves GET /v1/watch?path=&recursive=: the changes under the
// directory path as NDJSON WatchEvents, until the request ends. A
// recursive watch also watches subdirectories, including those created
// while it runs (without following symlinks).
func (a *Agent) watch(w http.ResponseWriter, r *http.Request) {
	root, err := agentfs.Clean(r.URL.Query().Get("path"))
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	recursive := queryBool(r, "recursive")
	fi, err := os.Stat(root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		httpjson.WriteError(w, errdefs.New(errdefs.ErrNotFound, "directory "+root+" does not exist"))
		return
	case err != nil:
		httpjson.WriteError(w, errdefs.New(errdefs.ErrInvalidArgument, "cannot watch "+root+": "+err.Error()))
		return
	case !fi.IsDir():
		httpjson.WriteError(w, errdefs.New(errdefs.ErrInvalidArgument, root+" is not a directory"))
		return
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		httpjson.WriteError(w, errdefs.New(errdefs.ErrUnavailable, "cannot watch: "+err.Error()))
		return
	}
	defer fw.Close()
	if err := fw.Add(root); err != nil {
		httpjson.WriteError(w, errdefs.New(errdefs.ErrUnavailable, "cannot watch "+root+": "+err.Error()))
		return
	}
	// addTree watches the directories under dir and returns what it found
	// under dir: entries made before their directory was watched, whose
	// creation no event told.
	addTree := func(dir string) (found []string) {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if p != dir {
				found = append(found, p)
			}
			if !d.IsDir() {
				return nil
			}
			if skipped(p) && p != root {
				return filepath.SkipDir
			}
			if p != root {
				if err := fw.Add(p); err != nil {
					a.log.Debug("watch", "path", p, "err", err)
				}
			}
			return nil
		})
		return found
	}
	if recursive {
		addTree(root)
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	enc := json.NewEncoder(w)
	// A directory made while a recursive watch runs is watched once its
	// create event arrives; what was made in it before that (mkdir d &&
	// echo > d/f) is reported as created then, and the kernel's own
	// create event for it, if the watch came first after all, dropped.
	// That event is queued by then: a second later nothing is kept.
	told := map[string]time.Time{}
	for {
		select {
		case <-r.Context().Done():
			return
		case err, ok := <-fw.Errors:
			if !ok {
				return
			}
			a.log.Debug("watch", "path", root, "err", err)
		case ev, ok := <-fw.Events:
			if !ok {
				return
			}
			rel, err := filepath.Rel(root, ev.Name)
			if err != nil || rel == "." {
				continue
			}
			var found []string
			if recursive && ev.Has(fsnotify.Create) {
				if st, err := os.Lstat(ev.Name); err == nil && st.IsDir() {
					found = addTree(ev.Name)
				}
			}
			if _, ok := told[ev.Name]; ok && ev.Has(fsnotify.Create|fsnotify.Remove|fsnotify.Rename) {
				delete(told, ev.Name)
				ev.Op &^= fsnotify.Create
			}
			for _, o := range []struct {
				op   fsnotify.Op
				name string
			}{{fsnotify.Create, WatchCreate}, {fsnotify.Write, WatchWrite}, {fsnotify.Remove, WatchRemove}, {fsnotify.Rename, WatchRename}, {fsnotify.Chmod, WatchChmod}} {
				if !ev.Has(o.op) {
					continue
				}
				if err := enc.Encode(WatchEvent{Name: filepath.ToSlash(rel), Op: o.name}); err != nil {
					return
				}
			}
			if len(told) > 4096 {
				for p, at := range told {
					if time.Since(at) > time.Second {
						delete(told, p)
					}
				}
			}
			for _, p := range found {
				if _, ok := told[p]; ok {
					continue // found, and told, under a parent's create already
				}
				told[p] = time.Now()
				rel, _ := filepath.Rel(root, p)
				if err := enc.Encode(WatchEvent{Name: filepath.ToSlash(rel), Op: WatchCreate}); err != nil {
					return
				}
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}
