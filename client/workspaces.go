package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/chaserhq/chaser/api"
)

// CreateWorkspace creates a workspace (paid accounts).
func (c *Client) CreateWorkspace(ctx context.Context, req api.CreateWorkspaceRequest) (api.Workspace, error) {
	var w api.Workspace
	err := c.call(ctx, http.MethodPost, "/v1/workspaces", req, &w)
	return w, err
}

// ListWorkspaces lists the account's workspaces, page after page.
func (c *Client) ListWorkspaces(ctx context.Context) ([]api.Workspace, error) {
	return allPages(ctx, ListOptions{}, c.workspacesPage)
}

// ListAllWorkspaces lists every account's workspaces (admin only), each
// with its AccountID, page after page.
func (c *Client) ListAllWorkspaces(ctx context.Context) ([]api.Workspace, error) {
	return allPages(ctx, ListOptions{All: true}, c.workspacesPage)
}

// WorkspacesPage returns one page of workspaces (GET /v1/workspaces?limit=&next_token=).
func (c *Client) WorkspacesPage(ctx context.Context, o ListOptions) (api.WorkspaceList, error) {
	var l api.WorkspaceList
	err := c.call(ctx, http.MethodGet, "/v1/workspaces"+o.query(), nil, &l)
	return l, err
}

func (c *Client) workspacesPage(ctx context.Context, o ListOptions) ([]api.Workspace, string, error) {
	l, err := c.WorkspacesPage(ctx, o)
	return l.Workspaces, l.NextToken, err
}

// GetWorkspace returns a workspace by name.
func (c *Client) GetWorkspace(ctx context.Context, name string) (api.Workspace, error) {
	var w api.Workspace
	err := c.call(ctx, http.MethodGet, "/v1/workspaces/"+url.PathEscape(name), nil, &w)
	return w, err
}

// GrowWorkspace grows a workspace's disk to diskMB MiB.
func (c *Client) GrowWorkspace(ctx context.Context, name string, diskMB int64) (api.Workspace, error) {
	var w api.Workspace
	err := c.call(ctx, http.MethodPatch, "/v1/workspaces/"+url.PathEscape(name), api.UpdateWorkspaceRequest{DiskMB: &diskMB}, &w)
	return w, err
}

// DeleteWorkspace deletes a workspace and its data; force stops a session
// running on it first.
func (c *Client) DeleteWorkspace(ctx context.Context, name string, force bool) error {
	p := "/v1/workspaces/" + url.PathEscape(name)
	if force {
		p += "?force=true"
	}
	return c.call(ctx, http.MethodDelete, p, nil, nil)
}

// SetDefault makes a workspace the default for a session type.
func (c *Client) SetDefault(ctx context.Context, sessionType, workspace string) error {
	return c.call(ctx, http.MethodPut, "/v1/defaults/"+url.PathEscape(sessionType), api.DefaultWorkspace{Workspace: workspace}, nil)
}

// GetDefault returns the default workspace of a session type.
func (c *Client) GetDefault(ctx context.Context, sessionType string) (api.Workspace, error) {
	var w api.Workspace
	err := c.call(ctx, http.MethodGet, "/v1/defaults/"+url.PathEscape(sessionType), nil, &w)
	return w, err
}
