package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// maxWatchLine bounds one line of a watch stream: a name is at most
// PATH_MAX.
const maxWatchLine = 64 << 10

// WatchStream is an open GET /v1/watch.
type WatchStream struct {
	body io.ReadCloser
	sc   *bufio.Scanner
}

// Watch watches directory path in the sandbox (and its subdirectories
// when recursive) until ctx ends or the stream is closed.
func (c *Client) Watch(ctx context.Context, path string, recursive bool) (*WatchStream, error) {
	q := url.Values{"path": {path}}
	if recursive {
		q.Set("recursive", "1")
	}
	resp, err := c.Do(ctx, http.MethodGet, "/v1/watch?"+q.Encode(), nil, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, httpjson.ReadError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), maxWatchLine)
	return &WatchStream{body: resp.Body, sc: sc}, nil
}

// Next returns the next event; io.EOF when the agent ended the stream.
func (s *WatchStream) Next() (WatchEvent, error) {
	if !s.sc.Scan() {
		if err := s.sc.Err(); err != nil {
			return WatchEvent{}, fmt.Errorf("sandbox agent watch stream: %v: %w", err, errdefs.ErrUnavailable)
		}
		return WatchEvent{}, io.EOF
	}
	var ev WatchEvent
	if err := json.Unmarshal(s.sc.Bytes(), &ev); err != nil {
		return WatchEvent{}, fmt.Errorf("sandbox agent watch event: %v: %w", err, errdefs.ErrUnavailable)
	}
	return ev, nil
}

// Close ends the stream.
func (s *WatchStream) Close() error { return s.body.Close() }
