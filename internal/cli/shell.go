package cli

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/errdefs"
)

func newShell(e *env) *cobra.Command {
	var command, cwd, image, user string
	var ephemeral bool
	cmd := &cobra.Command{
		Use:   "shell [SESSION] [-c COMMAND]",
		Short: "Open an interactive shell in a sandbox, or run a command with -c",
		Long: `Without -c: an interactive shell on a terminal in SESSION (raw mode, window
size follows the local terminal, Ctrl-C/Ctrl-Z/Ctrl-D go to the remote shell);
chaser exits with the shell's exit code. With piped input the remote shell reads
it as a script.
With -c: run COMMAND in SESSION, streaming its output; chaser exits with its
exit code. Piped standard input is passed through.
Without SESSION the shell or command runs where a targetless request goes: a
fresh ephemeral sandbox, destroyed afterwards (free accounts, or --ephemeral),
or the account's default workspace (paid accounts). --image REF runs it in a
fresh ephemeral sandbox of that image (on any tier), destroyed afterwards.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if image != "" && len(args) == 1 {
				return errdefs.New(errdefs.ErrInvalidArgument, "--image makes a new sandbox: give SESSION or --image, not both")
			}
			target := api.CreateSessionRequest{Type: api.SessionTypeSandbox, Ephemeral: ephemeral, Image: image}
			if command == "" {
				return runShell(cmd.Context(), e, args, cwd, user, target)
			}
			c := e.client()
			ctx := cmd.Context()
			id, release, err := shellTarget(ctx, e, c, args, target)
			if err != nil {
				return err
			}
			defer release()
			req := api.ExecRequest{Command: command, Cwd: cwd, User: user}
			code, err := runRemote(ctx, c, id, req, e.stdin, e.stdout, e.stderr)
			if err != nil {
				return err
			}
			if code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&command, "command", "c", "", "command to run (under sh -c; bash when present)")
	cmd.Flags().StringVar(&cwd, "cwd", "", "working directory (default: the image's WorkingDir, else /workspace)")
	cmd.Flags().StringVar(&user, "user", "", "run as this user: a name or uid[:gid] (default: the image's USER)")
	cmd.Flags().BoolVar(&ephemeral, "ephemeral", false, "without SESSION: use a throwaway sandbox even on a paid account")
	cmd.Flags().StringVar(&image, "image", "", "without SESSION: use a throwaway sandbox of this OCI image")
	return cmd
}

// runRemote runs req in session id with the local stdio and returns the
// remote exit code. A terminal on stdin is not forwarded (there is no PTY);
// a pipe or file is streamed to the command's stdin. If ctx ends (Ctrl-C),
// the remote command is killed and 130 returned.
func runRemote(ctx context.Context, c *client.Client, id string, req api.ExecRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	write := func(ev api.Event) error {
		data := []byte(ev.Data)
		if ev.Encoding == "base64" {
			var err error
			if data, err = base64.StdEncoding.DecodeString(ev.Data); err != nil {
				return err
			}
		}
		w := stdout
		if ev.Type == "stderr" {
			w = stderr
		}
		_, err := w.Write(data)
		return err
	}
	if f, ok := stdin.(*os.File); stdin == nil || ok && term.IsTerminal(int(f.Fd())) {
		exit, err := c.ExecStream(ctx, id, req, write)
		return exitOf(ctx, exit, err)
	}

	open := true
	req.StdinOpen = &open
	cid, err := c.StartBackground(ctx, id, req)
	if err != nil {
		return 0, err
	}
	go pumpStdin(ctx, c, id, cid, stdin)
	exit, err := c.Follow(ctx, id, cid, write)
	if ctx.Err() != nil {
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = c.Signal(kctx, id, cid, "KILL")
		cancel()
	}
	return exitOf(ctx, exit, err)
}

func exitOf(ctx context.Context, exit api.Event, err error) (int, error) {
	if ctx.Err() != nil {
		return 130, nil
	}
	if err != nil {
		return 0, err
	}
	if exit.ExitCode == nil {
		return 0, errors.New("the server did not report an exit code")
	}
	return *exit.ExitCode, nil
}

// pumpStdin copies r to a command's stdin until EOF, then closes it. Once
// the command stops taking input (it exited), the rest is dropped.
func pumpStdin(ctx context.Context, c *client.Client, id, cid string, r io.Reader) {
	buf := make([]byte, 64<<10)
	for {
		n, rerr := r.Read(buf)
		req := api.StdinRequest{EOF: rerr != nil}
		if n > 0 {
			req.Data, req.Encoding = base64.StdEncoding.EncodeToString(buf[:n]), "base64"
		}
		if n > 0 || req.EOF {
			if err := c.Stdin(ctx, id, cid, req); err != nil {
				return
			}
		}
		if rerr != nil {
			return
		}
	}
}
