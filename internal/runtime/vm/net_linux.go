package vm

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/internal/runtime"
)

// Network mode internet: internal/network has made the sandbox's network
// namespace, with eth0 (the inside end of its veth) holding the sandbox's
// address and the default route through the host side, where its
// nftables rules and DNS forwarder are. A VM cannot join a namespace, so
// inside it the runtime makes a bridge, br0, joining eth0 and a tap, tap0,
// whose file descriptor QEMU's virtio-net device reads and writes, and
// moves the address (and route) off eth0 to the guest: the guest owns the
// sandbox's address, so the host's rules, which match that address and the
// veth, hold unchanged. QEMU's user networking is never used (its 10.0.2.2
// is the host's loopback). The tap is not persistent: it goes when QEMU
// exits, the bridge with the namespace when internal/network releases it.
// QEMU runs in the host's namespace: it only holds the tap's descriptor.
//
// The guest learns its address, gateway and resolv.conf from files the
// runtime adds to its initramfs (chaser/net, chaser/resolv.conf), which
// the initramfs's /init applies before handing over to the agent.

// Names inside the sandbox's network namespace.
const (
	bridgeName = "br0"
	tapName    = "tap0"
)

// guestNet is what the guest's eth0 gets.
type guestNet struct {
	addr netip.Prefix // the sandbox's address and its /30
	gw   netip.Addr
}

// attachTap prepares the namespace at nsPath for a VM (see above) and
// returns the tap's descriptor for QEMU and the guest's settings.
func attachTap(nsPath string) (*os.File, guestNet, error) {
	type result struct {
		tap *os.File
		net guestNet
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread enters the sandbox's namespace and never leaves it:
		// it stays locked, so it ends with this goroutine.
		goruntime.LockOSThread()
		tap, gn, err := inNamespace(nsPath)
		ch <- result{tap, gn, err}
	}()
	r := <-ch
	return r.tap, r.net, r.err
}

func inNamespace(nsPath string) (_ *os.File, _ guestNet, err error) {
	fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, guestNet{}, fmt.Errorf("network namespace: %w", err)
	}
	err = unix.Setns(fd, unix.CLONE_NEWNET)
	unix.Close(fd)
	if err != nil {
		return nil, guestNet{}, fmt.Errorf("enter the network namespace: %w", err)
	}
	eth, err := netlink.LinkByName("eth0")
	if err != nil {
		return nil, guestNet{}, fmt.Errorf("eth0: %w", err)
	}
	gn, err := ethSettings(eth)
	if err != nil {
		return nil, guestNet{}, err
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName}}
	if err := netlink.LinkAdd(br); err != nil {
		return nil, guestNet{}, fmt.Errorf("bridge: %w", err)
	}
	tap, err := openTap(tapName)
	if err != nil {
		return nil, guestNet{}, err
	}
	defer func() {
		if err != nil {
			tap.Close()
		}
	}()
	tl, err := netlink.LinkByName(tapName)
	if err != nil {
		return nil, guestNet{}, err
	}
	// The address leaves eth0 (its routes go with it): from now on the
	// guest answers for it.
	if err := netlink.AddrDel(eth, &netlink.Addr{IPNet: &net.IPNet{IP: gn.addr.Addr().AsSlice(), Mask: net.CIDRMask(gn.addr.Bits(), 32)}}); err != nil {
		return nil, guestNet{}, fmt.Errorf("move the address off eth0: %w", err)
	}
	for _, l := range []netlink.Link{eth, tl} {
		if err := netlink.LinkSetMaster(l, br); err != nil {
			return nil, guestNet{}, fmt.Errorf("bridge %s: %w", l.Attrs().Name, err)
		}
	}
	for _, l := range []netlink.Link{br, tl} {
		if err := netlink.LinkSetUp(l); err != nil {
			return nil, guestNet{}, fmt.Errorf("up %s: %w", l.Attrs().Name, err)
		}
	}
	return tap, gn, nil
}

// ethSettings reads the sandbox's address and gateway from eth0.
func ethSettings(eth netlink.Link) (guestNet, error) {
	addrs, err := netlink.AddrList(eth, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 {
		return guestNet{}, fmt.Errorf("eth0 has %d IPv4 addresses, want the sandbox's one: %v", len(addrs), err)
	}
	a, _ := netip.AddrFromSlice(addrs[0].IP.To4())
	ones, _ := addrs[0].Mask.Size()
	routes, err := netlink.RouteList(eth, netlink.FAMILY_V4)
	if err != nil {
		return guestNet{}, err
	}
	for _, r := range routes {
		// The default route: no destination, or 0.0.0.0/0 (netlink ≥ 1.3).
		if r.Gw != nil && (r.Dst == nil || r.Dst.IP.IsUnspecified()) {
			gw, _ := netip.AddrFromSlice(r.Gw.To4())
			return guestNet{addr: netip.PrefixFrom(a, ones), gw: gw}, nil
		}
	}
	return guestNet{}, errors.New("eth0 has no default route")
}

// openTap makes a tap device called name in the calling thread's network
// namespace and returns its descriptor. With IFF_VNET_HDR, QEMU's
// virtio-net passes checksum and segmentation offloads through.
func openTap(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "tap"), nil
}

// nicArgs are QEMU's options for the NIC on the tap passed as fd.
func nicArgs(fd int) []string {
	return []string{
		"-netdev", fmt.Sprintf("tap,id=net0,fd=%d", fd),
		"-device", "virtio-net-device,netdev=net0",
	}
}

// networkFiles are the initramfs files of a sandbox's network (see above):
// chaser/net only in mode internet; chaser/resolv.conf always, naming the
// gateway's forwarder or, in mode none, no nameserver (as the container
// runtimes write it).
func networkFiles(n *runtime.Network, gn guestNet) []cpioFile {
	rc := "# Chaser sandbox: loopback-only network, no DNS.\n"
	var files []cpioFile
	if n != nil {
		files = append(files, cpioFile{Name: "chaser/net", Mode: 0o100644, Data: []byte(gn.addr.String() + " " + gn.gw.String() + "\n")})
		var b strings.Builder
		for _, ns := range n.Nameservers {
			b.WriteString("nameserver " + ns + "\n")
		}
		rc = b.String()
	}
	return append(files, cpioFile{Name: "chaser/resolv.conf", Mode: 0o100644, Data: []byte(rc)})
}

// clockFile is the host's time (Unix seconds) for the guest's clock: under
// TCG the guest has no RTC and would start in 1970, where every TLS
// certificate is not yet valid (KVM guests read kvmclock instead; the
// initramfs sets it either way). It lags by the boot's length.
func clockFile(now time.Time) cpioFile {
	return cpioFile{Name: "chaser/time", Mode: 0o100644, Data: []byte(strconv.FormatInt(now.Unix(), 10) + "\n")}
}

// prepareNetwork gives sandbox s its network: the tap in mode internet
// (nil in mode none) and the initramfs files, appended to the archive at
// initrd, with the clock's.
func prepareNetwork(s runtime.Spec, initrd string) (tap *os.File, err error) {
	var gn guestNet
	if s.Network != nil {
		if tap, gn, err = attachTap(s.Network.NSPath); err != nil {
			return nil, fmt.Errorf("sandbox %s: network: %w", s.ID, err)
		}
	}
	f, err := os.OpenFile(initrd, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		err = writeCpio(f, append(networkFiles(s.Network, gn), clockFile(time.Now())))
		err = errors.Join(err, f.Close())
	}
	if err != nil && tap != nil {
		tap.Close()
		return nil, err
	}
	return tap, err
}
