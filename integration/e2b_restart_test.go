package integration

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/e2b/spec/process"
)

// TestE2BRestart: a background command, a tagged one and a terminal
// started through envd outlive a SIGKILL of `chaser serve` (the agent in
// the sandbox keeps running them): after the restart commands.list shows
// them with their tags, connect(pid) and connect by tag stream them, the
// terminal takes input again, and kill works.
func TestE2BRestart(t *testing.T) {
	s := newServer(t)
	key := s.account(t, api.TierPaid)
	sb := s.e2bCreate(t, key, `{}`)
	e := s.envd(sb.SandboxID, sb.EnvdAccessToken, "")
	ctx := t.Context()

	// start runs req and leaves it running once its start event came.
	start := func(req *process.StartRequest) uint32 {
		t.Helper()
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		st, err := e.proc.Start(sctx, connect.NewRequest(req))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if !st.Receive() || st.Msg().GetEvent().GetStart() == nil {
			t.Fatalf("no start event: %v", st.Err())
		}
		return st.Msg().GetEvent().GetStart().GetPid()
	}
	bash := func(cmd string) *process.ProcessConfig {
		return &process.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-l", "-c", cmd}}
	}
	tag := "my-server"
	tagged := start(&process.StartRequest{Process: bash("sleep 300"), Tag: &tag})
	ticker := start(&process.StartRequest{Process: bash("for i in $(seq 1 40); do echo tick$i; sleep 0.25; done")})
	term := start(&process.StartRequest{Process: &process.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-i", "-l"}},
		Pty: &process.PTY{Size: &process.PTY_Size{Cols: 80, Rows: 24}}})

	s.kill()
	s2 := startServer(t, s.DataDir)
	defer s2.stop()
	e = s2.envd(sb.SandboxID, sb.EnvdAccessToken, "")

	l, err := e.proc.List(ctx, connect.NewRequest(&process.ListRequest{}))
	if err != nil {
		t.Fatalf("List after the restart: %v", err)
	}
	listed := map[uint32]string{}
	for _, p := range l.Msg.GetProcesses() {
		listed[p.GetPid()] = p.GetTag()
	}
	if tg, ok := listed[tagged]; !ok || tg != tag {
		t.Errorf("after the restart the tagged command %d is listed with tag %q (listed: %v)", tagged, tg, listed)
	}
	for what, pid := range map[string]uint32{"background command": ticker, "terminal": term} {
		if _, ok := listed[pid]; !ok {
			t.Errorf("after the restart the %s %d is not listed: %v", what, pid, listed)
		}
	}

	// connect(pid): the rest of the output and the end.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := e.proc.Connect(cctx, connect.NewRequest(&process.ConnectRequest{Process: &process.ProcessSelector{Selector: &process.ProcessSelector_Pid{Pid: ticker}}}))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	var end *process.ProcessEvent_EndEvent
	for st.Receive() && end == nil {
		ev := st.Msg().GetEvent()
		out.Write(ev.GetData().GetStdout())
		end = ev.GetEnd()
	}
	st.Close()
	if end == nil || end.GetExitCode() != 0 || !strings.Contains(out.String(), "tick40\n") {
		t.Errorf("connect(%d) after the restart: end %v, output %q, err %v", ticker, end, out.String(), st.Err())
	}

	// connect by tag.
	tctx, tcancel := context.WithCancel(ctx)
	ts, err := e.proc.Connect(tctx, connect.NewRequest(&process.ConnectRequest{Process: &process.ProcessSelector{Selector: &process.ProcessSelector_Tag{Tag: tag}}}))
	if err != nil {
		t.Fatal(err)
	}
	if !ts.Receive() || ts.Msg().GetEvent().GetStart().GetPid() != tagged {
		t.Errorf("connect(tag %s) after the restart: %v %v", tag, ts.Msg(), ts.Err())
	}
	tcancel()
	ts.Close()

	// The terminal takes input again and its output reaches a Connect.
	pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
	defer pcancel()
	ps, err := e.proc.Connect(pctx, connect.NewRequest(&process.ConnectRequest{Process: &process.ProcessSelector{Selector: &process.ProcessSelector_Pid{Pid: term}}}))
	if err != nil {
		t.Fatal(err)
	}
	if !ps.Receive() || ps.Msg().GetEvent().GetStart() == nil {
		t.Fatalf("connect to the terminal after the restart: %v", ps.Err())
	}
	if _, err := e.proc.SendInput(ctx, connect.NewRequest(&process.SendInputRequest{
		Process: &process.ProcessSelector{Selector: &process.ProcessSelector_Pid{Pid: term}},
		Input:   &process.ProcessInput{Input: &process.ProcessInput_Pty{Pty: []byte("echo pty-$((6*7))\n")}},
	})); err != nil {
		t.Errorf("SendInput to the terminal after the restart: %v", err)
	}
	var pty strings.Builder
	for !strings.Contains(pty.String(), "pty-42") && ps.Receive() {
		pty.Write(ps.Msg().GetEvent().GetData().GetPty())
	}
	ps.Close()
	if !strings.Contains(pty.String(), "pty-42") {
		t.Errorf("the terminal after the restart answered %q (%v)", pty.String(), ps.Err())
	}

	// kill by pid, for the command and the terminal.
	for _, pid := range []uint32{tagged, term} {
		if _, err := e.proc.SendSignal(ctx, connect.NewRequest(&process.SendSignalRequest{
			Process: &process.ProcessSelector{Selector: &process.ProcessSelector_Pid{Pid: pid}}, Signal: process.Signal_SIGNAL_SIGKILL,
		})); err != nil {
			t.Errorf("kill %d after the restart: %v", pid, err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		l, err := e.proc.List(ctx, connect.NewRequest(&process.ListRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		left := slices.ContainsFunc(l.Msg.GetProcesses(), func(p *process.ProcessInfo) bool { return p.GetPid() == tagged || p.GetPid() == term })
		if !left {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("still listed after kill: %v", l.Msg.GetProcesses())
			break
		}
	}
}
