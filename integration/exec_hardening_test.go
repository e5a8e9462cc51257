package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
)

// eventBytes returns the output bytes an event carries.
func eventBytes(t *testing.T, ev api.Event) []byte {
	t.Helper()
	if ev.Encoding == "base64" {
		return decodeB64(t, ev.Data)
	}
	return []byte(ev.Data)
}

// seqOutput is what `seq 1 n` prints.
func seqOutput(n int) []byte {
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		b.WriteString(strconv.Itoa(i))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// TestStreamDeliversEveryByte checks that a streamed exec delivers all of
// its output to a reader slower than the command: the command is held back
// (its pipe drained only as fast as the client reads), nothing is dropped.
func TestStreamDeliversEveryByte(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "paid")
	id := s.sandbox(t, key)
	c := s.Client(key)
	ctx := t.Context()

	t.Run("checksummed binary", func(t *testing.T) {
		// tee copies the random bytes to stdout and to sha256sum, whose
		// sum arrives on stderr once every byte went through.
		const size = 200 << 20
		h := sha256.New()
		var n int64
		var stderr string
		first := true
		exit, err := c.ExecStream(ctx, id, api.ExecRequest{
			Command: fmt.Sprintf("{ head -c %d /dev/urandom | tee /dev/fd/3 | sha256sum >&2; } 3>&1", size),
		}, func(ev api.Event) error {
			switch ev.Type {
			case "stdout":
				if first {
					// Fall behind: the command runs ahead meanwhile.
					first = false
					time.Sleep(2 * time.Second)
				}
				b := eventBytes(t, ev)
				h.Write(b)
				n += int64(len(b))
			case "stderr":
				stderr += ev.Data
			default:
				t.Errorf("unexpected event %+v", ev)
			}
			return nil
		})
		if err != nil || exit.ExitCode == nil || *exit.ExitCode != 0 || exit.OutputTruncated {
			t.Fatalf("exit = %+v, %v", exit, err)
		}
		want, _, _ := strings.Cut(stderr, " ")
		if got := hex.EncodeToString(h.Sum(nil)); n != size || got != want {
			t.Fatalf("received %d of %d bytes, sha256 %s, the command saw %q", n, size, got, stderr)
		}
	})

	t.Run("seq with a slow reader", func(t *testing.T) {
		const count = 2_000_000
		want := seqOutput(count)
		var got bytes.Buffer
		events := 0
		exit, err := c.ExecStream(ctx, id, api.ExecRequest{Command: fmt.Sprintf("seq 1 %d", count)}, func(ev api.Event) error {
			if ev.Type != "stdout" {
				t.Errorf("unexpected event %+v", ev)
				return nil
			}
			events++
			if events == 1 {
				time.Sleep(time.Second)
			} else if events%100 == 0 {
				time.Sleep(5 * time.Millisecond)
			}
			got.Write(eventBytes(t, ev))
			return nil
		})
		if err != nil || exit.ExitCode == nil || *exit.ExitCode != 0 {
			t.Fatalf("exit = %+v, %v", exit, err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			i := 0
			for i < got.Len() && i < len(want) && got.Bytes()[i] == want[i] {
				i++
			}
			t.Fatalf("received %d of %d bytes, first difference at byte %d", got.Len(), len(want), i)
		}
	})
}

// checkGapped checks the events of a followed `seq` against its output:
// every byte arrives in order or is reported by a gap event with its exact
// range, and the exit event says output was dropped exactly when some was.
func checkGapped(t *testing.T, want []byte, events []api.Event) (gaps int) {
	t.Helper()
	var pos int64
	for _, ev := range events {
		switch ev.Type {
		case "gap":
			if ev.Offset == nil || *ev.Offset != pos || ev.Size <= 0 {
				t.Fatalf("gap %+v at position %d", ev, pos)
			}
			pos += ev.Size
			gaps++
		case "stdout":
			b := []byte(ev.Data)
			if !bytes.HasPrefix(want[pos:], b) {
				t.Fatalf("output at %d differs from seq's", pos)
			}
			if pos+int64(len(b)) > int64(len(want)) || !bytes.Equal(b, want[pos:pos+int64(len(b))]) {
				t.Fatalf("output at %d differs from seq's", pos)
			}
			pos += int64(len(b))
		case "exit":
			if pos != int64(len(want)) {
				t.Fatalf("exit after %d of %d bytes, unaccounted for", pos, len(want))
			}
			if ev.OutputTruncated != (gaps > 0) {
				t.Fatalf("exit %+v after %d gaps", ev, gaps)
			}
			return gaps
		default:
			t.Fatalf("unexpected event %+v", ev)
		}
	}
	t.Fatal("no exit event")
	return 0
}

// TestFollowReportsGaps checks that ?follow=1 of a background command whose
// kept output (4 MiB) overflowed says exactly which bytes a reader missed.
func TestFollowReportsGaps(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "paid")
	id := s.sandbox(t, key)
	c := s.Client(key)
	ctx := t.Context()
	const count = 2_000_000 // 14.9 MB of output
	want := seqOutput(count)

	t.Run("slow follower", func(t *testing.T) {
		cid, err := c.StartBackground(ctx, id, api.ExecRequest{Command: fmt.Sprintf("seq 1 %d", count)})
		if err != nil {
			t.Fatal(err)
		}
		// The follower stops reading until the command has ended, so it
		// falls behind however slowly seq runs on a loaded machine.
		exited := func() bool {
			cmd, err := c.Command(ctx, id, cid)
			return err == nil && cmd.Status == api.CommandExited
		}
		var events []api.Event
		if _, err := c.Follow(ctx, id, cid, func(ev api.Event) error {
			if len(events) == 0 {
				waitFor(t, exited)
			}
			events = append(events, ev)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		// Follow hands the exit event back instead of to fn.
		cmd, err := c.Command(ctx, id, cid)
		if err != nil || cmd.ExitCode == nil {
			t.Fatalf("command = %+v, %v", cmd, err)
		}
		events = append(events, api.Event{Type: "exit", ExitCode: cmd.ExitCode, OutputTruncated: cmd.OutputStart > 0})
		if checkGapped(t, want, events) == 0 {
			t.Fatal("no gap reported although the command's output overflowed")
		}
	})

	t.Run("slow raw follower", func(t *testing.T) {
		cid, err := c.StartBackground(ctx, id, api.ExecRequest{Command: fmt.Sprintf("seq 1 %d", count)})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/v1/sessions/"+id+"/commands/"+cid+"/output?follow=1", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		// Not reading until the command ended: it fell behind for sure.
		waitFor(t, func() bool {
			cmd, err := c.Command(ctx, id, cid)
			return err == nil && cmd.Status == api.CommandExited
		})
		raw := readAll(t, resp.Body, nil)
		start, err := strconv.ParseInt(resp.Header.Get("X-Output-Start"), 10, 64)
		if err != nil || !strings.HasPrefix(string(want[start:]), raw) {
			t.Fatalf("raw output: start %q, %d bytes not seq's", resp.Header.Get("X-Output-Start"), len(raw))
		}
		// It fell behind: the answer ends at the gap and names it.
		end := start + int64(len(raw))
		gap := resp.Trailer.Get("X-Output-Gap")
		from, to, _ := strings.Cut(gap, "-")
		if end == int64(len(want)) || from != strconv.FormatInt(end, 10) || to <= from && len(to) <= len(from) {
			t.Fatalf("raw output ends at %d of %d with gap %q", end, len(want), gap)
		}
	})

	t.Run("after the end", func(t *testing.T) {
		cid, err := c.StartBackground(ctx, id, api.ExecRequest{Command: fmt.Sprintf("seq 1 %d", count)})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool {
			cmd, err := c.Command(ctx, id, cid)
			return err == nil && cmd.Status == api.CommandExited
		})
		// The wire format, NDJSON: a gap first, exit last.
		code, body := s.do(t, key, "GET", "/v1/sessions/"+id+"/commands/"+cid+"/output?follow=1&format=ndjson", "")
		if code != 200 {
			t.Fatalf("output: %d %.200s", code, body)
		}
		var events []api.Event
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev api.Event
			decodeJSON(t, sc.Bytes(), &ev)
			events = append(events, ev)
		}
		if len(events) == 0 || events[0].Type != "gap" || *events[0].Offset != 0 {
			t.Fatalf("first of %d events is not a gap from 0", len(events))
		}
		if checkGapped(t, want, events) != 1 {
			t.Fatal("want exactly one gap")
		}

		// Raw bytes: X-Output-Start says where they begin.
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/v1/sessions/"+id+"/commands/"+cid+"/output?follow=1", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw := readAll(t, resp.Body, nil)
		start, err := strconv.ParseInt(resp.Header.Get("X-Output-Start"), 10, 64)
		if err != nil || start != *events[0].Offset+events[0].Size || raw != string(want[start:]) {
			t.Fatalf("raw output: start %q, %d bytes", resp.Header.Get("X-Output-Start"), len(raw))
		}
		var cmd api.Command
		_, b := s.do(t, key, "GET", "/v1/sessions/"+id+"/commands/"+cid, "")
		decodeJSON(t, b, &cmd)
		if cmd.OutputStart != start || cmd.OutputSize != int64(len(want)) {
			t.Fatalf("command = %+v", cmd)
		}
	})
}

