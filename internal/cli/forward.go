package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/agent/splice"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// forwardInfo is what `chaser forward --json` prints once it listens.
type forwardInfo struct {
	SessionID string `json:"session_id"`
	GuestPort int    `json:"guest_port"`
	LocalPort int    `json:"local_port"`
	LocalAddr string `json:"local_addr"`
	URL       string `json:"url"`
}

func newForward(e *env) *cobra.Command {
	var open bool
	cmd := &cobra.Command{
		Use:   "forward SESSION GUEST_PORT [LOCAL_PORT]",
		Short: "Forward a local port to a port inside a sandbox",
		Long: `Listen on 127.0.0.1:LOCAL_PORT and carry every TCP connection to
127.0.0.1:GUEST_PORT inside SESSION, through the server (any TCP protocol,
many connections at once). LOCAL_PORT defaults to GUEST_PORT, or a free port
when that one is taken; the address is printed. Ctrl-C stops forwarding.`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			guest, err := parsePort(args[1], "GUEST_PORT", false)
			if err != nil {
				return err
			}
			local, explicit := guest, len(args) == 3
			if explicit {
				if local, err = parsePort(args[2], "LOCAL_PORT", true); err != nil {
					return err
				}
			}
			c := e.client()
			id := args[0]
			if _, err := c.GetSession(ctx, id); err != nil {
				return err
			}
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(local)))
			if err != nil && !explicit {
				fmt.Fprintf(e.stderr, "chaser: local port %d is taken; using a free one\n", local)
				l, err = net.Listen("tcp", "127.0.0.1:0")
			}
			if err != nil {
				return errdefs.New(errdefs.ErrUnavailable, fmt.Sprintf("cannot listen on 127.0.0.1:%d: %v; pick another LOCAL_PORT (0 for any free one)", local, err))
			}
			addr := l.Addr().(*net.TCPAddr)
			info := forwardInfo{SessionID: id, GuestPort: guest, LocalPort: addr.Port, LocalAddr: addr.String(),
				URL: "http://" + addr.String() + "/"}
			if e.json {
				_ = e.printJSON(info)
			} else {
				fmt.Fprintf(e.stdout, "Forwarding %s -> %s port %d (%s for HTTP; Ctrl-C to stop)\n", info.LocalAddr, id, guest, info.URL)
			}
			if open {
				openBrowser(e, info.URL)
			}
			return serveForward(ctx, e, c, l, id, guest)
		},
	}
	cmd.Flags().BoolVar(&open, "open", false, "open the forwarded URL in a browser")
	return cmd
}

func parsePort(s, name string, zeroOK bool) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 || n == 0 && !zeroOK {
		return 0, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%s %q is not a TCP port: use a number from 1 to 65535", name, s))
	}
	return n, nil
}

// openBrowser opens url with xdg-open when there is one, else says where
// to go. The browser is not waited for.
func openBrowser(e *env, url string) {
	if p, err := exec.LookPath("xdg-open"); err == nil {
		cmd := exec.Command(p, url)
		if err := cmd.Start(); err == nil {
			go cmd.Wait()
			return
		}
	}
	fmt.Fprintf(e.stderr, "Open %s in your browser\n", url)
}

// serveForward tunnels every connection accepted on l until ctx ends
// (Ctrl-C), then closes the listener and every open connection and waits
// for them, so nothing is left half-open.
func serveForward(ctx context.Context, e *env, c *client.Client, l net.Listener, id string, port int) error {
	var (
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
		wg    sync.WaitGroup
	)
	track := func(conn net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			conns[conn] = true
		} else {
			delete(conns, conn)
		}
	}
	stop := context.AfterFunc(ctx, func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for conn := range conns {
			conn.Close()
		}
	})
	defer stop()
	var err error
	for {
		var local net.Conn
		local, err = l.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				time.Sleep(50 * time.Millisecond)
				continue // transient: keep serving the connections we have
			}
			break
		}
		track(local, true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer track(local, false)
			remote, err := c.Tunnel(ctx, id, port)
			if err != nil {
				local.Close()
				if ctx.Err() == nil {
					fmt.Fprintf(e.stderr, "chaser: forward %s: %v\n", local.RemoteAddr(), httpjson.Message(err))
				}
				return
			}
			track(remote, true)
			defer track(remote, false)
			splice.Conns(local, remote)
		}()
	}
	if ctx.Err() == nil {
		stop()
		l.Close()
	}
	wg.Wait()
	if ctx.Err() != nil {
		fmt.Fprintln(e.stderr, "chaser: forward stopped")
		return nil
	}
	return fmt.Errorf("accept: %w", err)
}
