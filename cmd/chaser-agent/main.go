// Command chaser-agent is the in-sandbox agent as a small static binary of
// its own, built and shipped beside chaser. `chaser serve` bind-mounts it
// into every sandbox as the init when it finds it next to itself; otherwise
// it uses its own hidden `chaser agent` subcommand, which runs the same
// code. Being small (the agent's imports only, not the server's) halves the
// memory an idle sandbox costs.
//
// Usage: chaser-agent [agent] [--socket PATH | --vm] [--seccomp-fd N]. Without --socket it
// serves on the listening socket inherited as fd 3; with --vm, as a
// microVM's init, on a yamux session over the virtio-serial port.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	"github.com/chaserhq/chaser/internal/agent"
)

func main() {
	// One P: the agent mostly waits on sockets, pipes and children, and
	// with more Ps each request woke idle threads to look for work. Agent
	// CPU per exec of `true` fell from 550–750 to 350–450 µs
	// (BenchmarkExec's agent-CPU-µs/op), exec latency, file and forward
	// throughput unchanged (docs/BENCHMARKS.md). Blocking system calls
	// still run beside it on threads of their own.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "agent" {
		args = args[1:] // the runtime starts every agent as `AGENT agent`
	}
	fs := flag.NewFlagSet("chaser-agent", flag.ExitOnError)
	socket := fs.String("socket", "", "listen on this unix socket instead of the inherited fd 3")
	vm := fs.Bool("vm", false, "run as a microVM's init: serve on the virtio-serial port (runtime microvm)")
	seccompFD := fs.Int("seccomp-fd", -1, "first install the seccomp filter program read from this fd (runtime runc)")
	_ = fs.Parse(args)
	run := func() error { return agent.Main(*socket, *seccompFD) }
	if *vm {
		run = agent.MainVM
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chaser-agent:", err)
		os.Exit(1)
	}
}
