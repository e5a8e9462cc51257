package agent

import (
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/passwd"
)

// Terminal limits.
const (
	// MaxTermSize bounds cols and rows: larger sizes are mistakes and
	// would make full-screen programs allocate absurd buffers.
	MaxTermSize = 1000
	// DefaultCols and DefaultRows are the size until the client says.
	DefaultCols = 80
	DefaultRows = 24
)

// PTYOptions are the query parameters of a PTY WebSocket. The server checks
// them before it touches the sandbox; the agent checks them again.
type PTYOptions struct {
	Mode    string // api.PTYMode*
	Command string // exec mode
	Cwd     string // absolute; empty: the image's WorkingDir or /workspace
	// User runs the terminal as another user than the image's (a name
	// or uid, optionally :group or :gid).
	User       string
	Cols, Rows uint16
	// PTYID reattaches to a terminal; Mode and Command are then ignored.
	PTYID string
	// Offset is where a reattached stream resumes; -1 resumes after the
	// last frame written to the previous connection.
	Offset int64
	// Raw is the connection's framing for stock clients such as
	// xterm.js's attach addon: every client frame, text or binary, is
	// input, and the server sends terminal bytes only (no JSON; the exit
	// code is in the close reason). Not for agent mode, which needs
	// "run" messages.
	Raw bool
	// CRLF (agent mode) ends the output's lines with \r\n instead of \n,
	// for clients that render it on a terminal (xterm.js without
	// convertEol). It belongs to the terminal: a reattach keeps it.
	CRLF bool
}

// ParsePTYQuery reads and checks PTY options. It returns
// errdefs.ErrInvalidArgument with a message naming the bad parameter.
func ParsePTYQuery(q url.Values) (PTYOptions, error) {
	o := PTYOptions{Mode: q.Get("mode"), Command: q.Get("command"), Cwd: q.Get("cwd"), PTYID: q.Get("pty_id"), Offset: -1}
	bad := func(format string, a ...any) (PTYOptions, error) {
		return PTYOptions{}, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf(format, a...))
	}
	if o.Mode == "" {
		o.Mode = api.PTYModeHuman
	}
	switch o.Mode {
	case api.PTYModeHuman, api.PTYModeAgent:
		if o.Command != "" && o.PTYID == "" {
			return bad("command is only for mode=exec (mode is %s)", o.Mode)
		}
	case api.PTYModeExec:
		if strings.TrimSpace(o.Command) == "" && o.PTYID == "" {
			return bad("mode=exec needs a command: ?mode=exec&command=...")
		}
	default:
		return bad("unknown mode %q (use human, agent or exec)", o.Mode)
	}
	var err error
	if o.Raw, err = flag(q, "raw"); err != nil {
		return bad("%v", err)
	}
	if o.CRLF, err = flag(q, "crlf"); err != nil {
		return bad("%v", err)
	}
	if o.Raw && o.Mode == api.PTYModeAgent && o.PTYID == "" {
		return bad("raw=true is for mode=human and mode=exec: agent mode takes its commands as JSON \"run\" messages")
	}
	if o.CRLF && o.Mode != api.PTYModeAgent && o.PTYID == "" {
		return bad("crlf=true is for mode=agent (human and exec terminals end lines with \\r\\n already)")
	}
	if o.Cwd != "" && !path.IsAbs(o.Cwd) {
		return bad("cwd %q must be an absolute path", o.Cwd)
	}
	if o.User = q.Get("user"); o.User != "" {
		if err := passwd.Check(o.User); err != nil {
			return bad("%v", err)
		}
	}
	if o.Cols, err = termDim(q.Get("cols"), DefaultCols); err != nil {
		return bad("cols: %v", err)
	}
	if o.Rows, err = termDim(q.Get("rows"), DefaultRows); err != nil {
		return bad("rows: %v", err)
	}
	if s := q.Get("offset"); s != "" {
		if o.PTYID == "" {
			return bad("offset needs pty_id (it resumes a terminal)")
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return bad("offset must be a non-negative integer")
		}
		o.Offset = n
	}
	return o, nil
}

// flag reads a boolean query parameter: absent is false; true, 1, false,
// 0 (and the other forms strconv.ParseBool takes) are accepted.
func flag(q url.Values, name string) (bool, error) {
	s := q.Get(name)
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%s must be true or false, not %q", name, s)
	}
	return b, nil
}

func termDim(s string, def uint16) (uint16, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return CheckTermSize(n)
}

// CheckTermSize accepts a terminal dimension from 1 to MaxTermSize.
func CheckTermSize(n int) (uint16, error) {
	if n < 1 || n > MaxTermSize {
		return 0, fmt.Errorf("%d is out of range 1..%d", n, MaxTermSize)
	}
	return uint16(n), nil
}

// Query encodes the options for the agent's PTY endpoint.
func (o PTYOptions) Query() url.Values {
	q := url.Values{
		"mode": {o.Mode},
		"cols": {strconv.Itoa(int(o.Cols))},
		"rows": {strconv.Itoa(int(o.Rows))},
	}
	for k, v := range map[string]string{"command": o.Command, "cwd": o.Cwd, "pty_id": o.PTYID, "user": o.User} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.Offset >= 0 {
		q.Set("offset", strconv.FormatInt(o.Offset, 10))
	}
	for k, v := range map[string]bool{"raw": o.Raw, "crlf": o.CRLF} {
		if v {
			q.Set(k, "true")
		}
	}
	return q
}