// TestCommandsPaged checks that the commands list is paged, carries no
// long command texts (the single-command endpoint has them) and stays
// small however many commands a session runs.
func TestCommandsPaged(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "paid")
	id := s.sandbox(t, key)
	c := s.Client(key)
	ctx := t.Context()
	const count = 150
	text := "exec sleep 600 # " + strings.Repeat("x", 100<<10)
	started := map[string]bool{}
	for range count {
		cid, err := c.StartBackground(ctx, id, api.ExecRequest{Command: text})
		if err != nil {
			t.Fatal(err)
		}
		started[cid] = true
	}
	t.Cleanup(func() {
		c.Exec(context.Background(), id, api.ExecRequest{Command: "pkill sleep"})
	})

	// The first page: the default size, a token for the next one.
	code, body := s.do(t, key, "GET", "/v1/sessions/"+id+"/commands", "")
	if code != 200 || len(body) > 1<<20 {
		t.Fatalf("list: %d, %d bytes", code, len(body))
	}
	var page api.CommandList
	decodeJSON(t, body, &page)
	if len(page.Commands) != 100 || page.NextToken == "" {
		t.Fatalf("first page: %d commands, next_token %q", len(page.Commands), page.NextToken)
	}
	for _, cmd := range page.Commands {
		if len(cmd.Command) > 1024 || !cmd.CommandTruncated {
			t.Fatalf("listed command text of %d bytes, truncated %v", len(cmd.Command), cmd.CommandTruncated)
		}
	}
	full, err := c.Command(ctx, id, page.Commands[0].ID)
	if err != nil || full.Command != text || full.CommandTruncated {
		t.Fatalf("single command: %d bytes, %v", len(full.Command), err)
	}

	// Paging with ?limit= and ?next_token= sees every command once.
	seen := map[string]bool{}
	token := ""
	for pages := 0; ; pages++ {
		q := "?limit=40"
		if token != "" {
			q += "&next_token=" + token
		}
		code, body := s.do(t, key, "GET", "/v1/sessions/"+id+"/commands"+q, "")
		if code != 200 || pages > 10 {
			t.Fatalf("page %d: %d %.200s", pages, code, body)
		}
		var p api.CommandList
		decodeJSON(t, body, &p)
		if len(p.Commands) > 40 {
			t.Fatalf("page of %d commands with limit 40", len(p.Commands))
		}
		for _, cmd := range p.Commands {
			if seen[cmd.ID] {
				t.Fatalf("command %s listed twice", cmd.ID)
			}
			seen[cmd.ID] = true
		}
		if token = p.NextToken; token == "" {
			break
		}
	}
	for cid := range started {
		if !seen[cid] {
			t.Fatalf("command %s not listed (%d seen)", cid, len(seen))
		}
	}
	// The Go client pages for its caller.
	if all, err := c.Commands(ctx, id); err != nil || len(all) < count {
		t.Fatalf("client listed %d commands, %v", len(all), err)
	}

	for _, q := range []string{"?limit=0", "?limit=-1", "?limit=x", "?limit=100000", "?next_token=nonsense"} {
		code, body := s.do(t, key, "GET", "/v1/sessions/"+id+"/commands"+q, "")
		expectError(t, code, body, 400, "invalid_argument")
	}
}

