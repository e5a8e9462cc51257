package integration

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/network"
)

// forbidden is a network namespace the test makes on this machine to play
// destinations sandboxes must not reach (a 10.x address, a link-local one
// other than 169.254.169.254) and one the operator allows, each with an
// HTTP listener, reached from the host through /32 routes to a veth of the
// test's own. Nothing leaves this machine.
type forbidden struct {
	ns                     string
	private, link, allowed string // addresses
	port                   int
}

func newForbidden(t *testing.T) *forbidden {
	t.Helper()
	n := rand.IntN(200) + 20
	f := &forbidden{
		ns:      fmt.Sprintf("chtest%d", n),
		private: fmt.Sprintf("10.213.%d.5", n), link: fmt.Sprintf("169.254.213.%d", n),
		allowed: fmt.Sprintf("10.213.%d.6", n), port: 18000 + n,
	}
	host, peer := fmt.Sprintf("cht%dh", n), fmt.Sprintf("cht%dn", n)
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	sh("netns", "add", f.ns)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", host).Run() // takes the /32 routes with it
		exec.Command("ip", "netns", "del", f.ns).Run()
	})
	sh("link", "add", host, "type", "veth", "peer", "name", peer)
	sh("link", "set", peer, "netns", f.ns)
	sh("link", "set", host, "up")
	for _, a := range []string{f.private, f.link, f.allowed} {
		sh("-n", f.ns, "addr", "add", a+"/32", "dev", peer)
		sh("route", "add", a+"/32", "dev", host)
	}
	sh("-n", f.ns, "link", "set", "lo", "up")
	sh("-n", f.ns, "link", "set", peer, "up")
	sh("-n", f.ns, "route", "add", "default", "dev", peer)
	l := listenIn(t, "/run/netns/"+f.ns, fmt.Sprintf("0.0.0.0:%d", f.port))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" { // 256 MiB, for throughput
			buf := make([]byte, 1<<20)
			for range 256 {
				if _, err := w.Write(buf); err != nil {
					return
				}
			}
			return
		}
		io.WriteString(w, "reached-"+r.Host)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return f
}

// listenIn listens on addr inside the network namespace at nsPath: the
// socket is made on a thread that entered it.
func listenIn(t *testing.T, nsPath, addr string) net.Listener {
	t.Helper()
	type res struct {
		l   net.Listener
		err error
	}
	ch := make(chan res, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread ends with us
		fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- res{nil, err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- res{nil, err}
			return
		}
		l, err := net.Listen("tcp4", addr)
		ch <- res{l, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listen in %s: %v", nsPath, r.err)
	}
	return r.l
}

// reach fetches url from inside session id with curl; it reports whether
// the listener answered.
func reach(t *testing.T, s *Server, key, id, url string) (bool, string) {
	t.Helper()
	res, err := s.Client(key).Exec(t.Context(), id, api.ExecRequest{Command: "curl -sS -m 3 " + url})
	if err != nil {
		t.Fatalf("exec curl %s: %v", url, err)
	}
	return res.ExitCode == 0, strings.TrimSpace(res.Stdout + res.Stderr)
}

// hostReach fetches url from the host.
func hostReach(url string) bool {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.HasPrefix(string(b), "reached-")
}

// netState counts what a server's network holds on the host: its veths,
// pinned namespaces, per-sandbox chains and the host addresses of its
// subnet.
func netState(t *testing.T, dataDir string) (veths, namespaces, chains, addrs int) {
	t.Helper()
	key := network.Key(dataDir)
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, network.IfPrefix(key)) {
			veths++
			a, _ := i.Addrs()
			addrs += len(a)
		}
	}
	es, _ := os.ReadDir(filepath.Join(dataDir, "netns"))
	namespaces = len(es)
	out, _ := exec.Command("nft", "list", "table", "inet", network.TableName(key)).CombinedOutput()
	chains = strings.Count(string(out), "chain sb-")
	return
}

func egressServer(t *testing.T, f *forbidden) (*Server, string) {
	cfg := writeConfig(t, fmt.Sprintf(`
tiers:
  free:
    max_sandboxes: 10
    allow: [%s/32]
`, f.allowed))
	s := newServer(t, "--egress", "internet", "--config", cfg)
	return s, s.account(t, api.TierFree)
}

