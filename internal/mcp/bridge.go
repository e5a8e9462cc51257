package mcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// bearer adds an API key to every request.
type bearer struct {
	key  string
	next http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.next.RoundTrip(r)
}

// RunBridge serves MCP on t (stdio for `chaser mcp`) and forwards every
// tool of the Chaser server at baseURL, called with key. It lists the
// server's tools once at start, so local clients see the same names,
// descriptions and schemas. Progress of a call that asked for it is
// relayed. When the input ends, the requests read before are answered
// first; then it returns nil.
func RunBridge(ctx context.Context, baseURL, key string, t sdk.Transport) error {
	if key == "" {
		return errdefs.New(errdefs.ErrUnauthenticated, "no API key: set CHASER_API_KEY")
	}
	// relays maps the progress token the bridge sent with a forwarded call
	// to the local caller's notifier.
	var relays sync.Map
	var tokens atomic.Int64
	hc := &http.Client{Transport: bearer{key: key, next: http.DefaultTransport}}
	client := sdk.NewClient(&sdk.Implementation{Name: "chaser-mcp-bridge", Version: "1"}, &sdk.ClientOptions{
		ProgressNotificationHandler: func(ctx context.Context, req *sdk.ProgressNotificationClientRequest) {
			if relay, ok := relays.Load(req.Params.ProgressToken); ok {
				relay.(func(*sdk.ProgressNotificationParams))(req.Params)
			}
		},
	})
	remote, err := client.Connect(ctx, &sdk.StreamableClientTransport{
		Endpoint: strings.TrimRight(baseURL, "/") + "/v1/mcp", HTTPClient: hc, DisableStandaloneSSE: true,
	}, nil)
	if err != nil {
		return fmt.Errorf("connect to the Chaser server at %s: %v: %w", baseURL, err, errdefs.ErrUnavailable)
	}
	defer remote.Close()
	tools, err := remote.ListTools(ctx, nil)
	if err != nil {
		return fmt.Errorf("list tools of %s: %w", baseURL, err)
	}
	srv := sdk.NewServer(&sdk.Implementation{Name: "chaser", Version: "1"}, &sdk.ServerOptions{
		Instructions: remote.InitializeResult().Instructions,
	})
	for _, tool := range tools.Tools {
		name := tool.Name
		srv.AddTool(tool, func(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
			params := &sdk.CallToolParams{Name: name, Arguments: req.Params.Arguments}
			if local := req.Params.GetProgressToken(); local != nil && req.Session != nil {
				token := fmt.Sprintf("chaser-mcp-%d", tokens.Add(1))
				params.SetProgressToken(token)
				relays.Store(token, func(p *sdk.ProgressNotificationParams) {
					_ = req.Session.NotifyProgress(ctx, &sdk.ProgressNotificationParams{
						ProgressToken: local, Progress: p.Progress, Total: p.Total, Message: p.Message})
				})
				defer relays.Delete(token)
			}
			return remote.CallTool(ctx, params)
		})
	}
	err = srv.Run(ctx, drain{t})
	if ctx.Err() == nil && errors.Is(err, io.EOF) {
		return nil // the client closed its end: a normal end
	}
	return err
}

// drain is a transport whose connection, when its input ends, reports the
// end only once every request read before has been answered, so a client
// that writes its requests and closes its end (a pipe) gets every answer.
type drain struct{ sdk.Transport }

func (d drain) Connect(ctx context.Context) (sdk.Connection, error) {
	c, err := d.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	dc := &drainConn{Connection: c, pending: map[any]bool{}}
	dc.idle = sync.NewCond(&dc.mu)
	return dc, nil
}

type drainConn struct {
	sdk.Connection
	mu      sync.Mutex
	idle    *sync.Cond
	pending map[any]bool // ids of requests read and not answered
}

func (c *drainConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	msg, err := c.Connection.Read(ctx)
	if err != nil {
		stop := context.AfterFunc(ctx, func() {
			c.mu.Lock()
			c.idle.Broadcast()
			c.mu.Unlock()
		})
		defer stop()
		c.mu.Lock()
		for len(c.pending) > 0 && ctx.Err() == nil {
			c.idle.Wait()
		}
		c.mu.Unlock()
		return nil, err
	}
	if r, ok := msg.(*jsonrpc.Request); ok && r.ID.IsValid() {
		c.mu.Lock()
		c.pending[r.ID.Raw()] = true
		c.mu.Unlock()
	}
	return msg, nil
}

func (c *drainConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	err := c.Connection.Write(ctx, msg)
	if r, ok := msg.(*jsonrpc.Response); ok && r.ID.IsValid() {
		c.mu.Lock()
		delete(c.pending, r.ID.Raw())
		c.idle.Broadcast()
		c.mu.Unlock()
	}
	return err
}
