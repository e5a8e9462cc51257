package process

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// TTYSpec says what to run on a pseudo-terminal.
type TTYSpec struct {
	Argv       []string // argv[0] is resolved with the PATH of Env
	Cwd        string   // absolute; must exist
	Env        []string // the whole environment
	Cols, Rows uint16
	// User is who the process runs as; the agent itself stays root.
	User User
	// Raw turns echo and output newline translation off before the
	// process starts: the terminal then carries bytes for programs, not
	// people (agent mode).
	Raw bool
	// Script, when set, opens a pipe as fd 3 of the child and keeps its
	// write end in TTY.Script: a shell can read its commands from it
	// while the commands it runs keep the terminal as stdin.
	Script bool
}

// TTY is a process running as the session leader of a new session whose
// controlling terminal is a pseudo-terminal.
type TTY struct {
	PID int
	// Master is the terminal's controlling side: reading it yields the
	// output, writing it types input.
	Master *os.File
	// Script is the write end of fd 3 when TTYSpec.Script was set.
	Script *os.File

	exited chan struct{}
	status syscall.WaitStatus
}

// StartTTY starts spec on a new pseudo-terminal. Like Start it goes through
// the reaper: the agent as PID 1 must never call Wait itself. It returns
// errdefs.ErrInvalidArgument when argv is empty or cwd is not a directory.
func (m *Manager) StartTTY(spec TTYSpec) (*TTY, error) {
	if len(spec.Argv) == 0 {
		return nil, fmt.Errorf("command is empty: %w", errdefs.ErrInvalidArgument)
	}
	if spec.Cwd == "" {
		spec.Cwd = "/"
	}
	if fi, err := os.Stat(spec.Cwd); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("cwd %s is not a directory in the sandbox: %w", spec.Cwd, errdefs.ErrInvalidArgument)
	}
	master, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open pseudo-terminal: %w", err)
	}
	defer slave.Close()
	if master, err = pollable(master); err != nil {
		return nil, fmt.Errorf("open pseudo-terminal: %w", err)
	}
	if spec.Cols > 0 && spec.Rows > 0 {
		if err := setWinsize(master, spec.Cols, spec.Rows); err != nil {
			master.Close()
			return nil, fmt.Errorf("set terminal size: %w", err)
		}
	}
	if c := spec.User.Credential; c != nil {
		// The terminal belongs to its user, as login and sshd make it:
		// programs that open /dev/tty or their pts (ssh, sudo, gpg)
		// work.
		if err := slave.Chown(int(c.Uid), -1); err != nil {
			master.Close()
			return nil, fmt.Errorf("give the terminal to its user: %w", err)
		}
	}
	if spec.Raw {
		if err := makeQuiet(slave); err != nil {
			master.Close()
			return nil, fmt.Errorf("set terminal modes: %w", err)
		}
	}
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Path = lookPath(spec.Argv[0], spec.Env)
	cmd.Err = nil
	cmd.Dir = spec.Cwd
	cmd.Env = spec.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	// Setsid + Setctty make the shell a session leader owning the
	// terminal, so job control works and Ctrl-C (ISIG) reaches the
	// foreground process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0, Credential: spec.User.Credential}
	t := &TTY{Master: master, exited: make(chan struct{})}
	var scriptR *os.File
	if spec.Script {
		scriptR, t.Script, err = os.Pipe()
		if err != nil {
			master.Close()
			return nil, err
		}
		defer scriptR.Close()
		if c := spec.User.Credential; c != nil {
			// The shell reopens it as /proc/self/fd/3, which checks the
			// pipe's owner like a file's.
			if err := scriptR.Chown(int(c.Uid), int(c.Gid)); err != nil {
				master.Close()
				t.Script.Close()
				return nil, fmt.Errorf("give the script pipe to its user: %w", err)
			}
		}
		cmd.ExtraFiles = []*os.File{scriptR}
	}
	pid, err := m.reaper.start(func() (int, error) {
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		return cmd.Process.Pid, nil
	}, func(ws syscall.WaitStatus) {
		t.status = ws
		close(t.exited)
	})
	if err != nil {
		master.Close()
		if t.Script != nil {
			t.Script.Close()
		}
		return nil, startError(err, spec.Argv[0], cmd.Path, spec.User)
	}
	t.PID = pid
	m.log.Debug("terminal started", "pid", pid, "argv0", spec.Argv[0])
	return t, nil
}

// Exited is closed when the process has exited.
func (t *TTY) Exited() <-chan struct{} { return t.exited }

// ExitCode is the exit code (128+signal when killed); valid after Exited.
func (t *TTY) ExitCode() int { return exitCode(t.status) }

// Resize sets the terminal size; the foreground process gets SIGWINCH.
func (t *TTY) Resize(cols, rows uint16) error {
	return setWinsize(t.Master, cols, rows)
}

// SignalForeground sends sig to the terminal's foreground process group
// (what Ctrl-C does), falling back to the session leader's group.
func (t *TTY) SignalForeground(sig syscall.Signal) error {
	pgrp := t.PID
	if fg, err := foregroundGroup(t.Master); err == nil && fg > 0 {
		pgrp = fg
	}
	if err := syscall.Kill(-pgrp, sig); err != nil && err != syscall.ESRCH {
		return err
	}
	return nil
}

// SignalCommands sends sig to every process of the session but its leader:
// the commands a non-interactive shell runs share its process group, and
// signalling that group would hit the shell too.
func (t *TTY) SignalCommands(sig syscall.Signal) {
	for _, pid := range sessionMembers(t.PID) {
		if pid != t.PID {
			_ = syscall.Kill(pid, sig)
		}
	}
}

// Kill ends the whole session: SIGHUP first (what closing a terminal does,
// so shells can save history), SIGKILL to everything left after a moment.
// Job-control jobs run in process groups of their own but stay in the
// session, so the session id, not a process group, finds them all.
func (t *TTY) Kill() {
	for _, pid := range sessionMembers(t.PID) {
		_ = syscall.Kill(pid, syscall.SIGHUP)
	}
	select {
	case <-t.exited:
	case <-time.After(500 * time.Millisecond):
	}
	for _, pid := range sessionMembers(t.PID) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// sessionMembers lists the processes of session sid from /proc.
func sessionMembers(sid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{sid}
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command name may hold spaces and parentheses: fields
		// count from the last ')'. After it: state ppid pgrp session.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) >= 4 && f[3] == strconv.Itoa(sid) {
			out = append(out, pid)
		}
	}
	return out
}

// LookPath finds file in the PATH of env; it returns "" when it is absent.
func LookPath(file string, env []string) string {
	p := lookPath(file, env)
	if !strings.Contains(p, "/") {
		return ""
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return ""
	}
	return p
}
