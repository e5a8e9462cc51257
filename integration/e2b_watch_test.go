package integration

import (
	"context"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/e2b/spec/filesystem"
)

// TestE2BWatcher drives the watcher trio (filesystem.Filesystem
// CreateWatcher, GetWatcherEvents, RemoveWatcher) as the Python SDK's
// files.watch_dir and WatchHandle do: CreateWatcher with the keepalive
// header, GetWatcherEvents polled, RemoveWatcher on stop. Changes are made
// through commands (process.Start) and through filesystem Move and Remove.
func TestE2BWatcher(t *testing.T) {
	s := newServer(t)
	key := s.account(t, api.TierPaid)
	sb := s.e2bCreate(t, key, `{"templateID":"base"}`)
	e := s.envd(sb.SandboxID, sb.EnvdAccessToken, "")
	ctx := t.Context()

	if _, err := e.fs.MakeDir(ctx, connect.NewRequest(&filesystem.MakeDirRequest{Path: "/tmp/w/sub"})); err != nil {
		t.Fatal(err)
	}
	create := func(path string, recursive bool) string {
		t.Helper()
		req := connect.NewRequest(&filesystem.CreateWatcherRequest{Path: path, Recursive: recursive})
		req.Header().Set("Keepalive-Ping-Interval", "50") // as the Python SDK sends
		r, err := e.fs.CreateWatcher(ctx, req)
		if err != nil {
			t.Fatalf("CreateWatcher(%s, recursive %v): %v", path, recursive, err)
		}
		if r.Msg.GetWatcherId() == "" {
			t.Fatalf("CreateWatcher(%s) answered no id", path)
		}
		return r.Msg.GetWatcherId()
	}
	get := func(id string) ([]fsEvent, error) {
		r, err := e.fs.GetWatcherEvents(ctx, connect.NewRequest(&filesystem.GetWatcherEventsRequest{WatcherId: id}))
		if err != nil {
			return nil, err
		}
		return fsEvents(r.Msg.GetEvents()), nil
	}
	// poll gathers a watcher's events until want are all seen (or 10 s).
	poll := func(id string, want ...fsEvent) []fsEvent {
		t.Helper()
		var seen []fsEvent
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			evs, err := get(id)
			if err != nil {
				t.Fatalf("GetWatcherEvents(%s): %v", id, err)
			}
			seen = append(seen, evs...)
			if !slices.ContainsFunc(want, func(w fsEvent) bool { return !slices.Contains(seen, w) }) {
				break
			}
		}
		return seen
	}

	flat := create("/tmp/w", false)
	deep := create("/tmp/w", true)
	e.mustRun(t, "echo x > /tmp/w/f && echo y > /tmp/w/sub/g && chmod 600 /tmp/w/f")
	if _, err := e.fs.Move(ctx, connect.NewRequest(&filesystem.MoveRequest{Source: "/tmp/w/f", Destination: "/tmp/w/f2"})); err != nil {
		t.Fatal(err)
	}
	if _, err := e.fs.Remove(ctx, connect.NewRequest(&filesystem.RemoveRequest{Path: "/tmp/w/f2"})); err != nil {
		t.Fatal(err)
	}
	wantFlat := []fsEvent{{"f", "create"}, {"f", "write"}, {"f", "chmod"}, {"f", "rename"}, {"f2", "create"}, {"f2", "remove"}}
	gotFlat := poll(flat, wantFlat...)
	for _, w := range wantFlat {
		if !slices.Contains(gotFlat, w) {
			t.Errorf("watcher of /tmp/w: no %s of %s in %v", w.typ, w.name, gotFlat)
		}
	}
	if slices.ContainsFunc(gotFlat, func(ev fsEvent) bool { return ev.name == "sub/g" }) {
		t.Errorf("a watcher that is not recursive saw sub/g: %v", gotFlat)
	}
	wantDeep := append([]fsEvent{{"sub/g", "create"}, {"sub/g", "write"}}, wantFlat...)
	gotDeep := poll(deep, wantDeep...)
	for _, w := range wantDeep {
		if !slices.Contains(gotDeep, w) {
			t.Errorf("recursive watcher of /tmp/w: no %s of %s in %v", w.typ, w.name, gotDeep)
		}
	}

	// Events are drained: a poll after a quiet moment brings nothing new,
	// and a new change only its own events.
	time.Sleep(200 * time.Millisecond)
	if evs, err := get(flat); err != nil || len(evs) != 0 {
		t.Errorf("GetWatcherEvents after draining: %v, %v; want none", evs, err)
	}
	e.mustRun(t, "mkdir /tmp/w/newdir && echo z > /tmp/w/newdir/h")
	if got := poll(deep, fsEvent{"newdir", "create"}, fsEvent{"newdir/h", "create"}); !slices.Contains(got, fsEvent{"newdir/h", "create"}) ||
		slices.Contains(got, fsEvent{"f", "create"}) {
		t.Errorf("recursive watcher after a new directory: %v; want newdir/h created, and nothing seen before", got)
	}

	// includeEntry (the Python SDK's include_entry, envd ≥ 0.6.3): the
	// events of a path that still exists carry its entry.
	req := connect.NewRequest(&filesystem.CreateWatcherRequest{Path: "/tmp/w", IncludeEntry: true})
	withEntry, err := e.fs.CreateWatcher(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	e.mustRun(t, "echo entry > /tmp/w/e.txt")
	var entry *filesystem.EntryInfo
	for deadline := time.Now().Add(10 * time.Second); entry == nil && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		r, err := e.fs.GetWatcherEvents(ctx, connect.NewRequest(&filesystem.GetWatcherEventsRequest{WatcherId: withEntry.Msg.GetWatcherId()}))
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range r.Msg.GetEvents() {
			if ev.GetName() == "e.txt" && ev.GetType() == filesystem.EventType_EVENT_TYPE_WRITE {
				entry = ev.GetEntry()
			}
		}
	}
	if entry == nil || entry.GetName() != "e.txt" || entry.GetPath() != "/tmp/w/e.txt" || entry.GetType() != filesystem.FileType_FILE_TYPE_FILE || entry.GetSize() != 6 {
		t.Errorf("the write event of a watcher with includeEntry carries entry %v", entry)
	}
	if _, err := e.fs.RemoveWatcher(ctx, connect.NewRequest(&filesystem.RemoveWatcherRequest{WatcherId: withEntry.Msg.GetWatcherId()})); err != nil {
		t.Fatal(err)
	}

	// WatchDir (the JS SDK's watchDir): start first, keepalives per
	// Keepalive-Ping-Interval, then the events.
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	wreq := connect.NewRequest(&filesystem.WatchDirRequest{Path: "/tmp/w"})
	wreq.Header().Set("Keepalive-Ping-Interval", "1")
	ws, err := e.fs.WatchDir(wctx, wreq)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for ws.Receive() {
		ev := ws.Msg()
		switch {
		case ev.GetStart() != nil:
			kinds = append(kinds, "start")
		case ev.GetKeepalive() != nil:
			kinds = append(kinds, "keepalive")
			if len(kinds) == 2 {
				e.mustRun(t, "touch /tmp/w/k")
			}
		case ev.GetFilesystem() != nil:
			kinds = append(kinds, ev.GetFilesystem().GetName())
		}
		if slices.Contains(kinds, "k") {
			break
		}
	}
	wcancel()
	ws.Close()
	if len(kinds) < 3 || kinds[0] != "start" || kinds[1] != "keepalive" || !slices.Contains(kinds, "k") {
		t.Errorf("WatchDir with Keepalive-Ping-Interval 1: %v, want start, a keepalive, then k", kinds)
	}

	// RemoveWatcher, then the id is gone: not_found, as the SDK expects.
	for _, id := range []string{flat, deep} {
		if _, err := e.fs.RemoveWatcher(ctx, connect.NewRequest(&filesystem.RemoveWatcherRequest{WatcherId: id})); err != nil {
			t.Fatalf("RemoveWatcher(%s): %v", id, err)
		}
		if _, err := get(id); connectCode(err) != "not_found" {
			t.Errorf("GetWatcherEvents of a removed watcher: %v, want not_found", err)
		}
		_, err := e.fs.RemoveWatcher(ctx, connect.NewRequest(&filesystem.RemoveWatcherRequest{WatcherId: id}))
		if connectCode(err) != "not_found" {
			t.Errorf("RemoveWatcher of a removed watcher: %v, want not_found", err)
		}
	}
	if _, err := get("w-nosuchwatcher"); connectCode(err) != "not_found" {
		t.Errorf("GetWatcherEvents of an unknown id: %v, want not_found", err)
	}

	// What the Python SDK's tests expect: a missing directory raises
	// FileNotFoundException (not_found), a file a SandboxException.
	for _, tc := range []struct{ path, want string }{
		{"/tmp/w/missing", "not_found"},
		{"/etc/hostname", "invalid_argument"},
	} {
		_, err := e.fs.CreateWatcher(ctx, connect.NewRequest(&filesystem.CreateWatcherRequest{Path: tc.path}))
		if connectCode(err) != tc.want {
			t.Errorf("CreateWatcher(%s): %v, want %s", tc.path, err, tc.want)
		}
	}

	// Another account's sandbox: its id with this sandbox's token, or with
	// no way to know its token, is not found, as on the control plane.
	other := s.account(t, api.TierPaid)
	osb := s.e2bCreate(t, other, `{"templateID":"base"}`)
	oe := s.envd(osb.SandboxID, sb.EnvdAccessToken, "")
	_, err = oe.fs.CreateWatcher(ctx, connect.NewRequest(&filesystem.CreateWatcherRequest{Path: "/tmp"}))
	if connectCode(err) != "not_found" {
		t.Errorf("CreateWatcher in another account's sandbox: %v, want not_found", err)
	}
	// A watcher id of one sandbox is unknown in another, even to its owner.
	id := create("/tmp", false)
	oe = s.envd(osb.SandboxID, osb.EnvdAccessToken, "")
	if _, err := oe.fs.GetWatcherEvents(ctx, connect.NewRequest(&filesystem.GetWatcherEventsRequest{WatcherId: id})); connectCode(err) != "not_found" {
		t.Errorf("GetWatcherEvents of another sandbox's watcher: %v, want not_found", err)
	}
	if _, err := oe.fs.RemoveWatcher(ctx, connect.NewRequest(&filesystem.RemoveWatcherRequest{WatcherId: id})); connectCode(err) != "not_found" {
		t.Errorf("RemoveWatcher of another sandbox's watcher: %v, want not_found", err)
	}
	if _, err := get(id); err != nil {
		t.Errorf("the watcher after another sandbox's calls: %v", err)
	}

	// A watcher of a sandbox that is killed ends: not_found after it.
	resp := s.e2bDo(t, key, "DELETE", "/sandboxes/"+sb.SandboxID, "")
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("kill: %d", resp.StatusCode)
	}
	ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = e.fs.GetWatcherEvents(ctx2, connect.NewRequest(&filesystem.GetWatcherEventsRequest{WatcherId: id}))
	if c := connectCode(err); c != "not_found" && c != "unavailable" {
		t.Errorf("GetWatcherEvents after kill: %v, want not_found or unavailable", err)
	}
}
