package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/sandbox"
)

// metric returns the value of the /metrics line that starts with name
// (with its labels, e.g. `chaser_pool_misses_total{reason="empty"}`), 0
// when absent.
func (s *Server) metric(t *testing.T, name string) float64 {
	t.Helper()
	code, body := s.do(t, s.AdminKey, "GET", "/metrics", "")
	if code != 200 {
		t.Fatalf("metrics: %d %s", code, body)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	return 0
}

// waitPool waits until n warm sandboxes wait in s's pool.
func (s *Server) waitPool(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for s.metric(t, "chaser_pool_sandboxes") != float64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("the pool did not reach %d sandboxes in 60s (has %v)\n%s", n, s.metric(t, "chaser_pool_sandboxes"), s.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pooledIDs lists the sandboxes of the pool on the host (runtime ids p-…).
func (s *Server) pooledIDs(t *testing.T) []string {
	dirs, _ := filepath.Glob(filepath.Join(s.DataDir, "sandboxes*", "p-*"))
	out := make([]string, len(dirs))
	for i, d := range dirs {
		out[i] = filepath.Base(d)
	}
	return out
}

// idlePooled lists the pooled sandboxes no session claimed: the sandboxes
// p-… less those the server's log says it bound to a session.
func (s *Server) idlePooled(t *testing.T) []string {
	log := s.Log()
	var out []string
	for _, id := range s.pooledIDs(t) {
		if !strings.Contains(log, "sandbox="+id) {
			out = append(out, id)
		}
	}
	return out
}

// poolProbe is what a pooled session must show as a fresh one would.
const poolProbe = `echo "id=$CHASER_SESSION_ID"; echo "host=$(hostname)"; echo "env=$HOSTNAME"; echo "ws=$CHASER_WORKSPACE_ID"; ` +
	`echo "marker=$CHASER:$CHASER_IMAGE:$CHASER_RUNTIME"; echo "uid=$(id -u)"; ` +
	`echo "workspace=$(ls -A /workspace | tr '\n' ' ')"; echo "tmp=$(ls -A /tmp | tr '\n' ' ')"; echo "agentenv=$(env | grep -c CHASER_AGENT_)"`

func probe(t *testing.T, s *Server, key, id string) map[string]string {
	t.Helper()
	res, err := s.Client(key).Exec(t.Context(), id, api.ExecRequest{Command: poolProbe})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("probe in %s: %+v %v", id, res, err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
		k, v, _ := strings.Cut(l, "=")
		out[k] = strings.TrimSpace(v)
	}
	return out
}

// TestPool drives the warm pool of a real server: creates are served from
// it with the session's own identity, the tier's limits and a clean file
// system; it refills; a claim whose sandbox died falls back to a fresh
// create; a SIGKILL and restart release the unclaimed sandboxes and find
// the claimed one again; a graceful stop drains it.
func TestPool(t *testing.T) {
	s := newServer(t, "--pool-size", "2", "--health-interval", "1s")
	// Two per tier: free and paid have different default resources.
	s.waitPool(t, 4)
	type owned struct{ key, id string }
	var claimed []owned
	for _, tc := range []struct {
		tier      string
		res       sandbox.Resources
		hitsAfter float64
	}{
		{api.TierFree, sandbox.DefaultTiers[api.TierFree].Defaults, 1},
		{api.TierPaid, sandbox.DefaultTiers[api.TierPaid].Defaults, 2},
	} {
		t.Run(tc.tier, func(t *testing.T) {
			key := s.account(t, tc.tier)
			sess, err := s.Client(key).CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
			if err != nil {
				t.Fatal(err)
			}
			claimed = append(claimed, owned{key, sess.ID})
			if got := s.metric(t, "chaser_pool_hits_total"); got != tc.hitsAfter {
				t.Fatalf("pool hits = %v, want %v: the session did not come from the pool", got, tc.hitsAfter)
			}
			got := probe(t, s, key, sess.ID)
			want := map[string]string{
				"id": sess.ID, "host": sandbox.PoolHostname, "env": sandbox.PoolHostname, "ws": "",
				"marker": "1:host:runc", "uid": "0",
				"workspace": "", "tmp": "", "agentenv": "0",
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			wantLimits := fmt.Sprintf("%d %d 100000 %d", tc.res.MemoryMB<<20, tc.res.MilliCPUs*100, tc.res.Pids)
			if got := s.cgroupLimits(t, key, sess.ID); got != wantLimits {
				t.Errorf("cgroup limits (memory, cpu quota, period, pids) = %s, want the tier's %s", got, wantLimits)
			}
			if sess.Resources == nil || sess.Resources.MemoryMB != tc.res.MemoryMB {
				t.Errorf("session resources = %+v, want the tier's defaults", sess.Resources)
			}
			// The pool makes a new one for the one taken.
			s.waitPool(t, 4)
		})
	}
	if t.Failed() {
		return
	}

	t.Run("ClaimFailureFallsBack", func(t *testing.T) {
		// Kill every pooled sandbox's agent (its init: the sandbox dies).
		killed := s.idlePooled(t)
		for _, id := range killed {
			if out, err := exec.Command("runc", "--root", filepath.Join(s.DataDir, "runc"), "kill", id, "KILL").CombinedOutput(); err != nil {
				t.Fatalf("runc kill %s: %v %s", id, err, out)
			}
		}
		key := s.account(t, api.TierFree)
		code, body := s.do(t, key, "POST", "/v1/sessions", `{"type":"sandbox","ephemeral":true}`)
		if code != 201 {
			t.Fatalf("create after the pooled sandboxes died: %d %s", code, body)
		}
		var sess api.Session
		decodeJSON(t, body, &sess)
		claimed = append(claimed, owned{key, sess.ID})
		if got := s.metric(t, `chaser_pool_misses_total{reason="claim_failed"}`); got < 1 {
			t.Fatalf("claim failures = %v, want at least 1", got)
		}
		got := probe(t, s, key, sess.ID)
		if got["id"] != sess.ID || got["host"] != sess.ID {
			t.Fatalf("fresh sandbox after a failed claim: %v", got)
		}
		// The health check replaces the dead ones.
		deadline := time.Now().Add(30 * time.Second)
		for {
			left := slices.DeleteFunc(s.pooledIDs(t), func(id string) bool { return !slices.Contains(killed, id) })
			if len(left) == 0 && s.metric(t, "chaser_pool_sandboxes") == 4 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("dead pooled sandboxes not replaced within 30s: %v", left)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("CrashReleasesUnclaimed", func(t *testing.T) {
		// The dead ones are discarded as they are claimed, or left for
		// recovery: either way none may survive the restart.
		pooled := s.idlePooled(t)
		if len(pooled) == 0 {
			t.Fatal("no pooled sandboxes before the crash")
		}
		s.kill()
		r := startServer(t, s.DataDir, "--pool-size", "1")
		defer r.stop()
		for _, id := range pooled {
			if left := r.leaks(t, id); len(left) > 0 {
				t.Errorf("pooled sandbox %s not released at recovery: %v", id, left)
			}
		}
		// Claimed sessions are found again through their sandbox id.
		ids := []string{}
		for _, c := range claimed {
			recoveredExec(t, r, c.key, c.id)
			ids = append(ids, c.id)
		}
		r.waitPool(t, 2)
		pooled = r.idlePooled(t)
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		for _, id := range append(pooled, ids...) {
			if left := r.leaks(t, id); len(left) > 0 {
				t.Errorf("sandbox %s left after a graceful stop: %v", id, left)
			}
		}
		if dirs := r.pooledIDs(t); len(dirs) > 0 {
			t.Errorf("pool not drained: %v", dirs)
		}
	})
}

// recoveredExec checks that a claimed session still runs commands after
// a restart: the service reaches it by its sandbox id.
func recoveredExec(t *testing.T, s *Server, key, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := s.Client(key).Exec(ctx, id, api.ExecRequest{Command: "echo $CHASER_SESSION_ID"})
	if err != nil || strings.TrimSpace(res.Stdout) != id {
		t.Fatalf("exec in recovered session %s: %+v %v", id, res, err)
	}
}

// TestPoolEgress: under --egress internet the warm pool's sandboxes are
// made with egress, so a create of the default mode is served from the
// pool with a network of its own (eth0), and a create asking for another
// mode bypasses the pool (reason unpooled) and gets loopback only.
func TestPoolEgress(t *testing.T) {
	s := newServer(t, "--egress", "internet", "--pool-size", "1")
	s.waitPool(t, 2) // one per tier
	key := s.account(t, api.TierFree)
	sess := internetSandbox(t, s, key)
	if got := s.metric(t, "chaser_pool_hits_total"); got != 1 {
		t.Fatalf("pool hits = %v, want 1: the internet session did not come from the pool\n%s", got, s.Log())
	}
	if out := run(t, s, key, sess.ID, "hostname; ls /sys/class/net | tr '\\n' ' '"); !strings.Contains(out, sandbox.PoolHostname) || !strings.Contains(out, "eth0") {
		t.Errorf("pooled internet sandbox: hostname and interfaces %q, want %s and eth0", out, sandbox.PoolHostname)
	}
	status, b := s.do(t, key, "POST", "/v1/sessions", `{"ephemeral":true,"network":{"mode":"none"}}`)
	var n api.Session
	decodeJSON(t, b, &n)
	defer s.Client(key).DeleteSession(context.Background(), n.ID)
	if status != 201 || n.Network == nil || n.Network.Mode != api.NetworkNone {
		t.Fatalf("create with network none: %d %s", status, b)
	}
	if got := s.metric(t, `chaser_pool_misses_total{reason="unpooled"}`); got != 1 {
		t.Errorf("unpooled misses = %v, want 1", got)
	}
	if out := run(t, s, key, n.ID, "ls /sys/class/net | tr '\\n' ' '"); out != "lo" {
		t.Errorf("mode none sandbox has interfaces %q, want lo only", out)
	}
}

// TestPoolIsolation claims warm sandboxes under each runtime with egress
// (--egress internet) and a disk quota (--disk-size 96MiB), and checks
// from inside that a pooled sandbox carries the settings its session was
// created with: its own network (eth0), the disk quota (ENOSPC past it), the
// tier's memory limit and the session's identity, under a sandbox id that
// is not the session's; and that the next session, claimed after the first
// one wrote files and left a process running, finds nothing of it.
func TestPoolIsolation(t *testing.T) {
	for _, rt := range []string{"runc", "runsc"} {
		t.Run(rt, func(t *testing.T) {
			if rt == "runsc" {
				if _, err := exec.LookPath("runsc"); err != nil {
					if _, err := os.Stat(filepath.Join(runscCache, "runsc")); err != nil {
						unavailable(t, "runsc: not on PATH nor in %s (the README's setup installs it)", runscCache)
					}
				}
			}
			poolIsolation(t, rt)
		})
	}
}

func poolIsolation(t *testing.T, rt string) {
	s := newServer(t, "--runtime", rt, "--egress", "internet", "--pool-size", "1", "--disk-size", "96MiB")
	s.waitPool(t, 2) // one per tier
	key := s.account(t, api.TierFree)
	c := s.Client(key)
	states := filepath.Join(s.DataDir, map[string]string{"runc": "sandboxes", "runsc": "sandboxes-runsc"}[rt])
	// sandboxOf is the runtime id the server bound session id to.
	sandboxOf := func(id string) string {
		t.Helper()
		for _, l := range strings.Split(s.Log(), "\n") {
			if strings.Contains(l, `msg="session created"`) && strings.Contains(l, "session_id="+id+" ") {
				if _, sb, ok := strings.Cut(l, "sandbox="); ok {
					return strings.Fields(sb)[0]
				}
			}
		}
		t.Fatalf("no pooled sandbox logged for session %s\n%s", id, s.Log())
		return ""
	}
	var prev, prevSandbox string
	for i := range 2 {
		sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.metric(t, "chaser_pool_hits_total"); got != float64(i+1) {
			t.Fatalf("pool hits = %v, want %d: session %d did not come from the pool", got, i+1, i+1)
		}
		if sess.Runtime != rt || sess.Network == nil || sess.Network.Mode != api.NetworkInternet || sess.Resources == nil || sess.Resources.DiskMB != 96 {
			t.Fatalf("session: runtime %q network %+v resources %+v, want %s, internet, 96 MiB disk", sess.Runtime, sess.Network, sess.Resources, rt)
		}
		sb := sandboxOf(sess.ID)
		if !strings.HasPrefix(sb, "p-") || sb == sess.ID || sb == prevSandbox {
			t.Fatalf("session %s runs on sandbox %q (previous %q): want a pool id of its own", sess.ID, sb, prevSandbox)
		}
		if _, err := os.Stat(filepath.Join(states, sb)); err != nil {
			t.Fatalf("the pooled sandbox %s is not the runtime's: %v", sb, err)
		}
		if _, err := os.Stat(filepath.Join(states, sess.ID)); err == nil {
			t.Fatalf("a sandbox named after session %s exists beside the pooled one", sess.ID)
		}
		got := probe(t, s, key, sess.ID)
		want := map[string]string{"id": sess.ID, "host": sandbox.PoolHostname, "ws": "", "marker": "1:host:" + rt, "workspace": "", "tmp": "", "agentenv": "0"}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("session %d: %s = %q, want %q", i+1, k, got[k], v)
			}
		}
		// Nothing of the previous owner: no process of it either.
		if out := run(t, s, key, sess.ID, "pgrep -c -x sleep || true"); out != "0" {
			t.Errorf("session %d sees %s processes of the previous session", i+1, out)
		}
		if out := run(t, s, key, sess.ID, "grep -c eth0: /proc/net/dev"); out != "1" {
			t.Errorf("session %d: no eth0 in /proc/net/dev (%q): the pooled sandbox has no network of its own", i+1, out)
		}
		// Memory: runc's cgroup file; gVisor sizes its kernel's memory to
		// the limit.
		if rt == "runc" {
			res := sandbox.DefaultTiers[api.TierFree].Defaults
			if got, want := s.cgroupLimits(t, key, sess.ID), fmt.Sprintf("%d %d 100000 %d", res.MemoryMB<<20, res.MilliCPUs*100, res.Pids); got != want {
				t.Errorf("cgroup limits %s, want %s", got, want)
			}
		} else if out := run(t, s, key, sess.ID, "grep MemTotal /proc/meminfo | tr -s ' '"); out != "MemTotal: 524288 kB" {
			t.Errorf("runsc memory %q, want the free tier's 512 MiB", out)
		}
		res, err := c.Exec(t.Context(), sess.ID, api.ExecRequest{Command: "df -m /workspace | awk 'NR==2{print $2}'; dd if=/dev/zero of=/workspace/big bs=1M count=200; echo rc=$?"})
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Fields(res.Stdout)
		if len(lines) < 2 || !strings.Contains(res.Stderr, "No space left") || lines[len(lines)-1] == "rc=0" {
			t.Errorf("session %d: writing 200 MiB under a 96 MiB quota: %q %q, want ENOSPC", i+1, res.Stdout, res.Stderr)
		} else if mb, _ := strconv.Atoi(lines[0]); mb < 64 || mb > 96 {
			t.Errorf("session %d: /workspace is %d MiB, want about 96", i+1, mb)
		}
		// Leave things behind for the next owner to not find.
		run(t, s, key, sess.ID, "rm -f /workspace/big; echo secret > /workspace/secret; echo secret > /tmp/secret; nohup sleep 600 >/dev/null 2>&1 &")
		if prev != "" {
			if left := s.leaks(t, prevSandbox); len(left) > 0 {
				t.Errorf("sandbox %s of the deleted session left: %v", prevSandbox, left)
			}
		}
		if err := c.DeleteSession(t.Context(), sess.ID); err != nil {
			t.Fatal(err)
		}
		prev, prevSandbox = sess.ID, sb
		s.waitPool(t, 2)
	}
	if left := s.leaks(t, prevSandbox); len(left) > 0 {
		t.Errorf("sandbox %s of the deleted session left: %v", prevSandbox, left)
	}
}

// TestPoolRefillAfterFirstCommand claims a warm sandbox and checks the
// refill does not start beside the new session's first command (making a
// sandbox is tens of milliseconds of runc's CPU: on a small host it came
// out of that command, and pooled create + first command took 14 ms
// instead of 6), yet does start soon after. The refill waits 100 ms from
// the claim: a create + first command slower than 80 ms (a host too busy)
// proves nothing and is tried again.
func TestPoolRefillAfterFirstCommand(t *testing.T) {
	s := newServer(t, "--pool-size", "1", "--no-disk-quota")
	key := s.account(t, api.TierFree)
	c := s.Client(key)
	for try := 1; ; try++ {
		s.waitPool(t, 2) // one per tier
		before := s.pooledIDs(t)
		begin := time.Now()
		sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
		if err != nil {
			t.Fatal(err)
		}
		if res, err := c.Exec(t.Context(), sess.ID, api.ExecRequest{Command: "true"}); err != nil || res.ExitCode != 0 {
			t.Fatalf("first command: %+v %v", res, err)
		}
		took := time.Since(begin)
		now := s.pooledIDs(t)
		if got := s.metric(t, "chaser_pool_hits_total"); got != float64(try) {
			t.Fatalf("pool hits = %v, want %d", got, try)
		}
		if took < 80*time.Millisecond {
			if len(now) != len(before) {
				t.Fatalf("a refill started during the claim and first command (%v): sandboxes %v, were %v", took, now, before)
			}
			s.waitPool(t, 2)
			return
		}
		if try == 5 {
			t.Skipf("create + first command took over 80 ms five times (last %v): this host is too busy to tell", took)
		}
		if err := c.DeleteSession(t.Context(), sess.ID); err != nil {
			t.Fatal(err)
		}
	}
}