// TestStdinNotRead checks that writing to the stdin of a command that does
// not read it answers 409 in bounded time instead of hanging, and that the
// command's exit does not wait behind such a write.
func TestStdinNotRead(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "paid")
	id := s.sandbox(t, key)
	c := s.Client(key)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	big := `{"data":"` + strings.Repeat("y", 512<<10) + `"}`

	cid, err := c.StartBackground(ctx, id, api.ExecRequest{Command: "sleep 600"})
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		code int
		body []byte
	}
	post := func(cid string) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			// Not s.do: this may outlive the test when it fails.
			req, _ := http.NewRequestWithContext(ctx, "POST", s.URL+"/v1/sessions/"+id+"/commands/"+cid+"/stdin", strings.NewReader(big))
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				ch <- answer{0, []byte(err.Error())}
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			ch <- answer{resp.StatusCode, body}
		}()
		return ch
	}
	select {
	case a := <-post(cid):
		expectError(t, a.code, a.body, 409, "failed_precondition")
		if !strings.Contains(string(a.body), "not reading its stdin") {
			t.Fatalf("message: %s", a.body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("stdin write to a command that does not read blocked for 30s")
	}
	if err := c.Signal(ctx, id, cid, "KILL"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		cmd, err := c.Command(ctx, id, cid)
		return err == nil && cmd.Status == api.CommandExited
	})

	// A command that ends while a write waits for it ends at once.
	cid, err = c.StartBackground(ctx, id, api.ExecRequest{Command: "sleep 1"})
	if err != nil {
		t.Fatal(err)
	}
	pending := post(cid)
	begin := time.Now()
	waitFor(t, func() bool {
		cmd, err := c.Command(ctx, id, cid)
		return err == nil && cmd.Status == api.CommandExited
	})
	if d := time.Since(begin); d > 3*time.Second {
		t.Fatalf("the command's exit took %v behind a stdin write", d)
	}
	select {
	case a := <-pending:
		expectError(t, a.code, a.body, 409, "failed_precondition")
	case <-time.After(10 * time.Second):
		t.Fatal("stdin write outlived its command")
	}
}

