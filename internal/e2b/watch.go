package e2b

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"path"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/e2b/spec/filesystem"
)

// Bounds of the watcher trio: events a watcher keeps between polls (the
// oldest are dropped), watchers per sandbox, and how long a watcher whose
// stream ended (the sandbox ended) keeps its last events for a poll.
const (
	maxWatcherEvents  = 1000
	maxWatchers       = 64
	endedWatcherGrace = 5 * time.Minute
	watchKeepalive    = 30 * time.Second
)

var eventTypes = map[string]filesystem.EventType{
	agent.WatchCreate: filesystem.EventType_EVENT_TYPE_CREATE,
	agent.WatchWrite:  filesystem.EventType_EVENT_TYPE_WRITE,
	agent.WatchRemove: filesystem.EventType_EVENT_TYPE_REMOVE,
	agent.WatchRename: filesystem.EventType_EVENT_TYPE_RENAME,
	agent.WatchChmod:  filesystem.EventType_EVENT_TYPE_CHMOD,
}

func fsEvent(ev agent.WatchEvent) *filesystem.FilesystemEvent {
	return &filesystem.FilesystemEvent{Name: ev.Name, Type: eventTypes[ev.Op]}
}

// withEntry is the event of ev, with the entry it names when the watch
// asked for it (includeEntry): stat'ed when the event is seen, so best
// effort, as envd's, and only while the path still exists (not for
// remove and rename, whose name is gone).
func (f *filesystemService) withEntry(ctx context.Context, t target, root string, include bool, ev agent.WatchEvent) *filesystem.FilesystemEvent {
	out := fsEvent(ev)
	if !include || ev.Op == agent.WatchRemove || ev.Op == agent.WatchRename {
		return out
	}
	if fi, err := f.h.sandboxes.StatFile(ctx, t.acct, t.id, path.Join(root, ev.Name)); err == nil {
		out.Entry = entry(fi)
	}
	return out
}

// openWatch opens the agent's watch of a request's directory.
func (f *filesystemService) openWatch(ctx context.Context, t target, p string, recursive bool) (*agent.WatchStream, error) {
	if err := f.h.checkUser(ctx, t); err != nil {
		return nil, err
	}
	c, _, err := f.h.sandboxes.Agent(ctx, t.acct, t.id)
	if err != nil {
		return nil, err
	}
	return c.Watch(ctx, path.Clean(abs(p)), recursive)
}

// WatchDir streams start, then the directory's changes until the client
// goes away (a keepalive per Keepalive-Ping-Interval, else every 30 s,
// keeps idle proxies from cutting it).
func (f *filesystemService) WatchDir(ctx context.Context, req *connect.Request[filesystem.WatchDirRequest], stream *connect.ServerStream[filesystem.WatchDirResponse]) error {
	t, err := f.h.target(ctx, req.Header())
	if err != nil {
		return f.h.connectError(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ws, err := f.openWatch(ctx, t, req.Msg.GetPath(), req.Msg.GetRecursive())
	if err != nil {
		return f.h.connectError(err)
	}
	defer ws.Close()
	events := make(chan agent.WatchEvent)
	done := make(chan error, 1)
	go func() {
		for {
			ev, err := ws.Next()
			if err != nil {
				done <- err
				return
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				done <- ctx.Err()
				return
			}
		}
	}()
	if err := stream.Send(&filesystem.WatchDirResponse{Event: &filesystem.WatchDirResponse_Start{Start: &filesystem.WatchDirResponse_StartEvent{}}}); err != nil {
		return err
	}
	every := watchKeepalive
	if req.Header().Get("Keepalive-Ping-Interval") != "" {
		every = keepalive(req.Header())
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return f.h.connectError(err)
		case ev := <-events:
			fe := f.withEntry(ctx, t, path.Clean(abs(req.Msg.GetPath())), req.Msg.GetIncludeEntry(), ev)
			if err := stream.Send(&filesystem.WatchDirResponse{Event: &filesystem.WatchDirResponse_Filesystem{Filesystem: fe}}); err != nil {
				return err
			}
		case <-tick.C:
			if err := stream.Send(&filesystem.WatchDirResponse{Event: &filesystem.WatchDirResponse_Keepalive{Keepalive: &filesystem.WatchDirResponse_KeepAlive{}}}); err != nil {
				return err
			}
		}
	}
}

// watcher is one watch of the trio: its agent stream runs in the
// background and its events wait in memory for GetWatcherEvents.
type watcher struct {
	sid    string
	cancel context.CancelFunc
	mu     sync.Mutex
	events []*filesystem.FilesystemEvent
	err    error // why the stream ended, when it did
	ended  bool
}

type watcherTable struct {
	mu  sync.Mutex
	all map[string]*watcher
}

func (t *watcherTable) add(id string, w *watcher) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, o := range t.all {
		if o.sid == w.sid {
			n++
		}
	}
	if n >= maxWatchers {
		return false
	}
	if t.all == nil {
		t.all = map[string]*watcher{}
	}
	t.all[id] = w
	return true
}

