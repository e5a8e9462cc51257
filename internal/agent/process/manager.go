// Package process runs and tracks the commands of one sandbox: start under a
// shell in their own process group, bounded output logs, stdin, signals,
// timeouts, and reaping of every child (the agent is PID 1).
package process

import (
	"cmp"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
)

// Defaults of a Manager.
const (
	// DefaultOutputLimit is how many bytes of output are kept per command.
	DefaultOutputLimit = 4 << 20
	// DefaultKeepExited is how many exited commands are remembered.
	DefaultKeepExited = 64
	// drainGrace is how long a read of the pipes may wait for output after
	// the command itself exited, for grandchildren that hold them open
	// (`sleep 100 &`). Time spent waiting for a paced reader does not count.
	drainGrace = 200 * time.Millisecond
	// drainLimit bounds what is still read after the command exited: what
	// its pipes held (at most 1 MiB by default) and little more, so a
	// grandchild that keeps writing (`yes &`) cannot keep it from ending.
	drainLimit = 4 << 20
	// stdinTimeout is how long a write to stdin may wait for the command to
	// read (per 64 KiB): a command that does not read gets no write that
	// blocks forever, and its exit never waits behind one.
	stdinTimeout = 5 * time.Second
)

// Spec says what to run.
type Spec struct {
	Command    string        // run as Shell -c Command
	Shell      string        // for Command; the manager's when empty
	Argv       []string      // run directly instead, when set
	Cwd        string        // absolute; must exist
	Env        []string      // the whole environment
	Timeout    time.Duration // 0: none; the whole process group is killed
	Stdin      []byte        // written to stdin first
	StdinOpen  bool          // keep stdin open after Stdin for WriteStdin
	Background bool          // recorded for listings only
	// User is who the command runs as; the agent itself stays root.
	User User
	// Paced makes the output wait for its pacing reader instead of
	// dropping unread bytes (see Output): a foreground command's caller
	// gets every byte, and a slow caller slows the command down.
	Paced bool
}

// Manager owns the processes of a sandbox.
type Manager struct {
	log         *slog.Logger
	shell       string
	outputLimit int
	keepExited  int
	reaper      *reaper

	mu      sync.Mutex
	procs   map[string]*Process
	lastSeq uint64
}

// NewManager returns a manager. reapAll must be true when the agent is PID 1
// (it then reaps every orphan); shell is used for Spec.Command.
func NewManager(log *slog.Logger, shell string, reapAll bool) *Manager {
	return &Manager{
		log:         log,
		shell:       shell,
		outputLimit: DefaultOutputLimit,
		keepExited:  DefaultKeepExited,
		reaper:      newReaper(reapAll),
		procs:       make(map[string]*Process),
	}
}

// Warm does, in the background and ahead of the first command, the
// one-time work of the agent's process: Go's os package checks once per
// process whether pidfds work, which forks and reaps a child (~0.25 ms,
// paid by the first command of every sandbox otherwise), and the spare
// threads (spareThreads). It takes the reaper's lock before it returns,
// so every process start waits until both are done: as PID 1 the SIGCHLD
// loop cannot reap the check's child before the check does, and no
// command of the sandbox can fill its pids limit before the spares exist.
func (m *Manager) Warm() {
	m.reaper.mu.Lock()
	go func() {
		defer m.reaper.mu.Unlock()
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			p.Release()
		}
		spareThreads(SpareThreads)
	}()
}

// Process is one started command.
type Process struct {
	ID        string
	Seq       uint64 // the order of starts, for paged listings
	Spec      Spec
	PID       int
	StartedAt time.Time
	Output    *Output

	stdinMu sync.Mutex
	stdin   *os.File // nil once closed
	// stdinFile is stdin's pipe, set before the command runs and never
	// changed: its deadline may be set without stdinMu.
	stdinFile *os.File

	done     chan struct{} // closed after exit and output drained
	exiting  chan struct{} // closed when the command itself exited
	mu       sync.Mutex
	status   syscall.WaitStatus
	exitedAt time.Time
	timedOut bool
}

// Start starts a command. It returns errdefs.ErrInvalidArgument when the
// command is empty or cwd is not a directory.
func (m *Manager) Start(spec Spec) (*Process, error) {
	if strings.TrimSpace(spec.Command) == "" && len(spec.Argv) == 0 {
		return nil, fmt.Errorf("command is empty: %w", errdefs.ErrInvalidArgument)
	}
	if hasNUL(spec) {
		return nil, fmt.Errorf("command, argv, cwd or env contains a NUL byte: %w", errdefs.ErrInvalidArgument)
	}
	if spec.Cwd == "" {
		spec.Cwd = "/"
	}
	if fi, err := os.Stat(spec.Cwd); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("cwd %s is not a directory in the sandbox: %w", spec.Cwd, errdefs.ErrInvalidArgument)
	}
	return m.start(spec, true)
}

