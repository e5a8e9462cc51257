package network

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// forwarder answers a sandbox's DNS queries on its gateway address (UDP
// and TCP port 53) by asking the host's resolvers. Sandboxes never reach
// those directly: they may lie in ranges sandboxes are denied (on our
// machines 10.0.0.0/8).
type forwarder struct {
	udp, tcp *dns.Server
}

// upstreamTimeout bounds one query to one host resolver.
const upstreamTimeout = 3 * time.Second

func startForwarder(gw netip.Addr, upstreams []string, log *slog.Logger) (*forwarder, error) {
	addr := net.JoinHostPort(gw.String(), "53")
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		pc.Close()
		return nil, err
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		w.WriteMsg(forward(q, upstreams, w.RemoteAddr().Network() == "tcp", log))
	})
	// Shutdown of a server that has not started yet does nothing (and
	// would leave the port bound): wait until both serve.
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	f := &forwarder{
		udp: &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: notify},
		tcp: &dns.Server{Listener: l, Handler: h, NotifyStartedFunc: notify},
	}
	go f.udp.ActivateAndServe()
	go f.tcp.ActivateAndServe()
	<-started
	<-started
	return f, nil
}

// forward asks each upstream in turn (over TCP when the sandbox asked over
// TCP, or when the UDP answer was truncated) and answers SERVFAIL when
// none answers.
func forward(q *dns.Msg, upstreams []string, tcp bool, log *slog.Logger) *dns.Msg {
	var errs []error
	for _, up := range upstreams {
		c := &dns.Client{Net: "udp", Timeout: upstreamTimeout}
		if tcp {
			c.Net = "tcp"
		}
		r, _, err := c.Exchange(q, up)
		if err == nil && r.Truncated && !tcp {
			c.Net = "tcp"
			r, _, err = c.Exchange(q, up)
		}
		if err == nil {
			return r
		}
		errs = append(errs, err)
	}
	log.Debug("dns forward failed", "question", q.Question, "err", errors.Join(errs...))
	m := new(dns.Msg)
	m.SetRcode(q, dns.RcodeServerFailure)
	return m
}

func (f *forwarder) close() {
	f.udp.Shutdown()
	f.tcp.Shutdown()
}

// upstreams reads the nameservers of a resolv.conf, as HOST:53.
func upstreams(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			if a, err := netip.ParseAddr(fields[1]); err == nil {
				out = append(out, net.JoinHostPort(a.WithZone("").String(), "53"))
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no nameserver lines")
	}
	return out, sc.Err()
}