// get returns sandbox sid's watcher id (nil for another sandbox's).
func (t *watcherTable) get(sid, id string) *watcher {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w := t.all[id]; w != nil && w.sid == sid {
		return w
	}
	return nil
}

func (t *watcherTable) remove(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.all, id)
}

func watcherNotFound(id string) error {
	return connect.NewError(connect.CodeNotFound, errors.New("watcher "+id+" not found: it was removed, or its sandbox ended"))
}

func (f *filesystemService) CreateWatcher(ctx context.Context, req *connect.Request[filesystem.CreateWatcherRequest]) (*connect.Response[filesystem.CreateWatcherResponse], error) {
	t, err := f.h.target(ctx, req.Header())
	if err != nil {
		return nil, f.h.connectError(err)
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ws, err := f.openWatch(wctx, t, req.Msg.GetPath(), req.Msg.GetRecursive())
	if err != nil {
		cancel()
		return nil, f.h.connectError(err)
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	id := "w-" + hex.EncodeToString(b)
	w := &watcher{sid: t.id, cancel: cancel}
	if !f.h.watchers.add(id, w) {
		cancel()
		ws.Close()
		return nil, connect.NewError(connect.CodeResourceExhausted, errors.New("this sandbox has too many watchers: remove some with RemoveWatcher"))
	}
	root, include := path.Clean(abs(req.Msg.GetPath())), req.Msg.GetIncludeEntry()
	go func() {
		defer ws.Close()
		for {
			ev, err := ws.Next()
			var fe *filesystem.FilesystemEvent
			if err == nil {
				fe = f.withEntry(wctx, t, root, include, ev)
			}
			w.mu.Lock()
			if err != nil {
				w.ended = true
				if !errors.Is(err, io.EOF) && wctx.Err() == nil {
					w.err = err
				}
				w.mu.Unlock()
				time.AfterFunc(endedWatcherGrace, func() { f.h.watchers.remove(id) })
				return
			}
			if len(w.events) >= maxWatcherEvents {
				w.events = append(w.events[:0], w.events[1:]...)
			}
			w.events = append(w.events, fe)
			w.mu.Unlock()
		}
	}()
	return connect.NewResponse(&filesystem.CreateWatcherResponse{WatcherId: id}), nil
}

// GetWatcherEvents drains the events the watcher saw since the last call
// (at most the last 1000).
func (f *filesystemService) GetWatcherEvents(ctx context.Context, req *connect.Request[filesystem.GetWatcherEventsRequest]) (*connect.Response[filesystem.GetWatcherEventsResponse], error) {
	t, err := f.h.target(ctx, req.Header())
	if err != nil {
		return nil, f.h.connectError(err)
	}
	id := req.Msg.GetWatcherId()
	w := f.h.watchers.get(t.id, id)
	if w == nil {
		return nil, watcherNotFound(id)
	}
	w.mu.Lock()
	evs, werr, ended := w.events, w.err, w.ended
	w.events = nil
	w.mu.Unlock()
	if len(evs) == 0 && ended {
		f.h.watchers.remove(id)
		if werr != nil {
			return nil, f.h.connectError(werr)
		}
		return nil, watcherNotFound(id)
	}
	return connect.NewResponse(&filesystem.GetWatcherEventsResponse{Events: evs}), nil
}

func (f *filesystemService) RemoveWatcher(ctx context.Context, req *connect.Request[filesystem.RemoveWatcherRequest]) (*connect.Response[filesystem.RemoveWatcherResponse], error) {
	t, err := f.h.target(ctx, req.Header())
	if err != nil {
		return nil, f.h.connectError(err)
	}
	id := req.Msg.GetWatcherId()
	w := f.h.watchers.get(t.id, id)
	if w == nil {
		return nil, watcherNotFound(id)
	}
	w.cancel()
	f.h.watchers.remove(id)
	return connect.NewResponse(&filesystem.RemoveWatcherResponse{}), nil
}