// start starts spec; tryDirect lets a plain command line skip bash (see
// directCommand), falling back to bash when that exec fails.
func (m *Manager) start(spec Spec, tryDirect bool) (*Process, error) {
	argv := spec.Argv
	var d direct
	isDirect := false
	if len(argv) == 0 {
		shell := spec.Shell
		if shell == "" {
			shell = m.shell
		}
		argv = []string{shell, "-c", spec.Command}
		if tryDirect && filepath.Base(shell) == "bash" {
			d, isDirect = directCommand(spec.Command, spec.Cwd, spec.Env)
		}
	}
	var cmd *exec.Cmd
	switch {
	case isDirect:
		cmd = &exec.Cmd{Path: d.path, Args: d.argv, Env: d.env}
	case len(spec.Argv) > 0:
		// Resolved with the command's own environment, not the agent's.
		cmd = &exec.Cmd{Path: lookPath(argv[0], spec.Env), Args: argv, Env: spec.Env}
	default:
		cmd = exec.Command(argv[0], argv[1:]...)
		cmd.Env = spec.Env
	}
	cmd.Dir = spec.Cwd
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: spec.User.Credential}

	p := &Process{
		ID:        newID(),
		Spec:      spec,
		StartedAt: time.Now(),
		Output:    NewOutput(m.outputLimit),
		exiting:   make(chan struct{}),
		done:      make(chan struct{}),
	}
	p.Spec.Stdin = nil
	if spec.Paced {
		p.Output = NewPacedOutput(m.outputLimit)
	}

	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	var inW *os.File
	if spec.StdinOpen || len(spec.Stdin) > 0 {
		var inR *os.File
		inR, inW, err = os.Pipe()
		if err != nil {
			outR.Close()
			outW.Close()
			errR.Close()
			errW.Close()
			return nil, err
		}
		cmd.Stdin = inR
		defer inR.Close()
	} else if null, err := devNull(); err == nil {
		cmd.Stdin = null // else os/exec opens /dev/null for this command
	}

	exited := make(chan struct{})
	pid, err := m.reaper.start(func() (int, error) {
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		return cmd.Process.Pid, nil
	}, func(ws syscall.WaitStatus) {
		p.mu.Lock()
		p.status = ws
		p.exitedAt = time.Now()
		p.mu.Unlock()
		close(exited)
	})
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		if inW != nil {
			inW.Close()
		}
		if isDirect {
			// The exec failed (not executable for this user, no
			// interpreter line, …): bash says why, or runs it its way.
			m.log.Debug("direct exec failed, running bash", "path", d.path, "err", err)
			return m.start(spec, false)
		}
		return nil, startError(err, argv[0], cmd.Path, spec.User)
	}
	p.PID = pid
	if inW != nil {
		p.stdin, p.stdinFile = inW, inW
		if len(spec.Stdin) > 0 || !spec.StdinOpen {
			data, keepOpen := spec.Stdin, spec.StdinOpen
			go func() {
				// Nobody waits for this write: no deadline but the exit.
				_ = p.writeStdin(data, !keepOpen, 0)
			}()
		}
	}

	var timer *time.Timer
	if spec.Timeout > 0 {
		timer = time.AfterFunc(spec.Timeout, func() {
			p.mu.Lock()
			p.timedOut = true
			p.mu.Unlock()
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		})
	}

	var readers sync.WaitGroup
	readers.Add(2)
	go p.copyOut(&readers, outR, Stdout)
	go p.copyOut(&readers, errR, Stderr)
	go func() {
		<-exited
		if timer != nil {
			timer.Stop()
		}
		// Bound the pipe reads from now on: grandchildren may hold the
		// pipes open. A read already waiting gets the deadline here, the
		// next ones in copyOut.
		close(p.exiting)
		p.cutStdin()
		_ = outR.SetReadDeadline(time.Now().Add(drainGrace))
		_ = errR.SetReadDeadline(time.Now().Add(drainGrace))
		readers.Wait()
		p.CloseStdin()
		p.Output.Close()
		close(p.done)
		m.log.Debug("command exited", "command_id", p.ID, "pid", pid, "exit_code", p.exitCode())
	}()

	m.mu.Lock()
	m.lastSeq++
	p.Seq = m.lastSeq
	m.procs[p.ID] = p
	m.pruneLocked()
	m.mu.Unlock()
	m.log.Debug("command started", "command_id", p.ID, "pid", pid)
	return p, nil
}

