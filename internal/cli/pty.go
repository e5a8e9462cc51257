package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/term"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/errdefs"
)

// stdinShell runs the remote shell on piped standard input
// (`echo 'ls' | chaser shell`), preferring bash like terminals do.
const stdinShell = `if command -v bash >/dev/null 2>&1; then exec bash -s; else exec sh -s; fi`

// shellTarget returns the session of `chaser shell [SESSION]`: SESSION, or
// where a targetless request goes (a fresh ephemeral sandbox that release
// destroys, or a paid account's default workspace, which stays).
func shellTarget(ctx context.Context, e *env, c *client.Client, args []string, target api.CreateSessionRequest) (id string, release func(), err error) {
	if len(args) == 1 {
		return args[0], func() {}, nil
	}
	s, err := c.CreateSession(ctx, target)
	if err != nil {
		return "", nil, err
	}
	if !s.Ephemeral {
		return s.ID, func() {}, nil // a workspace's session stays
	}
	return s.ID, func() {
		// The sandbox must go even when ctx ended (Ctrl-C, SIGTERM).
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := c.DeleteSession(dctx, s.ID); err != nil {
			fmt.Fprintf(e.stderr, "chaser: delete sandbox %s: %v\n", s.ID, err)
		}
	}, nil
}

// runShell is `chaser shell [SESSION]` without -c: an interactive terminal
// when stdin is one, else the remote shell reading the piped input.
// Without SESSION it runs where a targetless request goes (shellTarget).
func runShell(ctx context.Context, e *env, args []string, cwd, user string, target api.CreateSessionRequest) error {
	c := e.client()
	id, release, err := shellTarget(ctx, e, c, args, target)
	if err != nil {
		return err
	}
	defer release()
	in, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		code, err := runRemote(ctx, c, id, api.ExecRequest{Command: stdinShell, Cwd: cwd, User: user}, e.stdin, e.stdout, e.stderr)
		if err != nil {
			return err
		}
		if code != 0 {
			return &ExitError{Code: code}
		}
		return nil
	}
	code, err := interactive(ctx, c, id, client.PTYOptions{Cwd: cwd, User: user}, in, e.stdout)
	if err != nil {
		return err
	}
	if code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}

// interactive attaches the local terminal to a human-mode PTY and returns
// the remote shell's exit code. The local terminal is in raw mode meanwhile
// (so Ctrl-C, Ctrl-Z and Ctrl-D travel as bytes to the remote shell) and is
// restored on every way out. A dropped connection is resumed where it left
// off while the server still holds the terminal.
func interactive(ctx context.Context, c *client.Client, id string, opts client.PTYOptions, in *os.File, out io.Writer) (int, error) {
	fd := int(in.Fd())
	sizeFd := fd
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		sizeFd = int(f.Fd())
	}
	cols, rows, err := term.GetSize(sizeFd)
	if err != nil {
		cols, rows = 80, 24
	}
	p, err := c.DialPTY(ctx, id, client.PTYOptions{Mode: api.PTYModeHuman, Cwd: opts.Cwd, User: opts.User, Cols: cols, Rows: rows})
	if err != nil {
		return 0, err
	}
	old, err := term.MakeRaw(fd)
	if err != nil {
		p.CloseNow()
		return 0, fmt.Errorf("put the terminal in raw mode: %w", err)
	}
	defer term.Restore(fd, old)

	var mu sync.Mutex // guards p across reconnects
	cur := func() *client.PTY { mu.Lock(); defer mu.Unlock(); return p }

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)
	// A closed terminal window sends SIGHUP: end cleanly so the local
	// terminal is restored and an ephemeral sandbox is destroyed.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				cancel()
				return
			case <-winch:
				if w, h, err := term.GetSize(sizeFd); err == nil {
					_ = cur().Resize(ctx, w, h)
				}
			}
		}
	}()
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := in.Read(buf)
			if n > 0 {
				// A write lost to a dropped connection is lost like a
				// keystroke on a frozen ssh session; the reader
				// below reconnects.
				_ = cur().Write(ctx, buf[:n])
			}
			if err != nil {
				// Local EOF (stdin closed): hang up the remote side
				// with Ctrl-D semantics left to the shell.
				return
			}
		}
	}()

	for {
		data, m, err := cur().Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return 130, nil
			}
			if m != nil || websocket.CloseStatus(err) == websocket.StatusNormalClosure || errors.Is(err, errdefs.ErrNotFound) {
				return 0, err
			}
			np, rerr := reconnect(ctx, c, id, cur())
			if rerr != nil {
				return 0, fmt.Errorf("terminal connection lost: %v (reconnecting: %w)", err, rerr)
			}
			mu.Lock()
			p = np
			mu.Unlock()
			if w, h, err := term.GetSize(sizeFd); err == nil {
				_ = np.Resize(ctx, w, h)
			}
			continue
		}
		if m == nil {
			if _, err := out.Write(data); err != nil {
				return 0, err
			}
			continue
		}
		if m.Type == api.PTYExit && m.Code != nil {
			_ = cur().Close()
			return *m.Code, nil
		}
	}
}

// reconnect reattaches to the terminal of old, resuming after the last
// frame received, for up to about 30 seconds.
func reconnect(ctx context.Context, c *client.Client, id string, old *client.PTY) (*client.PTY, error) {
	old.CloseNow()
	var err error
	for i := 0; i < 30; i++ {
		var p *client.PTY
		p, err = c.DialPTY(ctx, id, client.PTYOptions{PTYID: old.ID, Offset: old.Resume(), Resume: true})
		if err == nil {
			return p, nil
		}
		if errors.Is(err, errdefs.ErrNotFound) || ctx.Err() != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return nil, err
}
