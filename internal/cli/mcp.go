package cli

import (
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/chaserhq/chaser/internal/mcp"
)

func newMCP(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "mcp",
		Short: "Serve MCP on stdio for local clients, forwarding to the Chaser server",
		Long: `Serve the Model Context Protocol on standard input and output, for editors and
agent frameworks that start MCP servers as local commands. Every tool call is
forwarded to the Chaser server (CHASER_API_URL) with your key (CHASER_API_KEY).

Client configuration (e.g. an mcpServers entry):

  {"mcpServers": {"chaser": {"command": "chaser", "args": ["mcp"],
    "env": {"CHASER_API_URL": "http://127.0.0.1:8080", "CHASER_API_KEY": "chaser_..."}}}}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := e.client()
			return mcp.RunBridge(cmd.Context(), c.BaseURL, c.Key, &sdk.StdioTransport{})
		},
	}
}
