package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
)

// envInt reads a benchmark knob from the environment.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// percentile returns the p-th quantile of sorted samples, in ms.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(p*float64(len(sorted)-1))].Microseconds()) / 1000
}

// ownClient is a client with its own connection pool: concurrent workers
// of a benchmark each keep their connection alive, as separate users would.
func ownClient(url, key string) *client.Client {
	c := client.New(url, key)
	c.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	return c
}

// BenchmarkExecLoad is the tail under load of issue 17: CHASER_BENCH_CLIENTS
// (16) concurrent clients run `echo hi` across CHASER_BENCH_SANDBOXES (120)
// running sandboxes of several paid accounts (20 each, the tier's limit),
// b.N commands in all, in two ways on the same sandboxes:
//   - closed: each client sends its next command as soon as the last one
//     answered, so the host runs flat out and the throughput is whatever it
//     gives (the way issue 17 measured 612 exec/s, p99 273 ms);
//   - paced: the commands are due at a fixed rate, CHASER_BENCH_RATE
//     (612 exec/s, issue 17's throughput), spread over the same clients;
//     a command's latency counts from when it was due, so one that waited
//     for a free client (the server fell behind) counts that wait too.
//
// Each reports exec/s and p50/p99/max latency; errors fail it. Run it with
// `go test ./bench -run '^$' -bench '^BenchmarkExecLoad$' -benchtime 6000x`.
func BenchmarkExecLoad(b *testing.B) {
	s, admin := server(b)
	ctx := context.Background()
	nSandboxes := envInt("CHASER_BENCH_SANDBOXES", 120)
	nClients := envInt("CHASER_BENCH_CLIENTS", 16)
	type target struct {
		c  *client.Client
		id string
	}
	var targets []target
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, nSandboxes)
	for a := 0; a*20 < nSandboxes; a++ {
		acct, err := admin.CreateAccount(ctx, api.CreateAccountRequest{Name: fmt.Sprintf("load%d", a), Tier: api.TierPaid})
		if err != nil {
			b.Fatal(err)
		}
		// Four creates at a time per account: the host has 2 cores.
		sem := make(chan struct{}, 4)
		ac := ownClient(s.URL, acct.APIKey)
		for i := a * 20; i < min(nSandboxes, (a+1)*20); i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				sess, err := ac.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				targets = append(targets, target{ac, sess.ID})
				mu.Unlock()
			}()
		}
		wg.Wait()
		ac.HTTP.CloseIdleConnections()
	}
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	// Each worker has its own connection per account, as separate users.
	clients := make([]map[*client.Client]*client.Client, nClients)
	for w := range clients {
		clients[w] = map[*client.Client]*client.Client{}
		for _, t := range targets {
			if clients[w][t.c] == nil {
				clients[w][t.c] = ownClient(s.URL, t.c.Key)
			}
		}
	}
	ts := make([]loadTarget, len(targets))
	for i, t := range targets {
		ts[i] = loadTarget{t.id, t.c, clients}
	}
	b.Run("closed", func(b *testing.B) { execLoad(b, s.Cmd.Process.Pid, ts, nClients, 0) })
	rate := envInt("CHASER_BENCH_RATE", 612)
	b.Run(fmt.Sprintf("paced-%dps", rate), func(b *testing.B) { execLoad(b, s.Cmd.Process.Pid, ts, nClients, rate) })
}

// loadTarget is a sandbox of BenchmarkExecLoad with its account's client
// and, per worker, that worker's own client for the account.
type loadTarget struct {
	id      string
	c       *client.Client
	workers []map[*client.Client]*client.Client
}

