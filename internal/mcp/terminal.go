package mcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
	"github.com/chaserhq/chaser/internal/store"
)

// TerminalInput is the argument object of the terminal tool.
type TerminalInput struct {
	SessionID string `json:"session_id,omitempty" jsonschema:"Run in this existing session (from an earlier result). Leave out to auto-provision: the workspace's session, else the account's default sandbox."`
	Workspace string `json:"workspace,omitempty" jsonschema:"Run in the session of this persistent workspace (paid accounts), starting it if needed."`
	Image     string `json:"image,omitempty" jsonschema:"Without session_id and workspace: run in a throwaway sandbox of this OCI image (e.g. python:3.12), shared by later calls that name the same image. Not with workspace (a workspace fixes its image)."`
	Command   string `json:"command,omitempty" jsonschema:"Shell command to run (bash -c). Give command, cmd or xml."`
	Cmd       string `json:"cmd,omitempty" jsonschema:"Same as command."`
	XML       string `json:"xml,omitempty" jsonschema:"Structured file operations, run in order: <read_file path=\"/abs\" start_line=\"1\" end_line=\"20\"/>, <write_file path=\"/abs\">content</write_file> (creates parents, atomic), <apply_edit path=\"/abs\"><search>exact old text</search><replace>new text</replace></apply_edit> (the search text must occur exactly once), <list_files path=\"/abs\" recursive=\"true\"/>. Wrap content holding < or & in <![CDATA[...]]>."`
	Cwd       string `json:"cwd,omitempty" jsonschema:"Working directory of the command (absolute; default: the image's working directory, /workspace in the host image)."`
	TimeoutMS int64  `json:"timeout_ms,omitempty" jsonschema:"Kill the command after this many milliseconds (0: no limit)."`
}

// TerminalOutput is the structured result of the terminal tool.
type TerminalOutput struct {
	SessionID   string     `json:"session_id"`
	WorkspaceID *string    `json:"workspace_id"`
	ExitCode    *int       `json:"exit_code,omitempty"`
	Stdout      string     `json:"stdout,omitempty"`
	Stderr      string     `json:"stderr,omitempty"`
	TimedOut    bool       `json:"timed_out,omitempty"`
	Results     []OpResult `json:"results,omitempty"`
}

// OpResult is the outcome of one xml operation.
type OpResult struct {
	Op      string         `json:"op"`
	Path    string         `json:"path"`
	Content string         `json:"content,omitempty"`
	Entries []api.FileInfo `json:"entries,omitempty"`
	Bytes   int64          `json:"bytes,omitempty"`
}

func terminalTool() *sdk.Tool {
	return &sdk.Tool{
		Name: "terminal",
		Description: "Run a shell command, or structured file operations, in an isolated Linux sandbox " +
			"(node, python, git and the usual tools are there; files live in /workspace). " +
			"Give exactly one of command (or cmd) and xml. The result holds the output, the exit code, " +
			"and the session_id and workspace_id: pass session_id to later calls to keep using the same sandbox.",
	}
}

// errResult is a tool error (isError) with a message for the model.
func errResult(msg string) *sdk.CallToolResult {
	return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: msg}}}
}

func (s *Server) terminal(ctx context.Context, req *sdk.CallToolRequest, in TerminalInput) (*sdk.CallToolResult, TerminalOutput, error) {
	acct, ok := account(req)
	if !ok {
		return errResult("not authenticated"), TerminalOutput{}, nil
	}
	if in.Command != "" && in.Cmd != "" && in.Command != in.Cmd {
		return errResult("give command or cmd, not both"), TerminalOutput{}, nil
	}
	command := in.Command
	if command == "" {
		command = in.Cmd
	}
	if (command == "") == (in.XML == "") {
		return errResult("give exactly one of command (or cmd) and xml"), TerminalOutput{}, nil
	}
	var ops []Op
	if in.XML != "" {
		var err error
		if ops, err = ParseOps(in.XML); err != nil {
			return errResult(err.Error()), TerminalOutput{}, nil
		}
	}
	sess, err := s.resolve(ctx, acct, in)
	if err != nil {
		return errResult(httpjson.Message(err)), TerminalOutput{}, nil
	}
	out := TerminalOutput{SessionID: sess.ID, WorkspaceID: sess.WorkspaceID}
	var text strings.Builder
	if command != "" {
		var watch func(api.Event)
		if token := req.Params.GetProgressToken(); token != nil && req.Session != nil {
			p := startProgress(ctx, s.progressInterval(), func(ctx context.Context, progress float64, msg string) {
				_ = req.Session.NotifyProgress(ctx, &sdk.ProgressNotificationParams{ProgressToken: token, Progress: progress, Message: msg})
			})
			defer p.stop()
			watch = p.watch
		}
		res, err := s.svc.ExecWatch(ctx, acct, sess.ID, api.ExecRequest{Command: command, Cwd: in.Cwd, TimeoutMS: in.TimeoutMS}, watch)
		if err != nil {
			return errResult(httpjson.Message(err) + footer(out)), out, nil
		}
		code := res.ExitCode
		out.ExitCode, out.Stdout, out.Stderr, out.TimedOut = &code, res.Stdout, res.Stderr, res.TimedOut
		text.WriteString(res.Stdout)
		if res.Stderr != "" {
			if text.Len() > 0 && !strings.HasSuffix(text.String(), "\n") {
				text.WriteString("\n")
			}
			text.WriteString("[stderr]\n" + res.Stderr)
		}
		if text.Len() > 0 && !strings.HasSuffix(text.String(), "\n") {
			text.WriteString("\n")
		}
		fmt.Fprintf(&text, "[exit code: %d]", res.ExitCode)
		if res.TimedOut {
			text.WriteString(" [timed out]")
		}
	} else {
		for i, op := range ops {
			r, err := s.runOp(ctx, acct, sess.ID, op)
			if err != nil {
				done := ""
				if i > 0 {
					done = fmt.Sprintf(" (operations 1-%d succeeded)", i)
				}
				out.Results = append(out.Results, r)
				return errResult(fmt.Sprintf("%s %s failed: %s%s%s", op.Kind, op.Path, httpjson.Message(err), done, footer(out))), out, nil
			}
			out.Results = append(out.Results, r)
			text.WriteString(describe(r))
		}
	}
	text.WriteString(footer(out))
	return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: text.String()}}}, out, nil
}

