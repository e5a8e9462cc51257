// Package cli is the chaser command line: one file per verb, each thin —
// parse flags, call the client (or the daemon for `serve`), print. Every
// command that prints data has --json.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/daemon"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// ExitError makes the CLI exit with Code (a remote command's exit code).
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// env carries what every command needs; tests can swap its streams.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	json           bool
}

// client returns an API client from CHASER_API_URL / CHASER_API_KEY, falling
// back to the local server's admin.key when no key is set.
func (e *env) client() *client.Client {
	return client.FromEnv(filepath.Join(daemon.Defaults().DataDir, "admin.key"))
}

func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Run runs the CLI with args and returns the process exit code.
func Run(ctx context.Context, args []string) int {
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	root := newRoot(e)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		return exit.Code
	}
	fmt.Fprintln(e.stderr, "chaser: "+httpjson.Message(err)+hint(err))
	return 1
}

// hint says what to do next for common error classes.
func hint(err error) string {
	switch {
	case errors.Is(err, errdefs.ErrUnauthenticated):
		return "\n  set CHASER_API_KEY (the admin key is in the server's data dir: admin.key)"
	case errors.Is(err, errdefs.ErrNotFound) && strings.HasPrefix(httpjson.Message(err), "image "):
		return "\n  check the image reference; cached images: chaser images list"
	case errors.Is(err, errdefs.ErrNotFound) && strings.HasPrefix(httpjson.Message(err), "session "):
		return "\n  list your sessions with: chaser sessions list"
	}
	return ""
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:           "chaser",
		Short:         "Isolated Linux sandboxes on demand",
		Long:          "chaser gives every session its own isolated Linux sandbox: shell, command execution, files, ports.\nThe client reads CHASER_API_URL and CHASER_API_KEY.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().BoolVar(&e.json, "json", false, "print JSON")
	root.AddCommand(
		newServe(e),
		newAgent(),
		newSandbox(e),
		newSessions(e),
		newShell(e),
		newAccounts(e),
		newWorkspaces(e),
		newUpload(e), newDownload(e),
		newImages(e),
		newMCP(e),
		newDev(e),
		newForward(e),
	)
	return root
}