// execLoad runs b.N commands over targets from nClients workers: each as
// soon as its worker is free (rate 0), or each due at start + i/rate.
func execLoad(b *testing.B, serverPID int, targets []loadTarget, nClients, rate int) {
	ctx := context.Background()
	var wg sync.WaitGroup
	var next atomic.Int64
	lat := make([][]time.Duration, nClients)
	type sample struct {
		at, client, server time.Duration
		w                  int
		id, cid            string
		c                  *client.Client
		t0, t1             time.Time
	}
	samples := make([][]sample, nClients)
	var failed atomic.Int64
	b.ResetTimer()
	profiled := serverProfile(b)
	cpu0 := cpuTime(b, serverPID)
	self0 := cpuTime(b, os.Getpid())
	var behind atomic.Int64
	start := time.Now()
	for w := range nClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t := targets[i%int64(len(targets))]
				c := t.workers[w][t.c]
				t0 := time.Now()
				if rate > 0 {
					due := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
					if wait := time.Until(due); wait > 0 {
						time.Sleep(wait)
					} else if wait < -time.Millisecond {
						behind.Add(1)
					}
					t0 = due
				}
				res, err := c.Exec(ctx, t.id, api.ExecRequest{Command: "echo hi"})
				d := time.Since(t0)
				if err != nil || res.ExitCode != 0 || res.Stdout != "hi\n" {
					if failed.Add(1) <= 5 {
						b.Errorf("exec in %s: %+v %v", t.id, res, err)
					}
					continue
				}
				lat[w] = append(lat[w], d)
				samples[w] = append(samples[w], sample{t0.Sub(start), d, time.Duration(res.DurationMS) * time.Millisecond, w, t.id, res.CommandID, c, t0, t0.Add(d)})
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	profiled()
	// CHASER_BENCH_TRACE=1 prints the 60 slowest executions with where
	// their time went: client send → the agent starting the process
	// (server, agent, and the wait in the server's start gate), the
	// process's own run (started_at → exited_at of the command, as the
	// agent saw it), and its exit → the client's answer.
	if os.Getenv("CHASER_BENCH_TRACE") != "" {
		ss := slices.Concat(samples...)
		slices.SortFunc(ss, func(a, b sample) int { return int(b.client - a.client) })
		for _, x := range ss[:min(60, len(ss))] {
			fmt.Fprintf(os.Stderr, "at %v client %v server %v worker %d sandbox %s", x.at.Round(time.Millisecond), x.client.Round(time.Millisecond), x.server, x.w, x.id)
			if cmd, err := x.c.Command(ctx, x.id, x.cid); err == nil && cmd.ExitedAt != nil {
				fmt.Fprintf(os.Stderr, " | send→start %v start→exit %v exit→client %v", cmd.StartedAt.Sub(x.t0), cmd.ExitedAt.Sub(cmd.StartedAt), x.t1.Sub(*cmd.ExitedAt))
			}
			fmt.Fprintln(os.Stderr)
		}
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "exec/s")
	b.ReportMetric(percentile(all, 0.50), "p50-ms")
	b.ReportMetric(percentile(all, 0.99), "p99-ms")
	b.ReportMetric(percentile(all, 1), "max-ms")
	b.ReportMetric(float64(failed.Load()), "errors")
	if rate > 0 {
		// Commands that went out more than 1 ms after they were due: the
		// clients were all busy, the server behind the rate.
		b.ReportMetric(float64(behind.Load())/float64(b.N)*100, "late-%")
	}
	b.ReportMetric(float64((cpuTime(b, serverPID)-cpu0).Microseconds())/float64(b.N), "server-CPU-µs/exec")
	b.ReportMetric(float64((cpuTime(b, os.Getpid())-self0).Microseconds())/float64(b.N), "client-CPU-µs/exec")
}

// BenchmarkHostBash is the floor of an exec: the host's own fork+exec of
// `bash -c true`, measured in the same run as the others.
func BenchmarkHostBash(b *testing.B) {
	var lat []time.Duration
	for range b.N {
		t0 := time.Now()
		if err := exec.Command("bash", "-c", "true").Run(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	b.ReportMetric(percentile(lat, 0.50), "p50-ms")
}

// serverProfile starts a CPU profile of the server, when the benchmark
// runs with CHASER_DEBUG_PPROF=127.0.0.1:PORT (the server serves its
// profiles there) and CHASER_BENCH_PROFILE=FILE: the profile covers the
// CHASER_BENCH_PROFILE_SECONDS (5) from now and is written to FILE.
// Call the returned function after the measured loop, which should last
// at least as long: it then also saves the server's blocking and mutex
// contention profiles and its allocations (counted since the server
// started) as FILE.block, FILE.mutex and FILE.allocs.
func serverProfile(b *testing.B) (wait func()) {
	addr, out := os.Getenv("CHASER_DEBUG_PPROF"), os.Getenv("CHASER_BENCH_PROFILE")
	if addr == "" || out == "" {
		return func() {}
	}
	secs := envInt("CHASER_BENCH_PROFILE_SECONDS", 5)
	save := func(path, file string) {
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/%s", addr, path))
		if err != nil {
			b.Error(err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(file)
		if err != nil {
			b.Error(err)
			return
		}
		defer f.Close()
		_, _ = io.Copy(f, resp.Body)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		save(fmt.Sprintf("profile?seconds=%d", secs), out)
	}()
	return func() {
		<-done
		save("block", out+".block")
		save("mutex", out+".mutex")
		save("allocs", out+".allocs")
	}
}

// cpuTime returns the user+system CPU time process pid used so far.
func cpuTime(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// agentPID returns the host pid of a sandbox's agent.
func agentPID(b *testing.B, dataDir, id string) int {
	raw, err := os.ReadFile(filepath.Join(dataDir, "sandboxes", id, "pid"))
	if err != nil {
		b.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		b.Fatal(err)
	}
	return pid
}
