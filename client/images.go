package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
)

// imagePath puts a reference in a URL path: each segment escaped, the
// slashes of the repository kept (the server matches /v1/images/{ref...}).
func imagePath(ref string) string {
	parts := strings.Split(ref, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return "/v1/images/" + strings.Join(parts, "/")
}

// ListImages lists the server's image cache, page after page.
func (c *Client) ListImages(ctx context.Context) ([]api.Image, error) {
	return allPages(ctx, ListOptions{}, c.imagesPage)
}

// ImagesPage returns one page of the image cache, by reference (GET
// /v1/images?limit=&next_token=; All does not apply).
func (c *Client) ImagesPage(ctx context.Context, o ListOptions) (api.ImageList, error) {
	o.All = false
	var l api.ImageList
	err := c.call(ctx, http.MethodGet, "/v1/images"+o.query(), nil, &l)
	return l, err
}

func (c *Client) imagesPage(ctx context.Context, o ListOptions) ([]api.Image, string, error) {
	l, err := c.ImagesPage(ctx, o)
	return l.Images, l.NextToken, err
}

// GetImage returns one cached image.
func (c *Client) GetImage(ctx context.Context, ref string) (api.Image, error) {
	var img api.Image
	err := c.call(ctx, http.MethodGet, imagePath(ref), nil, &img)
	return img, err
}

// DeleteImage removes an image from the cache (admin only).
func (c *Client) DeleteImage(ctx context.Context, ref string) error {
	return c.call(ctx, http.MethodDelete, imagePath(ref), nil, nil)
}

// PullImage pulls an image into the server's cache. With progress set it
// streams and calls progress for each progress event.
func (c *Client) PullImage(ctx context.Context, req api.PullImageRequest, progress func(api.PullEvent)) (api.Image, error) {
	if progress == nil {
		req.Stream = false
		var img api.Image
		err := c.call(ctx, http.MethodPost, "/v1/images", req, &img)
		return img, err
	}
	req.Stream = true
	b, err := json.Marshal(req)
	if err != nil {
		return api.Image{}, err
	}
	resp, err := c.Request(ctx, http.MethodPost, "/v1/images", bytes.NewReader(b), "application/json")
	if err != nil {
		return api.Image{}, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var ev api.PullEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return api.Image{}, fmt.Errorf("bad pull event from server: %w", err)
		}
		switch ev.Type {
		case "done":
			if ev.Image == nil {
				return api.Image{}, errdefs.New(errdefs.ErrInternal, "pull finished without an image")
			}
			return *ev.Image, nil
		case "error":
			if ev.Error == nil {
				return api.Image{}, errdefs.New(errdefs.ErrInternal, "pull failed")
			}
			return api.Image{}, errdefs.New(errdefs.FromCode(ev.Error.Code), ev.Error.Message)
		default:
			progress(ev)
		}
	}
	if err := sc.Err(); err != nil {
		return api.Image{}, err
	}
	return api.Image{}, errdefs.New(errdefs.ErrUnavailable, "the pull stream ended before the pull finished")
}