// devNull is /dev/null, opened once: the stdin of every command that gets
// none (os/exec would open and close it for each: 3% of the agent's CPU
// per command).
var devNull = sync.OnceValues(func() (*os.File, error) { return os.Open(os.DevNull) })

// copyBuffers are copyOut's read buffers, reused: two fresh 32 KiB
// buffers per command were most of what the agent allocated.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyOut copies one pipe into the output until it ends or, once the
// command exited, stays quiet for drainGrace or gave drainLimit more bytes.
// Append may wait for a paced reader: that is what holds the command back.
func (p *Process) copyOut(wg *sync.WaitGroup, r *os.File, s Stream) {
	defer wg.Done()
	defer r.Close()
	// Append copies what it keeps: the buffer goes back to the pool.
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	drained := 0
	for {
		select {
		case <-p.exiting:
			if drained >= drainLimit {
				return
			}
			_ = r.SetReadDeadline(time.Now().Add(drainGrace))
		default:
		}
		n, err := r.Read(buf)
		if n > 0 {
			p.Output.Append(s, buf[:n])
			if p.isExiting() {
				drained += n
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Process) isExiting() bool {
	select {
	case <-p.exiting:
		return true
	default:
		return false
	}
}

// hasNUL reports whether a string of spec cannot be a C string.
func hasNUL(spec Spec) bool {
	for _, ss := range [][]string{{spec.Command, spec.Cwd}, spec.Argv, spec.Env} {
		for _, x := range ss {
			if strings.IndexByte(x, 0) >= 0 {
				return true
			}
		}
	}
	return false
}

// pruneLocked forgets the oldest exited processes beyond keepExited. It
// runs at every start: in the common case, one over, it finds the oldest
// without sorting (a sort per start was 7% of the agent's CPU per command).
func (m *Manager) pruneLocked() {
	n := 0
	var oldest *Process
	for _, p := range m.procs {
		if p.Exited() {
			n++
			if oldest == nil || p.Seq < oldest.Seq {
				oldest = p
			}
		}
	}
	switch over := n - m.keepExited; {
	case over <= 0:
		return
	case over == 1:
		delete(m.procs, oldest.ID)
		return
	}
	exited := make([]*Process, 0, n)
	for _, p := range m.procs {
		if p.Exited() {
			exited = append(exited, p)
		}
	}
	slices.SortFunc(exited, func(a, b *Process) int { return cmp.Compare(a.Seq, b.Seq) })
	for _, p := range exited[:len(exited)-m.keepExited] {
		delete(m.procs, p.ID)
	}
}

// Get returns a process, or errdefs.ErrNotFound.
func (m *Manager) Get(id string) (*Process, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.procs[id]
	if !ok {
		return nil, fmt.Errorf("command %s: %w", id, errdefs.ErrNotFound)
	}
	return p, nil
}

// List returns all known processes, oldest first.
func (m *Manager) List() []*Process {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := make([]*Process, 0, len(m.procs))
	for _, p := range m.procs {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].StartedAt.Before(ps[j].StartedAt) })
	return ps
}

// Page returns, oldest first, up to limit of the processes that match (all
// when match is nil) and were started after the one numbered after (0: from
// the first), and whether more follow.
func (m *Manager) Page(after uint64, limit int, match func(*Process) bool) (page []*Process, more bool) {
	m.mu.Lock()
	var ps []*Process
	for _, p := range m.procs {
		if p.Seq > after {
			ps = append(ps, p)
		}
	}
	m.mu.Unlock()
	sort.Slice(ps, func(i, j int) bool { return ps[i].Seq < ps[j].Seq })
	for _, p := range ps {
		if match != nil && !match(p) {
			continue
		}
		if len(page) == limit {
			return page, true
		}
		page = append(page, p)
	}
	return page, false
}

// KillAll sends SIGKILL to the process group of every running process.
func (m *Manager) KillAll() {
	for _, p := range m.List() {
		if !p.Exited() {
			_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		}
	}
}

// Done is closed when the process has exited and its output is complete.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether Done is closed.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process group. After the process itself has
// exited, the processes it left in its group (a job it put in the
// background, a fork storm filling the sandbox's pids limit, which only a
// signal can end then: nothing new can start) still get it. It returns
// errdefs.ErrFailedPrecondition when the process and its whole group have
// exited.
func (p *Process) Signal(sig syscall.Signal) error {
	if p.Exited() {
		// The group's number is the process's pid, which stays taken
		// while any member of the group lives. Once the group has
		// emptied, a new process may get that pid and lead a group of
		// its own: with a process of that pid alive nothing is sent.
		// (A new group whose leader took the pid and exited in turn
		// would still get the signal; the kernel hands pids out in
		// turn, so that needs the sandbox to run through every pid
		// first.)
		if _, err := os.Stat("/proc/" + strconv.Itoa(p.PID)); errors.Is(err, fs.ErrNotExist) {
			if err := syscall.Kill(-p.PID, sig); err == nil {
				return nil
			}
		}
		return fmt.Errorf("command %s has exited: %w", p.ID, errdefs.ErrFailedPrecondition)
	}
	if err := syscall.Kill(-p.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal command %s: %w", p.ID, err)
	}
	return nil
}

// WriteStdin writes data to stdin and closes it when eof is set. It returns
// errdefs.ErrFailedPrecondition when stdin is closed, the command exits
// first, or does not read its stdin: when a write makes no progress for
// stdinTimeout (stdin then stays open, with what was written).
func (p *Process) WriteStdin(data []byte, eof bool) error {
	return p.writeStdin(data, eof, stdinTimeout)
}

// writeStdin is WriteStdin with a timeout per 64 KiB written (0: none).
func (p *Process) writeStdin(data []byte, eof bool, timeout time.Duration) error {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdin == nil {
		return fmt.Errorf("stdin of command %s is closed: %w", p.ID, errdefs.ErrFailedPrecondition)
	}
	for written := 0; written < len(data); {
		if p.isExiting() {
			return fmt.Errorf("command %s exited before it read its stdin (%d of %d bytes written): %w", p.ID, written, len(data), errdefs.ErrFailedPrecondition)
		}
		if timeout > 0 {
			_ = p.stdin.SetWriteDeadline(time.Now().Add(timeout))
		}
		n, err := p.stdin.Write(data[written:min(len(data), written+64<<10)])
		written += n
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded) && !p.isExiting():
			return fmt.Errorf("the command is not reading its stdin: %d of %d bytes written in %v; stdin stays open: %w", written, len(data), timeout, errdefs.ErrFailedPrecondition)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("command %s exited before it read its stdin (%d of %d bytes written): %w", p.ID, written, len(data), errdefs.ErrFailedPrecondition)
		default:
			p.stdin.Close()
			p.stdin = nil
			return fmt.Errorf("stdin of command %s: %v: %w", p.ID, err, errdefs.ErrFailedPrecondition)
		}
	}
	if eof {
		p.stdin.Close()
		p.stdin = nil
	}
	return nil
}

