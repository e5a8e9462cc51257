package integration

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/chaserhq/chaser/internal/e2b/spec/filesystem"
	"github.com/chaserhq/chaser/internal/e2b/spec/filesystem/filesystemconnect"
	"github.com/chaserhq/chaser/internal/e2b/spec/process"
	"github.com/chaserhq/chaser/internal/e2b/spec/process/processconnect"
)

// e2bSandbox is the create answer of the E2B control plane.
type e2bSandbox struct {
	SandboxID          string  `json:"sandboxID"`
	TemplateID         string  `json:"templateID"`
	ClientID           string  `json:"clientID"`
	EnvdVersion        string  `json:"envdVersion"`
	EnvdAccessToken    string  `json:"envdAccessToken"`
	TrafficAccessToken *string `json:"trafficAccessToken"`
	Domain             *string `json:"domain"`
}

// e2bDo sends an E2B control-plane request the way the SDK does (the key
// in X-API-KEY) and returns the answer.
func (s *Server) e2bDo(t *testing.T, key, method, path, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("X-API-KEY", key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// e2bCreate makes a sandbox through POST /sandboxes (the Python SDK's and
// older JS SDKs' path) and kills it at the end of the test.
func (s *Server) e2bCreate(t *testing.T, key, body string) e2bSandbox {
	t.Helper()
	resp := s.e2bDo(t, key, "POST", "/sandboxes", body)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /sandboxes: %d %s", resp.StatusCode, b)
	}
	var sb e2bSandbox
	decodeJSON(t, b, &sb)
	t.Cleanup(func() { s.e2bKill(key, sb.SandboxID) })
	return sb
}

// e2bKill kills sandbox id (in a cleanup: no test context).
func (s *Server) e2bKill(key, id string) {
	req, _ := http.NewRequest("DELETE", s.URL+"/sandboxes/"+id, nil)
	req.Header.Set("X-API-KEY", key)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}

// envdHeaders adds the headers the SDK sends to envd.
type envdHeaders struct {
	hdr http.Header
}

func (e envdHeaders) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range e.hdr {
		r.Header[k] = v
	}
	return http.DefaultTransport.RoundTrip(r)
}

// envdClient speaks envd's Connect protocol (JSON codec, HTTP/1.1) to one
// sandbox, as the SDKs do: E2b-Sandbox-Id, E2b-Sandbox-Port and, when
// token is not empty, X-Access-Token; user (Basic "user:") when not empty.
type envdClient struct {
	proc processconnect.ProcessClient
	fs   filesystemconnect.FilesystemClient
}

func (s *Server) envd(id, token, user string) envdClient {
	hdr := http.Header{"E2b-Sandbox-Id": {id}, "E2b-Sandbox-Port": {"49983"}}
	if token != "" {
		hdr.Set("X-Access-Token", token)
	}
	if user != "" {
		hdr.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":")))
	}
	hc := &http.Client{Transport: envdHeaders{hdr}}
	return envdClient{
		proc: processconnect.NewProcessClient(hc, s.URL, connect.WithProtoJSON()),
		fs:   filesystemconnect.NewFilesystemClient(hc, s.URL, connect.WithProtoJSON()),
	}
}

// run runs cmd as commands.run does (bash -l -c) and returns its stdout
// and exit code; err is the Connect error of the call.
func (e envdClient) run(ctx context.Context, cmd string) (string, int32, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := e.proc.Start(ctx, connect.NewRequest(&process.StartRequest{
		Process: &process.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-l", "-c", cmd}},
	}))
	if err != nil {
		return "", 0, err
	}
	defer st.Close()
	var out strings.Builder
	for st.Receive() {
		ev := st.Msg().GetEvent()
		if d := ev.GetData(); d != nil {
			out.Write(d.GetStdout())
		}
		if end := ev.GetEnd(); end != nil {
			return out.String(), end.GetExitCode(), nil
		}
	}
	if err := st.Err(); err != nil {
		return out.String(), 0, err
	}
	return out.String(), 0, errors.New("the stream ended without an end event")
}

// mustRun runs cmd and fails the test unless it exits 0.
func (e envdClient) mustRun(t *testing.T, cmd string) string {
	t.Helper()
	out, code, err := e.run(t.Context(), cmd)
	if err != nil || code != 0 {
		t.Fatalf("run %q: exit %d, %v: %s", cmd, code, err, out)
	}
	return out
}

// connectCode is err's Connect code, or "ok" for none.
func connectCode(err error) string {
	if err == nil {
		return "ok"
	}
	return connect.CodeOf(err).String()
}

// fsEvent is a watcher event, as the SDK reports it.
type fsEvent struct{ name, typ string }

func fsEvents(evs []*filesystem.FilesystemEvent) []fsEvent {
	out := make([]fsEvent, 0, len(evs))
	for _, ev := range evs {
		typ := strings.ToLower(strings.TrimPrefix(ev.GetType().String(), "EVENT_TYPE_"))
		out = append(out, fsEvent{ev.GetName(), typ})
	}
	return out
}