func footer(out TerminalOutput) string {
	ws := "none"
	if out.WorkspaceID != nil {
		ws = *out.WorkspaceID
	}
	return fmt.Sprintf("\n[session_id: %s] [workspace_id: %s]", out.SessionID, ws)
}

func describe(r OpResult) string {
	switch r.Op {
	case "read_file":
		return fmt.Sprintf("--- %s ---\n%s\n", r.Path, r.Content)
	case "write_file":
		return fmt.Sprintf("wrote %s (%d bytes)\n", r.Path, r.Bytes)
	case "apply_edit":
		return fmt.Sprintf("edited %s (%d bytes)\n", r.Path, r.Bytes)
	default:
		var b strings.Builder
		fmt.Fprintf(&b, "--- %s (%d entries) ---\n", r.Path, len(r.Entries))
		for _, e := range r.Entries {
			name := e.Path
			if e.Type == api.FileTypeDir {
				name += "/"
			}
			fmt.Fprintf(&b, "%s\t%d\n", name, e.Size)
		}
		return b.String()
	}
}

// resolve picks the session of a call: session_id, else sandbox.Service's
// Target (workspace; a shared throwaway sandbox of the image or of the free
// tier; the paid tier's default workspace).
func (s *Server) resolve(ctx context.Context, acct store.Account, in TerminalInput) (api.Session, error) {
	if in.SessionID != "" {
		if in.Workspace != "" || in.Image != "" {
			return api.Session{}, errdefs.New(errdefs.ErrInvalidArgument, "give session_id, or workspace or image, not both: the session fixes where the command runs")
		}
		return s.svc.Get(ctx, acct, in.SessionID)
	}
	return s.svc.Target(ctx, acct, api.CreateSessionRequest{Type: api.SessionTypeSandbox, Workspace: in.Workspace, Image: in.Image})
}

// runOp runs one file operation in session id.
func (s *Server) runOp(ctx context.Context, acct store.Account, id string, op Op) (OpResult, error) {
	r := OpResult{Op: op.Kind, Path: op.Path}
	switch op.Kind {
	case "read_file":
		content, err := s.read(ctx, acct, id, op.Path)
		if err != nil {
			return r, err
		}
		r.Content = Lines(content, op.StartLine, op.EndLine)
	case "write_file":
		info, err := s.svc.Upload(ctx, acct, id, op.Path, "", "", strings.NewReader(op.Content), int64(len(op.Content)))
		if err != nil {
			return r, err
		}
		r.Bytes = info.Size
	case "apply_edit":
		content, err := s.read(ctx, acct, id, op.Path)
		if err != nil {
			return r, err
		}
		edited, err := ApplyEdits(content, op.Edits)
		if err != nil {
			return r, err
		}
		st, err := s.svc.StatFile(ctx, acct, id, op.Path)
		if err != nil {
			return r, err
		}
		info, err := s.svc.Upload(ctx, acct, id, op.Path, st.Mode, "", strings.NewReader(edited), int64(len(edited)))
		if err != nil {
			return r, err
		}
		r.Bytes = info.Size
	case "list_files":
		list, err := s.svc.ListFiles(ctx, acct, id, op.Path, op.Recursive)
		if err != nil {
			return r, err
		}
		r.Entries = list.Entries
	default:
		return r, errors.New("unknown operation")
	}
	return r, nil
}

func (s *Server) read(ctx context.Context, acct store.Account, id, p string) (string, error) {
	d, err := s.svc.Download(ctx, acct, id, p)
	if err != nil {
		return "", err
	}
	defer d.Body.Close()
	b, err := io.ReadAll(d.Body)
	return string(b), err
}
