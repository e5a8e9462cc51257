// Package agent is the program that runs inside every sandbox as its init
// (PID 1). It serves plain HTTP/1.1 on a unix socket that the host created
// and handed over as a file descriptor, so the sandbox never sees the host
// path of the socket. Everything the server does inside a sandbox — exec,
// PTYs, files and port dialling — goes through this API, which is
// why it behaves the same under every runtime. Debug it with
// `curl --unix-socket STATE/agent.sock http://agent/v1/health`.
//
// The agent must stay small: it imports the standard library, api, errdefs,
// httpjson, passwd, its own subpackages and a few small libraries (creack/pty,
// coder/websocket, x/sys, fsnotify for watches, and hashicorp/yamux for
// the VM mode) only
// (TestImportsStaySmall checks this).
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chaserhq/chaser/internal/agent/process"
)

// Config configures an agent.
type Config struct {
	// Listener serves the API. Main takes it from an inherited fd.
	Listener net.Listener
	// Env is the base environment of every command; requests add to it.
	Env []string
	// ReapAll must be set when the agent is PID 1.
	ReapAll bool
	// Cwd is the default working directory of commands (DefaultCwd when
	// empty); Credential, when set, is who they run as (else root).
	Cwd        string
	Credential *syscall.Credential
	Log        *slog.Logger
	// Poweroff, when set (the agent is a VM's init), is called by
	// POST /v1/vm/poweroff after the answer went out: the VM runtime asks
	// for it at Delete so the guest flushes its disks before QEMU ends.
	Poweroff func()
}

// Agent serves the in-sandbox API.
type Agent struct {
	log *slog.Logger
	// envMu guards env and inited: init (POST /v1/init) lays a pooled
	// sandbox's identity over env once; read env through environ.
	envMu   sync.RWMutex
	env     []string
	inited  bool
	shell   string
	procs   *process.Manager
	terms   *terminals
	started time.Time
	cwd     string
	// user is the image's user: who commands run as and new files belong
	// to unless a request names another.
	user identity
	// poweroff: see Config.Poweroff.
	poweroff func()
}

// New returns an agent. It picks bash as the shell when present, else sh;
// an image with neither runs argv only.
func New(cfg Config) *Agent {
	shell := findShell()
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Cwd == "" {
		cfg.Cwd = DefaultCwd
	}
	return &Agent{
		log:     log,
		env:     cfg.Env,
		shell:   shell,
		procs:   process.NewManager(log, shell, cfg.ReapAll),
		terms:   newTerminals(log.With("component", "pty")),
		started: time.Now(),
		cwd:     cfg.Cwd,
		user:    defaultIdentity(cfg.Credential),

		poweroff: cfg.Poweroff,
	}
}

// Serve answers requests on l until ctx ends, then kills every command.
func (a *Agent) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		a.procs.KillAll()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Main is the entry point of `chaser agent`. It serves on the listening
// socket at fd 3 (passed by the runtime) or on socketPath when set. With
// seccompFD ≥ 0 it first installs the seccomp filter read from that fd
// (installSeccomp), or fails.
//
// The agent hardens itself first, before it starts any command (see
// harden), and logs to stderr capped at LogLimit bytes.
func Main(socketPath string, seccompFD int) error {
	if seccompFD >= 0 {
		// First: what runc would have installed before starting the
		// agent. Refusing to serve without it is what keeps sandboxes
		// filtered (the server is told by the sandbox ending).
		if err := installSeccomp(seccompFD); err != nil {
			return err
		}
	}
	if err := harden(); err != nil {
		return fmt.Errorf("make the agent non-dumpable: %w", err)
	}
	resetNice()
	log := newLog()
	var l net.Listener
	var err error
	if socketPath != "" {
		_ = os.Remove(socketPath)
		l, err = net.Listen("unix", socketPath)
	} else {
		f := os.NewFile(3, "agent-listener")
		l, err = net.FileListener(f)
		f.Close()
	}
	if err != nil {
		return err
	}
	return serve(l, log, nil)
}

func newLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter(os.Stderr, LogLimit), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// serve runs the agent on l with the settings of its environment.
// poweroff is Config.Poweroff.
func serve(l net.Listener, log *slog.Logger, poweroff func()) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cred, err := parseUser(os.Getenv(EnvUser))
	if err != nil {
		return err
	}
	a := New(Config{Env: baseEnv(os.Environ()), ReapAll: os.Getpid() == 1, Cwd: os.Getenv(EnvCwd), Credential: cred, Log: log, Poweroff: poweroff})
	if err := prepareDirs(a.user, a.cwd, DefaultCwd); err != nil {
		log.Warn("default directories", "err", err)
	}
	a.procs.Warm() // beside the first request, not in front of it
	log.Info("agent serving", "pid", os.Getpid(), "shell", a.shell, "cwd", a.cwd, "user", a.user.user)
	return a.Serve(ctx, l)
}

// baseEnv is the agent's own environment less its private variables.
func baseEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if strings.HasPrefix(kv, "CHASER_AGENT_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
