package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/mirror"
)

// devRemote is where `chaser dev` mirrors the local directory.
const devRemote = "/workspace"

func newDev(e *env) *cobra.Command {
	var session, workspace, command string
	var ephemeral bool
	cmd := &cobra.Command{
		Use:   "dev [DIR] [--session ID | --workspace NAME | --ephemeral] [-c COMMAND]",
		Short: "Mirror a local directory live into a sandbox's /workspace",
		Long: `Upload DIR (default .) to /workspace of a sandbox, then keep mirroring every
change (creates, writes, deletes, renames) within about a second. Local files
are authoritative: edits made in the sandbox never flow back and are
overwritten by the next local change. .gitignore and .chaserignore rules are
honoured and .git is skipped; paths they ignore are never deleted in the
sandbox (dependencies installed there stay). Restarting reconciles by hash
instead of uploading everything again.

Without a target the sandbox is chosen as for chaser shell: a fresh ephemeral
sandbox (free accounts, or --ephemeral; destroyed when chaser dev ends) or the
account's default workspace (paid accounts).

  -c COMMAND   run COMMAND in /workspace after the initial sync, keep
               syncing while it runs, exit with its code
  --json       print NDJSON events ({"type":"ready",…} first, then one per
               change) and run until interrupted`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			abs, err := checkDevDir(dir)
			if err != nil {
				return err
			}
			targets := 0
			for _, set := range []bool{session != "", workspace != "", ephemeral} {
				if set {
					targets++
				}
			}
			if targets > 1 {
				return errdefs.New(errdefs.ErrInvalidArgument, "give at most one of --session, --workspace and --ephemeral")
			}
			interactive := command == "" && !e.json && isTerminal(e.stdin)
			return runDev(cmd.Context(), e, devOptions{
				dir: abs, session: session, workspace: workspace, ephemeral: ephemeral, command: command, interactive: interactive,
			})
		},
	}
	cmd.Flags().StringVar(&session, "session", "", "mirror into this running session")
	cmd.Flags().StringVar(&workspace, "workspace", "", "mirror into the session of this workspace (started if needed)")
	cmd.Flags().BoolVar(&ephemeral, "ephemeral", false, "mirror into a throwaway sandbox, destroyed at the end")
	cmd.Flags().StringVarP(&command, "command", "c", "", "command to run in /workspace after the initial sync")
	return cmd
}

type devOptions struct {
	dir, session, workspace, command string
	ephemeral, interactive           bool
}

// checkDevDir returns DIR as an absolute path, or a clear error when it is
// missing, not a directory or not readable.
func checkDevDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%s: %v", dir, err))
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%s does not exist: give the directory to mirror (default .)", dir))
	case errors.Is(err, os.ErrPermission):
		return "", errdefs.New(errdefs.ErrPermissionDenied, fmt.Sprintf("%s: permission denied", dir))
	case err != nil:
		return "", errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%s: %v", dir, err))
	case !fi.IsDir():
		return "", errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%s is not a directory: chaser dev mirrors a directory (to send one file use chaser upload)", dir))
	}
	f, err := os.Open(abs)
	if err == nil {
		_, err = f.Readdirnames(1)
		f.Close()
	}
	if err != nil && err != io.EOF {
		return "", errdefs.New(errdefs.ErrPermissionDenied, fmt.Sprintf("cannot read %s: %v", dir, err))
	}
	return abs, nil
}

// runDev resolves the sandbox, runs the mirror, and runs the command or
// waits for an interrupt.
func runDev(ctx context.Context, e *env, o devOptions) error {
	c := e.client()
	id := o.session
	if id == "" {
		s, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: api.SessionTypeSandbox, Ephemeral: o.ephemeral, Workspace: o.workspace})
		if err != nil {
			return err
		}
		id = s.ID
		if s.Ephemeral {
			defer func() {
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
				defer cancel()
				if err := c.DeleteSession(dctx, id); err != nil {
					fmt.Fprintf(e.stderr, "chaser: delete sandbox %s: %v\n", id, err)
				}
			}()
		}
	} else if _, err := c.GetSession(ctx, id); err != nil {
		return err
	}

	var mu sync.Mutex // events come from the mirror; the command writes too
	emit := devPrinter(e, o, &mu)
	mctx, stop := context.WithCancel(ctx)
	defer stop()
	m := mirror.New(mirror.Config{Client: c, SessionID: id, Local: o.dir, Remote: devRemote, Emit: emit})
	readyc := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- m.Run(mctx, func(st mirror.Stats) {
			emit(api.DevEvent{Type: "ready", SessionID: id, Root: devRemote, Files: st.Files, Uploaded: st.Uploaded, Deleted: st.Deleted, Bytes: st.Bytes})
			close(readyc)
		})
	}()
	select {
	case err := <-errc:
		if err == nil || ctx.Err() != nil {
			return nil // interrupted during the initial sync
		}
		return fmt.Errorf("initial sync of %s to %s:%s: %w", o.dir, id, devRemote, err)
	case <-readyc:
	}

	if o.command == "" && !o.interactive {
		// Until interrupted (SIGINT/SIGTERM end ctx: a clean exit), or
		// until the mirror fails for good.
		if err := <-errc; err != nil {
			return fmt.Errorf("sync to %s stopped: %w", id, err)
		}
		return nil
	}
	var (
		code int
		err  error
	)
	if o.interactive {
		// isTerminal(e.stdin) held, so stdin is a terminal *os.File.
		code, err = interactive(ctx, c, id, client.PTYOptions{Cwd: devRemote}, e.stdin.(*os.File), e.stdout)
	} else {
		code, err = runRemote(ctx, c, id, api.ExecRequest{Command: o.command, Cwd: devRemote}, e.stdin, lockedOut{&mu, e.stdout}, lockedOut{&mu, e.stderr})
	}
	// The command or shell is over: so is syncing.
	stop()
	<-errc
	if err != nil {
		return err
	}
	if code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}

// devPrinter returns how events are shown: NDJSON on stdout with --json;
// otherwise one line each on stderr, errors only while a command or an
// interactive shell runs.
func devPrinter(e *env, o devOptions, mu *sync.Mutex) func(api.DevEvent) {
	enc := json.NewEncoder(e.stdout)
	return func(ev api.DevEvent) {
		mu.Lock()
		defer mu.Unlock()
		if e.json {
			_ = enc.Encode(ev)
			return
		}
		switch {
		case ev.Type == "error":
			fmt.Fprintf(e.stderr, "chaser dev: %s\n", ev.Message)
		case o.command != "" || o.interactive:
			// The command's output or the shell's screen is the user's.
		case ev.Type == "ready":
			fmt.Fprintf(e.stderr, "chaser dev: %s mirrored to %s:%s (%d entries, %d sent, %d deleted); watching, Ctrl-C to stop\n",
				o.dir, ev.SessionID, ev.Root, ev.Files, ev.Uploaded, ev.Deleted)
		case ev.Type == "sync":
			fmt.Fprintf(e.stderr, "chaser dev: %s %s\n", ev.Op, ev.Path)
		case ev.Type == "reconcile":
			fmt.Fprintf(e.stderr, "chaser dev: reconciled (%d sent, %d deleted)\n", ev.Uploaded, ev.Deleted)
		}
	}
}

// lockedOut serializes writes with the event printer.
type lockedOut struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedOut) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