// cutStdin makes a write to stdin that waits give up now (the command
// exited), so CloseStdin does not wait behind it.
func (p *Process) cutStdin() {
	if p.stdinFile != nil {
		_ = p.stdinFile.SetWriteDeadline(time.Unix(1, 0))
	}
}

// CloseStdin closes stdin if it is open.
func (p *Process) CloseStdin() {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdin != nil {
		p.stdin.Close()
		p.stdin = nil
	}
}

func (p *Process) exitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return exitCode(p.status)
}

func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// Info describes the process on the wire.
func (p *Process) Info() api.Command {
	start, end := p.Output.Bounds()
	c := api.Command{
		ID:          p.ID,
		Command:     p.Spec.Command,
		Cwd:         p.Spec.Cwd,
		Status:      api.CommandRunning,
		PID:         p.PID,
		Background:  p.Spec.Background,
		StartedAt:   p.StartedAt,
		OutputSize:  end,
		OutputStart: start,
	}
	if c.Command == "" {
		c.Command = strings.Join(p.Spec.Argv, " ")
	}
	if p.Exited() {
		p.mu.Lock()
		code := exitCode(p.status)
		c.Status = api.CommandExited
		c.ExitCode = &code
		if p.status.Signaled() {
			c.Signal = SignalName(p.status.Signal())
		}
		c.TimedOut = p.timedOut
		t := p.exitedAt
		c.ExitedAt = &t
		p.mu.Unlock()
	}
	return c
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func newID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return "c-" + idEncoding.EncodeToString(b)
}

// envPath is env's PATH: the last one, the one os/exec passes on.
func envPath(env []string) (path string, ok bool) {
	for _, kv := range env {
		if v, found := strings.CutPrefix(kv, "PATH="); found {
			path, ok = v, true
		}
	}
	return path, ok
}

// lookPath finds file in the PATH of env, or returns file unchanged.
func lookPath(file string, env []string) string {
	if strings.Contains(file, "/") {
		return file
	}
	path, ok := envPath(env)
	if !ok {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			continue
		}
		f := dir + "/" + file
		if fi, err := os.Stat(f); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return f
		}
	}
	return file
}
