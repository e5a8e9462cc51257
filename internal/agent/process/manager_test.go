package process

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chaserhq/chaser/internal/errdefs"
)

func newManager(t *testing.T) *Manager {
	t.Helper()
	m := NewManager(slog.New(slog.DiscardHandler), "/bin/sh", false)
	t.Cleanup(m.KillAll)
	return m
}

func wait(t *testing.T, p *Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("command %q did not finish", p.Spec.Command)
	}
}

// output returns the stdout and stderr of p, read from offset 0.
func output(p *Process) (stdout, stderr string) {
	chunks, _, _, _ := p.Output.Read(0)
	var o, e bytes.Buffer
	for _, c := range chunks {
		if c.Stream == Stderr {
			e.Write(c.Data)
		} else {
			o.Write(c.Data)
		}
	}
	return o.String(), e.String()
}

func TestRun(t *testing.T) {
	t.Parallel()
	m := newManager(t)
	cases := []struct {
		name, cmd, cwd   string
		env              []string
		stdin            string
		wantOut, wantErr string
		wantCode         int
	}{
		{name: "stdout", cmd: "echo hello", wantOut: "hello\n"},
		{name: "stderr and code", cmd: "echo oops >&2; exit 7", wantErr: "oops\n", wantCode: 7},
		{name: "cwd", cmd: "pwd", cwd: "/tmp", wantOut: "/tmp\n"},
		{name: "env", cmd: "echo $GREETING", env: []string{"GREETING=hi", "PATH=/usr/bin:/bin"}, wantOut: "hi\n"},
		{name: "stdin", cmd: "tr a-z A-Z", stdin: "abc", wantOut: "ABC"},
		{name: "not found", cmd: "definitely-not-a-command-xyz", wantCode: 127},
		{name: "killed by signal", cmd: "kill -TERM $$", wantCode: 128 + 15},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, err := m.Start(Spec{Command: c.cmd, Cwd: c.cwd, Env: c.env, Stdin: []byte(c.stdin)})
			if err != nil {
				t.Fatal(err)
			}
			wait(t, p)
			out, errOut := output(p)
			info := p.Info()
			if info.ExitCode == nil || *info.ExitCode != c.wantCode {
				t.Errorf("exit code = %v, want %d", info.ExitCode, c.wantCode)
			}
			if out != c.wantOut {
				t.Errorf("stdout = %q, want %q", out, c.wantOut)
			}
			if c.wantErr != "" && errOut != c.wantErr {
				t.Errorf("stderr = %q, want %q", errOut, c.wantErr)
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	m := newManager(t)
	for _, spec := range []Spec{
		{Command: "  "},
		{Command: "true", Cwd: "/does/not/exist"},
		{Command: "true", Cwd: "/etc/passwd"},
	} {
		if _, err := m.Start(spec); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Start(%+v) = %v, want ErrInvalidArgument", spec, err)
		}
	}
	if _, err := m.Start(Spec{Argv: []string{"/no/such/binary"}}); err == nil {
		t.Error("Start of a missing binary succeeded")
	}
}

// TestTimeoutKillsGroup checks that a timeout kills the whole process group,
// grandchildren included, and is reported.
func TestTimeoutKillsGroup(t *testing.T) {
	m := newManager(t)
	pidFile := t.TempDir() + "/pid"
	p, err := m.Start(Spec{Command: "sleep 60 & echo $! > " + pidFile + "; wait", Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, p)
	info := p.Info()
	if !info.TimedOut || info.ExitCode == nil || *info.ExitCode != 128+9 {
		t.Fatalf("info = %+v, want timed out with 137", info)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	for _, c := range strings.TrimSpace(string(b)) {
		pid = pid*10 + int(c-'0')
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d survived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSignalGroupAfterExit: a command that left a job in its process
// group and exited still takes a signal, sent to that job; once the
// group is empty too, the signal answers ErrFailedPrecondition.
func TestSignalGroupAfterExit(t *testing.T) {
	m := newManager(t)
	p, err := m.Start(Spec{Command: "sleep 1000 >/dev/null 2>&1 & echo $!"})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, p)
	out, _ := output(p)
	job, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	defer syscall.Kill(job, syscall.SIGKILL)
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("signal to the group of an exited command with a job left: %v", err)
	}
	// Until the job is reaped (by the host's init: it is an orphan) it
	// is still a member of the group.
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(-p.PID, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the group of job %d is still there after the signal", job)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Signal(syscall.SIGKILL); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("signal once the group is empty = %v", err)
	}
}

func TestStdinAndSignal(t *testing.T) {
	m := newManager(t)
	p, err := m.Start(Spec{Command: "cat", StdinOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WriteStdin([]byte("one\n"), false); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteStdin([]byte("two\n"), true); err != nil {
		t.Fatal(err)
	}
	wait(t, p)
	if out, _ := output(p); out != "one\ntwo\n" {
		t.Fatalf("stdout = %q", out)
	}
	if err := p.WriteStdin([]byte("x"), false); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("write after eof = %v", err)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("signal after exit = %v", err)
	}

	p, err = m.Start(Spec{Command: "trap 'echo got-int; exit 3' INT; echo ready; while :; do sleep 0.05; done"})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if out, _ := output(p); out == "ready\n" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	wait(t, p)
	if out, _ := output(p); !strings.Contains(out, "got-int") || *p.Info().ExitCode != 3 {
		t.Fatalf("after INT: %q, %+v", out, p.Info())
	}
}

// TestBackgroundGrandchild checks that a command that leaves a grandchild
// holding its stdout still finishes promptly.
func TestBackgroundGrandchild(t *testing.T) {
	m := newManager(t)
	start := time.Now()
	p, err := m.Start(Spec{Command: "sleep 30 & echo started"})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, p)
	if time.Since(start) > 10*time.Second {
		t.Fatal("command waited for its grandchild")
	}
	if out, _ := output(p); out != "started\n" {
		t.Fatalf("stdout = %q", out)
	}
}

func TestOutputBounded(t *testing.T) {
	o := NewOutput(10)
	o.Append(Stdout, []byte("0123456789"))
	o.Append(Stderr, []byte("abcde"))
	start, end := o.Bounds()
	if start != 10 || end != 15 {
		t.Fatalf("bounds = %d, %d", start, end)
	}
	chunks, next, _, _ := o.Read(0)
	if len(chunks) != 1 || string(chunks[0].Data) != "abcde" || next != 15 {
		t.Fatalf("read(0) = %+v next %d", chunks, next)
	}
	chunks, _, _, _ = o.Read(12)
	if len(chunks) != 1 || string(chunks[0].Data) != "cde" || chunks[0].Off != 12 {
		t.Fatalf("read(12) = %+v", chunks)
	}
}

// TestOutputPaced checks that a paced log holds the writer back instead of
// dropping what its reader has not delivered, until the reader leaves.
func TestOutputPaced(t *testing.T) {
	o := NewPacedOutput(10)
	o.Append(Stdout, []byte("0123456789"))
	appended := make(chan struct{})
	go func() {
		o.Append(Stdout, []byte("abcde"))
		close(appended)
	}()
	select {
	case <-appended:
		t.Fatal("Append went past an unread full log")
	case <-time.After(100 * time.Millisecond):
	}
	o.Ack(5) // "01234" delivered: room for 5 more
	<-appended
	chunks, next, _, _ := o.Read(5)
	if len(chunks) != 2 || chunks[0].Off != 5 || string(chunks[0].Data) != "56789" || next != 15 {
		t.Fatalf("read(5) = %+v next %d", chunks, next)
	}
	o.Unpace()
	o.Append(Stdout, []byte("more than ten bytes")) // drops, no wait
	if start, end := o.Bounds(); start != 15 || end != 34 {
		t.Fatalf("bounds after unpace = %d, %d", start, end)
	}
}

// TestStartCallerFaults checks that what the kernel refuses because of the
// request is an invalid argument, not an internal error.
func TestStartCallerFaults(t *testing.T) {
	m := newManager(t)
	for name, spec := range map[string]Spec{
		"argument over MAX_ARG_STRLEN": {Argv: []string{"/bin/true", strings.Repeat("x", 200<<10)}},
		"NUL in command":               {Command: "echo a\x00b"},
		"NUL in env":                   {Command: "true", Env: []string{"A=a\x00b"}},
	} {
		if _, err := m.Start(spec); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
}

func TestPrune(t *testing.T) {
	m := newManager(t)
	m.keepExited = 2
	for i := 0; i < 5; i++ {
		p, err := m.Start(Spec{Command: "true"})
		if err != nil {
			t.Fatal(err)
		}
		wait(t, p)
	}
	m.Start(Spec{Command: "true"}) // prunes on start
	if n := len(m.List()); n > 3 {
		t.Fatalf("%d commands kept, want at most 3", n)
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"TERM": syscall.SIGTERM, "sigkill": syscall.SIGKILL, "SIGINT": syscall.SIGINT, "1": syscall.SIGHUP} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "FOO", "0", "99", "SIG"} {
		if _, err := ParseSignal(in); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParseSignal(%q) = %v, want ErrInvalidArgument", in, err)
		}
	}
}