func internetSandbox(t *testing.T, s *Server, key string) api.Session {
	t.Helper()
	c := s.Client(key)
	sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteSession(context.Background(), sess.ID) })
	if sess.Network == nil || sess.Network.Mode != api.NetworkInternet {
		t.Fatalf("session network = %+v, want internet (the server's --egress)", sess.Network)
	}
	return sess
}

// TestEgressPolicy: a sandbox with egress reaches what the operator
// allows and the internet (npm), and never the host, the gateway (but for
// DNS), another sandbox, a private address or a link-local one — all put
// on this machine by the test, which the host itself reaches.
func TestEgressPolicy(t *testing.T) {
	f := newForbidden(t)
	s, key := egressServer(t, f)
	a := internetSandbox(t, s, key)
	b := internetSandbox(t, s, key)

	url := func(addr string, port int) string { return fmt.Sprintf("http://%s:%d/", addr, port) }
	t.Run("private and link-local: the host reaches them, the sandbox does not", func(t *testing.T) {
		for _, addr := range []string{f.private, f.link} {
			if !hostReach(url(addr, f.port)) {
				t.Fatalf("the host does not reach the test listener on %s: the test is broken", addr)
			}
			if ok, out := reach(t, s, key, a.ID, url(addr, f.port)); ok {
				t.Errorf("the sandbox reached %s: %s", addr, out)
			}
		}
	})
	t.Run("an address the operator allows is reachable", func(t *testing.T) {
		if ok, out := reach(t, s, key, a.ID, url(f.allowed, f.port)); !ok || !strings.Contains(out, "reached-") {
			t.Errorf("the sandbox did not reach the allowed %s: %s", f.allowed, out)
		}
	})
	t.Run("the host's addresses, the API port, the gateway", func(t *testing.T) {
		hl, err := net.Listen("tcp4", "0.0.0.0:0") // a host service on every address
		if err != nil {
			t.Fatal(err)
		}
		defer hl.Close()
		go http.Serve(hl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "reached-host") }))
		hostPort := hl.Addr().(*net.TCPAddr).Port
		_, apiPort, _ := net.SplitHostPort(s.Addr)
		gw := run(t, s, key, a.ID, "ip route | awk '/^default/{print $3}'")
		addrs, _ := net.InterfaceAddrs()
		targets := []string{gw}
		for _, x := range addrs {
			if ipn, ok := x.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
				targets = append(targets, ipn.IP.String())
			}
		}
		checked := 0
		for _, addr := range targets {
			if addr != gw && !hostReach(url(addr, hostPort)) {
				// Other servers on a shared machine (tests run in
				// parallel) add and filter addresses of their own
				// sandboxes; one the host cannot reach itself proves
				// nothing either way.
				t.Logf("skipped %s: the host does not reach its own listener there", addr)
				continue
			}
			checked++
			for _, port := range []string{fmt.Sprint(hostPort), apiPort} {
				if ok, out := reach(t, s, key, a.ID, "http://"+net.JoinHostPort(addr, port)+"/"); ok {
					t.Errorf("the sandbox reached the host at %s:%s: %s", addr, port, out)
				}
			}
		}
		if checked < 2 { // the gateway and at least the host's own address
			t.Fatalf("only %d of the host's addresses %v were checkable", checked, targets)
		}
		if out := run(t, s, key, a.ID, "getent hosts localhost >/dev/null; grep nameserver /etc/resolv.conf"); out != "nameserver "+gw {
			t.Errorf("resolv.conf names %q, want the gateway %s", out, gw)
		}
	})
	t.Run("another sandbox's address", func(t *testing.T) {
		run(t, s, key, b.ID, "nohup python3 -m http.server 8000 --bind 0.0.0.0 >/dev/null 2>&1 &")
		addrB := run(t, s, key, b.ID, "ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1")
		deadline := time.Now().Add(10 * time.Second)
		for {
			if ok, _ := reach(t, s, key, b.ID, url(addrB, 8000)); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sandbox b's own listener on %s:8000 never answered it", addrB)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if ok, out := reach(t, s, key, a.ID, url(addrB, 8000)); ok {
			t.Errorf("sandbox a reached sandbox b at %s: %s", addrB, out)
		}
	})
	t.Run("the ruleset blocks 169.254.0.0/16 (metadata included)", func(t *testing.T) {
		out, err := exec.Command("nft", "list", "table", "inet", network.TableName(network.Key(s.DataDir))).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "ip daddr 169.254.0.0/16 drop") {
			t.Errorf("the table lacks the link-local drop (%v):\n%s", err, out)
		}
	})
	t.Run("DNS and a package registry through NAT", func(t *testing.T) {
		if _, err := net.LookupHost("registry.npmjs.org"); err != nil {
			t.Skipf("the host itself cannot resolve registry.npmjs.org (%v): npm's registry is not reachable from here", err)
		}
		run(t, s, key, a.ID, "getent hosts registry.npmjs.org")
		st, err := s.Client(key).SelfTest(t.Context(), a.ID)
		if err != nil || st.Network == nil || st.Network.Mode != api.NetworkInternet || st.Network.DNS != "ok" {
			t.Errorf("self-test network = %+v, %v", st.Network, err)
		}
		v := run(t, s, key, a.ID, "npm view left-pad version 2>&1")
		if !strings.Contains(v, ".") {
			t.Errorf("npm view left-pad version = %q", v)
		}
	})
	t.Run("session and self-test show the network", func(t *testing.T) {
		got, err := s.Client(key).GetSession(t.Context(), a.ID)
		if err != nil || got.Network == nil || got.Network.Mode != api.NetworkInternet {
			t.Errorf("GET session network = %+v, %v", got.Network, err)
		}

	})
}

