package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/image/imagetest"
	"github.com/chaserhq/chaser/internal/runtime/vm"
)

// microvmKernel is the guest kernel directory: MICROVM_CACHE, the
// variable scripts/microvm.sh builds into, else its default.
func microvmKernel(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MICROVM_CACHE")
	if dir == "" {
		dir = vm.DefaultKernelDir
	}
	if _, err := os.Stat(filepath.Join(dir, "version")); err != nil {
		t.Fatalf("no guest kernel: build it with %s: %v", vm.KernelSetup, err)
	}
	return dir
}

// wget fetches url from inside session id with busybox wget (under
// timeout: Debian's busybox 1.35 wget crashes with -T); it reports whether
// the fetch succeeded, with what it printed.
func wget(t *testing.T, s *Server, key, id, url string) (bool, string) {
	t.Helper()
	res, err := s.Client(key).Exec(t.Context(), id, api.ExecRequest{Command: "timeout 3 wget -q -O - " + url})
	if err != nil {
		t.Fatalf("exec wget %s: %v", url, err)
	}
	return res.ExitCode == 0, strings.TrimSpace(res.Stdout + res.Stderr)
}

// TestMicroVMNetwork: a microVM of network mode internet (a tap bridged
// to its sandbox's veth, in its network namespace) reaches what the
// operator allows, a package archive on the internet and DNS through its
// gateway, and never the host, the gateway (but for DNS), another
// sandbox, a private or a link-local address, under the same nftables
// rules as containers; a microVM of mode none has no NIC. The network
// survives a SIGKILL of the server; deleting leaves nothing. It logs the
// create time with and without a NIC and a download's speed against runc.
func TestMicroVMNetwork(t *testing.T) {
	kernel := microvmKernel(t)
	f := newForbidden(t)
	reg := imagetest.StartRegistry(t)
	ref := reg.Push(t, "test/busybox:vmnet", imagetest.Image(t, v1.Config{Env: []string{"PATH=/bin"}}, imagetest.BusyboxLayer(t)))
	cfg := writeConfig(t, fmt.Sprintf(`
tiers:
  free:
    max_sandboxes: 10
    allow: [%s/32]
  paid:
    max_sandboxes: 10
    allow: [%s/32]
`, f.allowed, f.allowed))
	args := []string{"--runtime", "microvm", "--microvm-kernel", kernel, "--tier-runtime", "paid=runc",
		"--egress", "internet", "--config", cfg, "--default-image", ref, "--allow-registry", reg.Host}
	s := newServer(t, args...)
	key, runcKey := s.account(t, api.TierFree), s.account(t, api.TierPaid)
	c := s.Client(key)

	start := time.Now()
	a, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true, Network: &api.Network{Mode: api.NetworkInternet}})
	if err != nil {
		t.Fatalf("create a microVM with egress: %v\n%s", err, s.Log())
	}
	withNIC := time.Since(start)
	defer c.DeleteSession(context.Background(), a.ID)
	if a.Runtime != "microvm" || a.Network == nil || a.Network.Mode != api.NetworkInternet {
		t.Fatalf("session runtime %q network %+v; want microvm, internet", a.Runtime, a.Network)
	}
	start = time.Now()
	n, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true, Network: &api.Network{Mode: api.NetworkNone}})
	if err != nil {
		t.Fatalf("create a microVM without network: %v", err)
	}
	without := time.Since(start)
	defer c.DeleteSession(context.Background(), n.ID)
	t.Logf("microVM create (TCG, boot to agent): with a NIC %v, without %v", withNIC.Round(time.Millisecond), without.Round(time.Millisecond))
	r := s.sandbox(t, runcKey) // a runc sandbox of mode internet: another sandbox

	url := func(addr string, port int) string { return fmt.Sprintf("http://%s:%d/", addr, port) }
	t.Run("internet reaches an allowed address; none has no NIC", func(t *testing.T) {
		if ok, out := wget(t, s, key, a.ID, url(f.allowed, f.port)); !ok || !strings.Contains(out, "reached-") {
			t.Errorf("the microVM did not reach the allowed %s: %s", f.allowed, out)
		}
		if out := run(t, s, key, a.ID, "cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6 2>/dev/null || echo 1"); out != "1" {
			t.Errorf("the microVM's eth0 has IPv6 (disable_ipv6 = %s): sandboxes get IPv4 only", out)
		}
		if out := run(t, s, key, n.ID, "ls /sys/class/net | tr '\\n' ' '"); out != "lo" {
			t.Errorf("a microVM of mode none has interfaces %q, want lo", out)
		}
		if ok, out := wget(t, s, key, n.ID, url(f.allowed, f.port)); ok {
			t.Errorf("a microVM of mode none reached %s: %s", f.allowed, out)
		}
		if out := run(t, s, key, n.ID, "grep -c nameserver /etc/resolv.conf || true"); out != "0" {
			t.Errorf("mode none resolv.conf names %s nameservers, want none", out)
		}
	})
	t.Run("private and link-local: the host reaches them, the microVM does not", func(t *testing.T) {
		for _, addr := range []string{f.private, f.link} {
			if !hostReach(url(addr, f.port)) {
				t.Fatalf("the host does not reach the test listener on %s: the test is broken", addr)
			}
			if ok, out := wget(t, s, key, a.ID, url(addr, f.port)); ok {
				t.Errorf("the microVM reached %s: %s", addr, out)
			}
		}
	})
	gw := run(t, s, key, a.ID, "ip route | awk '/^default/{print $3}'")
	t.Run("the host's addresses, the API port, the gateway", func(t *testing.T) {
		hl, err := net.Listen("tcp4", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		defer hl.Close()
		go http.Serve(hl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "reached-host") }))
		hostPort := hl.Addr().(*net.TCPAddr).Port
		_, apiPort, _ := net.SplitHostPort(s.Addr)
		targets := []string{gw, "10.0.2.2"} // 10.0.2.2: QEMU user networking's host, were it used
		addrs, _ := net.InterfaceAddrs()
		for _, x := range addrs {
			if ipn, ok := x.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
				targets = append(targets, ipn.IP.String())
			}
		}
		for _, addr := range targets[2:] {
			if !hostReach(url(addr, hostPort)) {
				t.Fatalf("the host does not reach its own listener on %s: the test is broken", addr)
			}
		}
		for _, addr := range targets {
			for _, port := range []string{fmt.Sprint(hostPort), apiPort} {
				if ok, out := wget(t, s, key, a.ID, "http://"+net.JoinHostPort(addr, port)+"/"); ok {
					t.Errorf("the microVM reached the host at %s:%s: %s", addr, port, out)
				}
			}
		}
		if out := run(t, s, key, a.ID, "grep nameserver /etc/resolv.conf"); out != "nameserver "+gw {
			t.Errorf("resolv.conf names %q, want the gateway %s", out, gw)
		}
	})
	t.Run("another sandbox's address", func(t *testing.T) {
		run(t, s, runcKey, r, "mkdir -p /tmp/www && echo reached-r > /tmp/www/index.html && httpd -p 8000 -h /tmp/www")
		addrR := run(t, s, runcKey, r, "ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1")
		if ok, out := wget(t, s, runcKey, r, url(addrR, 8000)); !ok {
			t.Fatalf("sandbox r's own listener on %s:8000 does not answer it: %s", addrR, out)
		}
		if ok, out := wget(t, s, key, a.ID, url(addrR, 8000)); ok {
			t.Errorf("the microVM reached sandbox r at %s: %s", addrR, out)
		}
		// And nothing reaches into the VM: its own listener answers it,
		// not sandbox r.
		run(t, s, key, a.ID, "mkdir -p /tmp/www && echo reached-a > /tmp/www/index.html && httpd -p 8000 -h /tmp/www")
		addrA := run(t, s, key, a.ID, "ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1")
		if ok, out := wget(t, s, key, a.ID, url(addrA, 8000)); !ok || !strings.Contains(out, "reached-a") {
			t.Fatalf("the microVM's own listener on %s:8000 does not answer it: %s", addrA, out)
		}
		if ok, out := wget(t, s, runcKey, r, url(addrA, 8000)); ok {
			t.Errorf("sandbox r reached into the microVM at %s: %s", addrA, out)
		}
	})
	t.Run("DNS through the gateway and a package archive on the internet", func(t *testing.T) {
		// The guest's clock is the host's (no RTC under TCG), as TLS and
		// apt need.
		var now int64
		fmt.Sscan(run(t, s, key, a.ID, "date +%s"), &now)
		if d := time.Since(time.Unix(now, 0)); d < -time.Minute || d > 10*time.Minute {
			t.Errorf("the guest's clock is %v off the host's", d)
		}
		if _, err := net.LookupHost("deb.debian.org"); err != nil {
			t.Skipf("the host itself cannot resolve deb.debian.org (%v)", err)
		}
		run(t, s, key, a.ID, "nslookup deb.debian.org")
		st, err := c.SelfTest(t.Context(), a.ID)
		if err != nil || st.Network == nil || st.Network.Mode != api.NetworkInternet || st.Network.DNS != "ok" {
			t.Errorf("self-test network = %+v, %v", st.Network, err)
		}
		if out := run(t, s, key, a.ID, "timeout 20 wget -q -O - http://deb.debian.org/debian/dists/bookworm/Release | head -1"); out != "Origin: Debian" {
			t.Errorf("apt's Release file from inside the microVM begins %q", out)
		}
	})
	t.Run("download speed vs runc", func(t *testing.T) {
		speed := func(k, id string) float64 {
			start := time.Now()
			run(t, s, k, id, fmt.Sprintf("timeout 120 wget -q -O /dev/null http://%s:%d/big", f.allowed, f.port))
			return 256 / time.Since(start).Seconds()
		}
		t.Logf("download of 256 MiB from a listener in a test namespace (busybox wget): microVM %.0f MiB/s, runc %.0f MiB/s", speed(key, a.ID), speed(runcKey, r))
	})

	// Inside the sandbox's namespace: the bridge of its veth and the VM's
	// tap, no address left there (the guest holds it).
	nsPath := filepath.Join(s.DataDir, "netns", a.ID)
	if out, err := exec.Command("nsenter", "--net="+nsPath, "ip", "-o", "-4", "addr").CombinedOutput(); err != nil || strings.Contains(string(out), "eth0") || strings.Contains(string(out), "br0") {
		t.Errorf("addresses in the sandbox's namespace (want loopback only): %v\n%s", err, out)
	}
	if out, err := exec.Command("nsenter", "--net="+nsPath, "ip", "-o", "link", "show", "master", "br0").CombinedOutput(); err != nil || !strings.Contains(string(out), "eth0@") || !strings.Contains(string(out), "tap0") {
		t.Errorf("br0's ports (want eth0 and tap0): %v\n%s", err, out)
	}

	// A killed server: the VM keeps its network; the successor adopts it.
	s.kill()
	s2 := startServer(t, s.DataDir, args...)
	if ok, out := wget(t, s2, key, a.ID, url(f.allowed, f.port)); !ok {
		t.Errorf("after SIGKILL and restart the microVM lost its egress: %s", out)
	}
	if ok, out := wget(t, s2, key, a.ID, url(f.private, f.port)); ok {
		t.Errorf("after SIGKILL and restart the microVM reaches a private address: %s", out)
	}
	// Killed again, and the VM with it while no server watches: the next
	// server removes its session, network and tap.
	s2.kill()
	pid, err := os.ReadFile(filepath.Join(s.DataDir, "sandboxes-microvm", a.ID, "qemu.pid"))
	if err != nil {
		t.Fatal(err)
	}
	var p int
	fmt.Sscan(string(pid), &p)
	if p <= 0 || syscall.Kill(p, syscall.SIGKILL) != nil {
		t.Fatalf("cannot kill the VM's QEMU (pid file %q)", pid)
	}
	s3 := startServer(t, s.DataDir, args...)
	defer s3.stop()
	if _, err := s3.Client(key).GetSession(t.Context(), a.ID); err == nil {
		if err := s3.Client(key).DeleteSession(t.Context(), a.ID); err != nil {
			t.Errorf("delete the dead VM's session: %v", err)
		}
	}
	if left := s3.leaks(t, a.ID); len(left) > 0 {
		t.Errorf("left of the VM killed while no server watched: %v", left)
	}
	if v, ns, ch, ad := netState(t, s.DataDir); v != 1 || ns != 1 || ch != 1 || ad != 1 {
		t.Errorf("after the VM was killed and the server restarted: %d veths, %d namespaces, %d chains, %d addresses; want the runc sandbox's only (1 each)", v, ns, ch, ad)
	}
	for _, x := range []struct{ key, id string }{{key, n.ID}, {runcKey, r}} {
		if err := s3.Client(x.key).DeleteSession(t.Context(), x.id); err != nil {
			t.Fatal(err)
		}
		if left := s3.leaks(t, x.id); len(left) > 0 {
			t.Errorf("left after deleting %s: %v", x.id, left)
		}
	}
	if v, ns, ch, ad := netState(t, s.DataDir); v+ns+ch+ad != 0 {
		t.Errorf("after delete: %d veths, %d namespaces, %d chains, %d addresses left", v, ns, ch, ad)
	}
	if out, _ := exec.Command("pgrep", "-f", "qemu-system.*"+s.DataDir).Output(); len(out) > 0 {
		t.Fatalf("QEMU left: %s", out)
	}
}
