package mcp

import (
	"context"
	"fmt"
	"net/http"
	"strings"

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
// descriptions and schemas.
func RunBridge(ctx context.Context, baseURL, key string, t sdk.Transport) error {
	if key == "" {
		return errdefs.New(errdefs.ErrUnauthenticated, "no API key: set CHASER_API_KEY")
	}
	hc := &http.Client{Transport: bearer{key: key, next: http.DefaultTransport}}
	client := sdk.NewClient(&sdk.Implementation{Name: "chaser-mcp-bridge", Version: "1"}, nil)
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
			return remote.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: req.Params.Arguments})
		})
	}
	return srv.Run(ctx, t)
}
