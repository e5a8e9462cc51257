package api

// PTY modes of GET /v1/sessions/{id}/pty.
const (
	// PTYModeHuman is an interactive login shell for a person.
	PTYModeHuman = "human"
	// PTYModeAgent is a stateful shell for programs: "run" messages in,
	// clean output and a "done" message per command out.
	PTYModeAgent = "agent"
	// PTYModeExec runs one command on a terminal and closes.
	PTYModeExec = "exec"
)

// PTY control message types (text frames).
const (
	PTYOpen   = "open"   // server → client, first frame of every connection
	PTYResize = "resize" // client → server
	PTYRun    = "run"    // client → server, agent mode
	PTYSignal = "signal" // client → server: signal the foreground job (agent mode: the shell's commands)
	PTYDone   = "done"   // server → client, agent mode: a command finished
	PTYExit   = "exit"   // server → client, just before a normal close
	PTYError  = "error"  // server → client, before closing on bad input
)

// PTYMessage is a JSON control message of the PTY WebSocket. Binary frames
// carry terminal bytes; text frames carry one PTYMessage each. Which fields
// are set depends on Type.
type PTYMessage struct {
	Type string `json:"type"`

	// open
	PTYID string `json:"pty_id,omitempty"`
	Mode  string `json:"mode,omitempty"`
	// Offset (open) is the stream offset this connection starts at:
	// offsets count the bytes of every frame after "open", binary and
	// text. Pass offset+received as ?offset= when reconnecting.
	Offset *int64 `json:"offset,omitempty"`

	// resize
	Cols int `json:"cols,omitempty"`
	Rows int `json:"rows,omitempty"`

	// run (agent mode); ID is echoed in the matching "done"
	Command string `json:"command,omitempty"`
	ID      string `json:"id,omitempty"`

	// signal: a name such as "INT", "TERM", "KILL"
	Signal string `json:"signal,omitempty"`

	// done (agent mode)
	ExitCode *int   `json:"exit_code,omitempty"`
	Cwd      string `json:"cwd,omitempty"`

	// exit
	Code *int `json:"code,omitempty"`

	// error: Error is the class ("invalid_argument"), Message says what
	Error   string `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
}