// TestEgressRequests: what a request may ask of the network.
func TestEgressRequests(t *testing.T) {
	cfg := writeConfig(t, `
tiers:
  free: {egress: none}
  paid: {egress: internet, allow: [10.99.0.0/16], max_sandboxes: 10}
network:
  subnet: 100.127.252.0/28
`)
	s := newServer(t, "--config", cfg) // the test servers' --egress none stays the default
	free, paid := s.account(t, api.TierFree), s.account(t, api.TierPaid)
	for _, c := range []struct {
		name, key, body string
		status          int
		code            string
	}{
		{"internet on a tier without egress", free, `{"network":{"mode":"internet"}}`, 403, "permission_denied"},
		{"malformed CIDR", paid, `{"network":{"mode":"internet","allow":["10.99.0.0/33"]}}`, 400, "invalid_argument"},
		{"allow beyond the tier's", paid, `{"network":{"mode":"internet","allow":["10.0.0.0/8"]}}`, 403, "permission_denied"},
		{"allow link-local", paid, `{"network":{"mode":"internet","allow":["169.254.0.0/16"]}}`, 403, "permission_denied"},
		{"unknown mode", paid, `{"network":{"mode":"lan"}}`, 400, "invalid_argument"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, b := s.do(t, c.key, "POST", "/v1/sessions", c.body)
			expectError(t, status, b, c.status, c.code)
		})
	}
	t.Run("a tier's mode when none is asked; none asked on an internet tier", func(t *testing.T) {
		var sess api.Session
		status, b := s.do(t, free, "POST", "/v1/sessions", `{"ephemeral":true}`)
		decodeJSON(t, b, &sess)
		defer s.Client(free).DeleteSession(context.Background(), sess.ID)
		if status != 201 && status != 200 || sess.Network == nil || sess.Network.Mode != api.NetworkNone {
			t.Errorf("free session: %d network %+v", status, sess.Network)
		}
		status, b = s.do(t, paid, "POST", "/v1/sessions", `{"network":{"mode":"none"}}`)
		var n api.Session
		decodeJSON(t, b, &n)
		defer s.Client(paid).DeleteSession(context.Background(), n.ID)
		if n.Network == nil || n.Network.Mode != api.NetworkNone {
			t.Errorf("paid session asking none: %d %s", status, b)
		}
		if out := run(t, s, paid, n.ID, "ls /sys/class/net | tr '\\n' ' '"); out != "lo" {
			t.Errorf("mode none sandbox has interfaces %q", out)
		}
	})
	t.Run("pool exhausted: 503, nothing half-made", func(t *testing.T) {
		// A /28 holds 3 usable /30 slots.
		var ids []string
		for range 3 {
			status, b := s.do(t, paid, "POST", "/v1/sessions", `{"network":{"mode":"internet","allow":["10.99.1.0/24"]}}`)
			var x api.Session
			decodeJSON(t, b, &x)
			if status >= 300 {
				t.Fatalf("create %d: %d %s", len(ids), status, b)
			}
			ids = append(ids, x.ID)
		}
		defer func() {
			for _, id := range ids {
				s.Client(paid).DeleteSession(context.Background(), id)
			}
		}()
		status, b := s.do(t, paid, "POST", "/v1/sessions", `{"network":{"mode":"internet"}}`)
		expectError(t, status, b, 503, "unavailable")
		if v, n, c, _ := netState(t, s.DataDir); v != 3 || n != 3 || c != 3 {
			t.Errorf("after the refused create: %d veths, %d namespaces, %d chains, want 3 each", v, n, c)
		}
	})
}

