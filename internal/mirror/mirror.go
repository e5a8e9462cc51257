package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/agent/fs"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// chunk bounds the paths of one hashes or prune request (its JSON body
// must stay under the server's 1 MiB).
const chunk = 2000

// Config configures a Mirror.
type Config struct {
	Client    *client.Client
	SessionID string
	// Local is the local directory mirrored; Remote the sandbox directory
	// it is mirrored into (/workspace).
	Local, Remote string
	// Emit receives the events (api.DevEvent; everything the mirror has
	// to say is an event, it does not log): called from the goroutine
	// running the mirror, never concurrently.
	Emit func(api.DevEvent)
	// Quiet and MaxDelay tune batching (defaults 100 ms and 1 s).
	Quiet, MaxDelay time.Duration
}

// Stats counts what a reconcile did.
type Stats struct {
	Files    int   // local entries mirrored
	Uploaded int   // entries sent
	Deleted  int   // remote paths pruned
	Bytes    int64 // bytes of file content sent
}

// Mirror mirrors one local tree into one sandbox directory. Its methods
// are called from one goroutine.
type Mirror struct {
	cfg     Config
	matcher *Matcher
	// remote is what the sandbox holds, as far as the mirror knows: the
	// last manifest plus every change applied since. A change whose local
	// state equals it is not sent.
	remote  map[string]sent
	hashes  map[string]cached // local hashes, by path
	maxSize int64
	onDir   func(rel string)
	// makeRoot is set when the remote root does not exist yet.
	makeRoot bool
	buf      []byte // for hashing local files
}

type cached struct {
	size  int64
	mtime time.Time
	sha   string
}

// New returns a mirror; nothing happens until Reconcile or Run.
func New(cfg Config) *Mirror {
	if cfg.Quiet == 0 {
		cfg.Quiet = 100 * time.Millisecond
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = time.Second
	}
	if cfg.Emit == nil {
		cfg.Emit = func(api.DevEvent) {}
	}
	return &Mirror{cfg: cfg, matcher: NewMatcher(), remote: map[string]sent{}, hashes: map[string]cached{}, maxSize: fs.DefaultMaxFileSize}
}

func (m *Mirror) abs(rel string) string {
	return filepath.Join(m.cfg.Local, filepath.FromSlash(rel))
}

// localHash returns the SHA-256 of local file rel, from the cache when its
// size and mtime did not change.
func (m *Mirror) localHash(rel string, e Entry) (string, error) {
	if c, ok := m.hashes[rel]; ok && c.size == e.Size && c.mtime.Equal(e.MTime) {
		return c.sha, nil
	}
	if m.buf == nil {
		m.buf = make([]byte, 64<<10)
	}
	sum, err := hashFile(m.abs(rel), m.buf)
	if err != nil {
		return "", err
	}
	m.hashes[rel] = cached{size: e.Size, mtime: e.MTime, sha: sum}
	return sum, nil
}

// Reconcile makes the sandbox directory match the local tree: it scans
// the tree, compares it with the sandbox's manifest (sizes, modes, types
// and link targets, then hashes of files that look alike), sends what
// differs as one tar stream and prunes what is gone locally, except what
// local rules ignore. With events, every change is emitted as a "sync"
// event. Files over the server's limit are reported and skipped.
func (m *Mirror) Reconcile(ctx context.Context, events bool) (Stats, error) {
	m.matcher = NewMatcher()
	local, errs := Scan(m.cfg.Local, m.matcher, m.onDir)
	for _, err := range errs {
		m.cfg.Emit(api.DevEvent{Type: "error", Code: "unreadable", Message: err.Error()})
	}
	st := Stats{Files: len(local)}
	man, err := m.cfg.Client.Manifest(ctx, m.cfg.SessionID, m.cfg.Remote, false)
	if err != nil {
		return st, fmt.Errorf("manifest of %s: %w", m.cfg.Remote, err)
	}
	if man.Error != "" {
		return st, errdefs.New(errdefs.ErrUnavailable, "manifest of "+m.cfg.Remote+" incomplete: "+man.Error)
	}
	m.makeRoot = !man.Exists
	if man.MaxFileSize > 0 {
		m.maxSize = man.MaxFileSize
	}
	remote := make(map[string]api.ManifestEntry, len(man.Entries))
	for _, e := range man.Entries {
		remote[e.Path] = e
	}
	plan := Diff(local, remote, m.matcher.Ignored)

	// Hash both sides at once: the sandbox's hashes come while the local
	// files are read.
	type hashes struct {
		h   map[string]string
		err error
	}
	remotec := make(chan hashes, 1)
	go func() {
		out := map[string]string{}
		for i := 0; i < len(plan.Check); i += chunk {
			h, err := m.cfg.Client.HashFiles(ctx, m.cfg.SessionID, m.cfg.Remote, plan.Check[i:min(i+chunk, len(plan.Check))])
			if err != nil {
				remotec <- hashes{err: fmt.Errorf("hashes in %s: %w", m.cfg.Remote, err)}
				return
			}
			for k, v := range h {
				out[k] = v
			}
		}
		remotec <- hashes{h: out}
	}()
	localHash := map[string]string{}
	var check []string
	for _, rel := range plan.Check {
		sum, err := m.localHash(rel, local[rel])
		if err != nil {
			plan.Upload = append(plan.Upload, rel) // changed meanwhile: send what is there
			continue
		}
		localHash[rel] = sum
		check = append(check, rel)
	}
	r := <-remotec
	if r.err != nil {
		return st, r.err
	}
	remoteHash := r.h
	changed := Changed(check, localHash, remoteHash)
	plan.Upload = append(plan.Upload, changed...)

	// What the sandbox holds now, for the watcher's comparisons.
	m.remote = make(map[string]sent, len(remote))
	for rel, r := range remote {
		mode, _, _ := fs.ParseMode(r.Mode)
		m.remote[rel] = sent{Entry: Entry{Type: r.Type, Size: r.Size, Mode: mode, Link: r.LinkTarget}, SHA: remoteHash[rel]}
	}
	up, del, err := m.apply(ctx, plan.Upload, plan.Delete, local, events)
	st.Uploaded, st.Deleted, st.Bytes = up.n, del, up.bytes
	return st, err
}