// TestCallerFaults checks that requests that are the caller's fault answer
// 4xx, not 500, and change nothing.
func TestCallerFaults(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	c := s.Client(key)
	exec := "/v1/sessions/" + id + "/exec"
	long := strings.Repeat("x", 200<<10) // over the kernel's 128 KiB per argument
	cases := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"NUL in command", exec, `{"command":"echo a\u0000b"}`, 400, "invalid_argument"},
		{"NUL in env value", exec, `{"command":"true","env":{"A":"x\u0000y"}}`, 400, "invalid_argument"},
		{"NUL in cwd", exec, `{"command":"true","cwd":"/tmp\u0000x"}`, 400, "invalid_argument"},
		{"NUL in targetless command", "/v1/exec", `{"command":"echo a\u0000b"}`, 400, "invalid_argument"},
		{"command over the argument limit", exec, `{"command":"echo ` + long + `"}`, 400, "invalid_argument"},
		{"env over the argument limit", exec, `{"command":"true","env":{"A":"` + long + `"}}`, 400, "invalid_argument"},
		{"background command over the argument limit", exec, `{"command":"echo ` + long + `","background":true}`, 400, "invalid_argument"},
		{"timeout that overflows", exec, `{"command":"sleep 1","timeout_ms":18446744073710}`, 400, "invalid_argument"},
		{"timeout over 24 h", exec, `{"command":"true","timeout_ms":86400001}`, 400, "invalid_argument"},
		{"targetless timeout that overflows", "/v1/exec", `{"command":"true","timeout_ms":18446744073710}`, 400, "invalid_argument"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := s.do(t, key, "POST", tc.path, tc.body)
			expectError(t, code, body, tc.status, tc.code)
		})
	}
	t.Run("timeout of 24 h is accepted", func(t *testing.T) {
		code, body := s.do(t, key, "POST", exec, `{"command":"echo ok","timeout_ms":86400000}`)
		if code != 200 || !strings.Contains(string(body), `"stdout":"ok\n"`) {
			t.Fatalf("%d %s", code, body)
		}
	})
	t.Run("download a unix socket", func(t *testing.T) {
		res, err := c.Exec(t.Context(), id, api.ExecRequest{Command: `python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("/tmp/sock")' && test -S /tmp/sock`})
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("make socket: %+v %v", res, err)
		}
		code, body := s.do(t, key, "GET", "/v1/sessions/"+id+"/download?path=/tmp/sock", "")
		expectError(t, code, body, 400, "invalid_argument")
	})
	res, err := c.Exec(t.Context(), id, api.ExecRequest{Command: "echo alive"})
	if err != nil || res.Stdout != "alive\n" {
		t.Fatalf("session after bad input: %+v %v", res, err)
	}
}

// TestNoFreeProcessSlots checks that exec in a sandbox whose every process
// slot is taken (a fork bomb) answers 429, and that the sandbox recovers
// once the processes are gone.
func TestNoFreeProcessSlots(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free") // 256 pids
	id := s.sandbox(t, key)
	c := s.Client(key)
	ctx := t.Context()
	cid, err := c.StartBackground(ctx, id, api.ExecRequest{Command: "while :; do sleep 600 & done"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Signal(context.Background(), id, cid, "KILL")
	var resp *http.Response
	var body string
	waitFor(t, func() bool {
		resp, body = fwd(t, s, "POST", "", "/v1/sessions/"+id+"/exec", key, strings.NewReader(`{"command":"true"}`), "Content-Type", "application/json")
		return resp.StatusCode != 200
	})
	expectError(t, resp.StatusCode, []byte(body), 429, "resource_exhausted")
	if !strings.Contains(body, "no free process slots in this sandbox") {
		t.Fatalf("message: %s", body)
	}
	// Slots free up as processes end: the answer says when to try again.
	if ra := resp.Header.Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After %q, want 1", ra)
	}
	if err := c.Signal(ctx, id, cid, "KILL"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		res, err := c.Exec(ctx, id, api.ExecRequest{Command: "echo alive"})
		return err == nil && res.Stdout == "alive\n"
	})
}