// TestEgressLeaks: 40 create/delete cycles, then a SIGKILL and a restart,
// leave no veth, namespace, rule or address behind; it also measures
// create time with and without egress and a download through NAT.
func TestEgressLeaks(t *testing.T) {
	f := newForbidden(t)
	s, key := egressServer(t, f)
	c := s.Client(key)
	var with, without time.Duration
	const cycles = 40
	for i := range cycles {
		for _, mode := range []string{api.NetworkInternet, api.NetworkNone} {
			start := time.Now()
			sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true, Network: &api.Network{Mode: mode}})
			if err != nil {
				t.Fatalf("cycle %d: %v", i, err)
			}
			if mode == api.NetworkInternet {
				with += time.Since(start)
			} else {
				without += time.Since(start)
			}
			if err := c.DeleteSession(t.Context(), sess.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("create, mean of %d: with egress %v, without %v", cycles, with/cycles, without/cycles)
	if v, n, ch, a := netState(t, s.DataDir); v+n+ch+a != 0 {
		t.Errorf("after %d cycles: %d veths, %d namespaces, %d chains, %d addresses left", cycles, v, n, ch, a)
	}

	a := internetSandbox(t, s, key)
	res, err := c.Exec(t.Context(), a.ID, api.ExecRequest{Command: fmt.Sprintf("curl -sS -m 60 -o /dev/null -w '%%{speed_download}' http://%s:%d/big", f.allowed, f.port)})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("download through NAT: %v %+v", err, res)
	}
	var bps float64
	fmt.Sscan(res.Stdout, &bps)
	t.Logf("download of 256 MiB from a listener through NAT: %.0f MiB/s", bps/(1<<20))

	dead := internetSandbox(t, s, key)
	s.kill()
	pid, _ := os.ReadFile(filepath.Join(s.stateDir(dead.ID), "pid"))
	var p int
	fmt.Sscan(string(pid), &p)
	if p > 0 {
		syscall.Kill(p, syscall.SIGKILL) // died while no server watched
	}
	s2 := startServer(t, s.DataDir, "--egress", "internet", "--config", strings.TrimSpace(configArg(s)))
	defer s2.stop()
	if ok, out := reach(t, s2, key, a.ID, fmt.Sprintf("http://%s:%d/", f.allowed, f.port)); !ok {
		t.Errorf("the recovered sandbox lost its egress: %s", out)
	}
	if ok, out := reach(t, s2, key, a.ID, fmt.Sprintf("http://%s:%d/", f.private, f.port)); ok {
		t.Errorf("the recovered sandbox reaches a private address: %s", out)
	}
	if v, n, ch, ad := netState(t, s.DataDir); v != 1 || n != 1 || ch != 1 || ad != 1 {
		t.Errorf("after SIGKILL and restart: %d veths, %d namespaces, %d chains, %d addresses; want the recovered sandbox's only (1 each)", v, n, ch, ad)
	}
	if err := s2.Client(key).DeleteSession(t.Context(), a.ID); err != nil {
		t.Fatal(err)
	}
	if v, n, ch, ad := netState(t, s.DataDir); v+n+ch+ad != 0 {
		t.Errorf("after deleting the recovered sandbox: %d veths, %d namespaces, %d chains, %d addresses left", v, n, ch, ad)
	}
}