type uploaded struct {
	n     int
	bytes int64
}

// apply prunes del, then sends upload as one tar stream. Files over the
// server's limit are reported and left out. The mirror's idea of the
// remote side follows what the server reports as done.
func (m *Mirror) apply(ctx context.Context, upload, del []string, local Tree, events bool) (uploaded, int, error) {
	var up uploaded
	deleted := 0
	for i := 0; i < len(del); i += chunk {
		res, err := m.cfg.Client.Prune(ctx, m.cfg.SessionID, m.cfg.Remote, del[i:min(i+chunk, len(del))])
		if err != nil {
			return up, deleted, fmt.Errorf("prune in %s: %w", m.cfg.Remote, err)
		}
		for _, rel := range res.Removed {
			m.forget(rel)
			deleted++
			if events {
				m.cfg.Emit(api.DevEvent{Type: "sync", Op: "delete", Path: rel})
			}
		}
		for _, e := range res.Errors {
			m.cfg.Emit(api.DevEvent{Type: "error", Op: "delete", Path: e.Path, Code: e.Code, Message: e.Message})
		}
	}
	var send []string
	for _, rel := range upload {
		if e, ok := local[rel]; ok && e.Type == api.FileTypeFile && e.Size > m.maxSize {
			m.cfg.Emit(api.DevEvent{Type: "error", Op: "write", Path: rel, Code: "too_large",
				Message: fmt.Sprintf("%s is %s, over the server's %s limit per file: skipped", rel, fs.HumanSize(e.Size), fs.HumanSize(m.maxSize))})
			continue
		}
		send = append(send, rel)
	}
	if len(send) == 0 && !m.makeRoot {
		return up, deleted, nil
	}
	pr, pw := io.Pipe()
	done := make(chan map[string]sent, 1)
	go func() {
		s, err := writeTar(pw, m.cfg.Local, send, func(rel string, err error) {
			m.cfg.Emit(api.DevEvent{Type: "error", Op: "write", Path: rel, Code: "unreadable", Message: fmt.Sprintf("cannot read %s: %v: skipped", rel, err)})
		})
		pw.CloseWithError(err)
		done <- s
	}()
	// An archive, even empty, creates the root: -c runs in it.
	res, err := m.cfg.Client.Archive(ctx, m.cfg.SessionID, m.cfg.Remote, pr)
	if err == nil {
		m.makeRoot = false
	}
	pr.CloseWithError(errors.New("upload ended")) // unblocks the writer if the request failed
	wrote := <-done
	if err != nil {
		return up, deleted, fmt.Errorf("upload to %s: %w", m.cfg.Remote, err)
	}
	for _, w := range res.Written {
		s, ok := wrote[w.Path]
		if !ok {
			continue // changed while read: not taken as synced
		}
		m.remote[w.Path] = s
		up.n++
		up.bytes += w.Size
		if events {
			op := map[string]string{api.FileTypeFile: "write", api.FileTypeDir: "mkdir", api.FileTypeSymlink: "symlink"}[w.Type]
			m.cfg.Emit(api.DevEvent{Type: "sync", Op: op, Path: w.Path, Bytes: w.Size})
		}
	}
	for _, e := range res.Errors {
		m.cfg.Emit(api.DevEvent{Type: "error", Op: "write", Path: e.Path, Code: e.Code, Message: e.Message})
	}
	return up, deleted, nil
}

// forget drops rel and everything beneath it from the remote state.
func (m *Mirror) forget(rel string) {
	r, ok := m.remote[rel]
	delete(m.remote, rel)
	if ok && r.Type != api.FileTypeDir {
		return
	}
	prefix := rel + "/"
	for k := range m.remote {
		if strings.HasPrefix(k, prefix) {
			delete(m.remote, k)
		}
	}
}

// message is the user-facing text of err.
func message(err error) string { return httpjson.Message(err) }
