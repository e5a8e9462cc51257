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
	profile        string // --profile

	// Set before a command runs (resolveClient).
	c       *client.Client
	using   string        // the profile in use, "" for none
	keyFrom client.Source // where the key came from
	keyNote string        // which key, from where (or why the local admin key was not used), for errors
}

// client returns the API client of this run: CHASER_API_URL and
// CHASER_API_KEY, over the profile (--profile, CHASER_PROFILE, or the
// current one of `chaser auth login`), over the local server's admin.key.
func (e *env) client() *client.Client { return e.c }

// resolveClient sets up e.c before a command runs. `auth login` creates
// the profile it names, so it resolves without it.
func (e *env) resolveClient(cmd *cobra.Command) error {
	profile := e.profile
	if cmd.Name() == "login" {
		profile = ""
	}
	res, err := client.Resolve(profile, filepath.Join(daemon.Defaults().DataDir, "admin.key"))
	if err != nil {
		return errdefs.New(errdefs.ErrInvalidArgument, err.Error())
	}
	e.c, e.using, e.keyFrom = res.Client, res.Profile, res.Source
	e.keyNote = "the key sent was " + res.KeyFrom
	if res.KeyFrom == "" {
		e.keyNote = "no key was sent"
	}
	if res.Skipped != "" {
		e.keyNote += "; " + res.Skipped
	}
	return nil
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
	fmt.Fprintln(e.stderr, "chaser: "+httpjson.Message(err)+e.hint(err))
	return 1
}

// hint says what to do next for common error classes.
func (e *env) hint(err error) string {
	switch {
	case errors.Is(err, errdefs.ErrUnauthenticated):
		return "\n  " + e.keyNote + "\n  log in with `chaser auth login` or set CHASER_API_KEY (the admin key is in the server's data dir: admin.key)"
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
	root.PersistentFlags().StringVar(&e.profile, "profile", "", "client profile to use, saved by chaser auth login (env CHASER_PROFILE)")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		switch cmd.Name() {
		case "serve", "agent":
			return nil // the server reads no client configuration
		}
		return e.resolveClient(cmd)
	}
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
		newAuth(e),
	)
	return root
}