// configArg returns the --config argument s was started with.
func configArg(s *Server) string {
	args := s.Cmd.Args
	for i, a := range args[:len(args)-1] {
		if a == "--config" {
			return args[i+1]
		}
	}
	return ""
}

// TestEgressE2B: E2B's allow_internet_access is network mode internet
// where the tier allows egress, none where it forbids it (made, not
// refused: the SDK asks for it by default) and none when false.
func TestEgressE2B(t *testing.T) {
	cfg := writeConfig(t, `
tiers:
  free: {egress: none, max_sandboxes: 10}
  paid: {egress: internet, max_sandboxes: 10}
`)
	s := newServer(t, "--egress", "internet", "--config", cfg)
	free, paid := s.account(t, api.TierFree), s.account(t, api.TierPaid)
	for _, tc := range []struct {
		what, key, body, want string
	}{
		{"true on a tier with egress", paid, `{"templateID":"base","allow_internet_access":true}`, api.NetworkInternet},
		{"left out (E2B's default: true)", paid, `{"templateID":"base"}`, api.NetworkInternet},
		{"false", paid, `{"templateID":"base","allow_internet_access":false}`, api.NetworkNone},
		{"true on a tier without egress", free, `{"templateID":"base","allow_internet_access":true}`, api.NetworkNone},
	} {
		t.Run(tc.what, func(t *testing.T) {
			status, b := s.do(t, tc.key, "POST", "/sandboxes", tc.body)
			if status != http.StatusCreated {
				t.Fatalf("POST /sandboxes: %d %s", status, b)
			}
			var made struct {
				SandboxID string `json:"sandboxID"`
			}
			decodeJSON(t, b, &made)
			t.Cleanup(func() { s.Client(tc.key).DeleteSession(context.Background(), made.SandboxID) })
			sess, err := s.Client(tc.key).GetSession(t.Context(), made.SandboxID)
			if err != nil {
				t.Fatal(err)
			}
			if sess.Network == nil || sess.Network.Mode != tc.want {
				t.Fatalf("network = %+v, want mode %s", sess.Network, tc.want)
			}
		})
	}
}

// TestEgressUserns: runc cannot mount /sys in a remapped sandbox joining a
// network namespace the server made (owned by the host's user namespace),
// so under --userns-remap sandboxes have mode none even with --egress
// internet, internet asked is 403, and a tier naming egress internet stops
// the server before it starts.
func TestEgressUserns(t *testing.T) {
	s := newServer(t, "--runtime", "runc", "--userns-remap", usernsRange, "--egress", "internet")
	key := s.account(t, api.TierPaid)
	sess, err := s.Client(key).CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Client(key).DeleteSession(context.Background(), sess.ID) })
	if sess.Network == nil || sess.Network.Mode != api.NetworkNone {
		t.Fatalf("remapped session network = %+v, want none", sess.Network)
	}
	if uid := agentHostUID(t, s, sess.ID); uid < usernsBase || uid >= usernsBase+65536 {
		t.Fatalf("the agent runs as host uid %d, not in the range %s", uid, usernsRange)
	}
	status, b := s.do(t, key, "POST", "/v1/sessions", `{"network":{"mode":"internet"}}`)
	expectError(t, status, b, 403, "permission_denied")

	cfg := writeConfig(t, "tiers:\n  paid:\n    egress: internet\n")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "serve", "--addr", "127.0.0.1:0", "--data-dir", dir, "--runtime", "runc",
		"--userns-remap", usernsRange, "--config", cfg).CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("server started (or hung) with a tier of egress internet under --userns-remap: %v\n%s", err, out)
	}
	if want := "tier paid: egress internet with --userns-remap"; !strings.Contains(string(out), want) {
		t.Fatalf("output does not say %q:\n%s", want, out)
	}
}
