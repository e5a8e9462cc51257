package mcp

import (
	"context"
	"encoding/base64"
	"strings"
	"sync"
	"time"

	"github.com/chaserhq/chaser/api"
)

// maxProgressMessage bounds the output line a progress notification carries.
const maxProgressMessage = 200

func (s *Server) progressInterval() time.Duration {
	if s.ProgressInterval > 0 {
		return s.ProgressInterval
	}
	return DefaultProgressInterval
}

// progress reports a running command every interval: the seconds it has
// run as the progress, its latest output line as the message. Clients that
// reset their request timeout on progress (the TypeScript SDK's
// resetTimeoutOnProgress) then wait for commands longer than the timeout.
type progress struct {
	mu      sync.Mutex
	last    string // the latest complete, non-empty output line
	partial string // output after the last newline

	cancel context.CancelFunc
	done   chan struct{}
}

// startProgress calls send every interval until stop.
func startProgress(ctx context.Context, interval time.Duration, send func(ctx context.Context, progress float64, msg string)) *progress {
	ctx, cancel := context.WithCancel(ctx)
	p := &progress{cancel: cancel, done: make(chan struct{})}
	start := time.Now()
	go func() {
		defer close(p.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				send(ctx, time.Since(start).Seconds(), p.line())
			}
		}
	}()
	return p
}

// stop ends the reports; none is sent after it returns.
func (p *progress) stop() {
	p.cancel()
	<-p.done
}

// watch takes in the command's output events.
func (p *progress) watch(ev api.Event) {
	if ev.Type != "stdout" && ev.Type != "stderr" {
		return
	}
	data := ev.Data
	if ev.Encoding == "base64" {
		b, err := base64.StdEncoding.DecodeString(ev.Data)
		if err != nil {
			return
		}
		data = string(b)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	text := p.partial + data
	lines := strings.Split(text, "\n")
	for _, l := range lines[:len(lines)-1] {
		if l = strings.TrimSpace(l); l != "" {
			p.last = l
		}
	}
	p.partial = lines[len(lines)-1]
	if len(p.partial) > 4*maxProgressMessage {
		p.partial = p.partial[len(p.partial)-4*maxProgressMessage:]
	}
}

// line returns the latest output line: the unfinished one if it has text.
func (p *progress) line() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.last
	if t := strings.TrimSpace(p.partial); t != "" {
		l = t
	}
	// Carriage returns (progress bars) keep only what the terminal shows.
	if i := strings.LastIndex(l, "\r"); i >= 0 {
		l = l[i+1:]
	}
	if len(l) > maxProgressMessage {
		l = l[:maxProgressMessage]
	}
	return strings.ToValidUTF8(l, "")
}
