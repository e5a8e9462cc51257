package cli

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	goruntime "runtime"
)

// EnvPprof names a loopback HOST:PORT on which `chaser serve` also serves
// Go's profiles (/debug/pprof/...), for benchmarks: e.g.
// `go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=10`.
// It is a debugging aid, not a flag: the profiles show the server's
// internals, so only a loopback address is accepted.
const EnvPprof = "CHASER_DEBUG_PPROF"

// startPprof serves the profiles when EnvPprof is set.
func startPprof(log *slog.Logger) error {
	addr := os.Getenv(EnvPprof)
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s=%q: give a loopback HOST:PORT such as 127.0.0.1:6060", EnvPprof, addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: %w", EnvPprof, err)
	}
	// Blocking and lock contention are sampled too (/debug/pprof/block,
	// /debug/pprof/mutex): one event per 10 µs blocked, one in 5
	// contentions. Both cost little beside the CPU profile's own.
	goruntime.SetBlockProfileRate(10_000)
	goruntime.SetMutexProfileFraction(5)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	log.Warn("serving Go profiles (debugging aid)", "addr", l.Addr().String())
	go func() { _ = http.Serve(l, mux) }()
	return nil
}
