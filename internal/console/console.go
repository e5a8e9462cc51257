// Package console serves Chaser's web console: the static assets built from
// web/ (committed in dist/ and embedded, so `go build` alone yields a
// complete binary) and, on the same origin, the API under /v1/.
//
// The console never shares an origin with forwarded apps. Path-style
// forwards (/s/{id}/forward/{port}/…) live on the API's origin; a page of a
// forwarded app there could read whatever the console keeps in the browser
// (sessionStorage, a Service Worker's scope) if the console lived there
// too. So the console gets an origin of its own — a listener of its own
// (chaser serve --console-addr) or the host console.DOMAIN — where this
// handler answers /v1/ (the API, for the console's fetches and PTY
// WebSockets) and the assets, and never a forward.
package console

import (
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/json"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed all:dist
var dist embed.FS

// CSP is the console's Content-Security-Policy: its own scripts and
// styles only, API calls and WebSockets to its own origin only, no frames
// (neither in it nor of it), no forms elsewhere, no base rewriting.
//
// style-src allows 'unsafe-inline' for one reason: xterm.js creates
// <style> elements at run time holding rules it computes (theme colours,
// the cell size it measured), which no hash or nonce can name in advance.
// Inline styles cannot run script; with img-src, font-src and connect-src
// held to 'self', a style cannot send anything elsewhere either.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Config is what the console handler needs.
type Config struct {
	// API is the API server's handler, served under /v1/ on the console's
	// origin (same process; no second hop).
	API http.Handler
	// APIAddr is the API listener's address (HOST:PORT). Path-style
	// forward links point at the host the browser used for the console
	// with this port: that is where /s/… is served.
	APIAddr string
	// Domain is chaser serve --domain: when set, the console is also
	// served on the host console.DOMAIN of the API listener (ByHost).
	Domain string
	// MaxFileSize is chaser serve --max-file-size: the page refuses a
	// larger upload before sending it (/console.json tells it).
	MaxFileSize int64
	Log         *slog.Logger
}

type handler struct {
	cfg     Config
	apiPort string
	assets  fs.FS
	gz      sync.Map // name → []byte, the gzip of an asset, made once
}

// Handler returns the console's handler.
func Handler(cfg Config) http.Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // dist is embedded: it always exists
	}
	h := &handler{cfg: cfg, assets: sub}
	if _, p, err := net.SplitHostPort(cfg.APIAddr); err == nil {
		h.apiPort = p
	}
	return h
}

// ByHost returns a handler that serves console for the host console.DOMAIN
// and api for every other host; with no domain it is api.
func ByHost(domain string, api, console http.Handler) http.Handler {
	domain = strings.ToLower(strings.Trim(domain, "."))
	if domain == "" {
		return api
	}
	host := "console." + domain
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := strings.ToLower(r.Host)
		if hh, _, err := net.SplitHostPort(h); err == nil {
			h = hh
		}
		if strings.TrimSuffix(h, ".") == host {
			console.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/") || r.URL.Path == "/healthz":
		// The API computes the forward URLs it returns (ports) from the
		// Host it was reached with: that must be the API listener's.
		if o := h.forwardOrigin(r); o != "" {
			r = r.Clone(r.Context())
			r.Host = o[strings.Index(o, "://")+3:]
		}
		h.cfg.API.ServeHTTP(w, r)
	case r.URL.Path == "/console.json":
		h.config(w, r)
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	default:
		h.asset(w, r)
	}
}

// forwardOrigin is the origin where forwards are served, as the browser
// reaches it: the scheme it used (TLS here, or X-Forwarded-Proto from a
// TLS proxy in front) and the host it asked for (X-Forwarded-Host when a
// proxy rewrote Host).
//
//   - On console.DOMAIN the console is served where DOMAIN is (the API
//     listener, or whatever proxy fronts it), so forwards are on DOMAIN at
//     the very port the browser used: a TLS proxy on 443 or any other port
//     gives links on that port, never on the API listener's own.
//   - On a listener of its own (--console-addr) the API is taken to be on
//     the same host name at the API listener's port. Behind a proxy that
//     publishes the API elsewhere that guess is wrong, and there is no
//     setting for the API's public URL: docs/console.md says to use
//     --domain there.
func (h *handler) forwardOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	host := r.Host
	if fh := r.Header.Get("X-Forwarded-Host"); fh != "" {
		host = strings.TrimSpace(strings.Split(fh, ",")[0])
	}
	name, port, err := net.SplitHostPort(host)
	if err != nil {
		name, port = host, ""
	}
	if d := strings.ToLower(strings.Trim(h.cfg.Domain, ".")); d != "" && strings.EqualFold(strings.TrimSuffix(name, "."), "console."+d) {
		name = d
	} else if h.apiPort != "" {
		port = h.apiPort
	}
	if port == "" || scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		if strings.Contains(name, ":") {
			return scheme + "://[" + name + "]"
		}
		return scheme + "://" + name
	}
	return scheme + "://" + net.JoinHostPort(name, port)
}

// config serves /console.json: what the page cannot know by itself — where
// forwards are served and the server's per-file limit (0: not known).
func (h *handler) config(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(struct {
		ForwardOrigin string `json:"forward_origin"`
		MaxFileSize   int64  `json:"max_file_size,omitempty"`
	}{h.forwardOrigin(r), h.cfg.MaxFileSize})
}

func (h *handler) asset(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
	if name == "" {
		name = "index.html"
	}
	b, err := fs.ReadFile(h.assets, name)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	// No window the console opens (a forwarded app) keeps a handle on it.
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	if strings.HasPrefix(name, "assets/") {
		hd.Set("Cache-Control", "public, max-age=31536000, immutable") // names carry a content hash
	} else {
		hd.Set("Cache-Control", "no-cache")
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	hd.Set("Content-Type", ct)
	hd.Add("Vary", "Accept-Encoding")
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") && len(b) > 1024 {
		b = h.gzipped(name, b)
		hd.Set("Content-Encoding", "gzip")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

// gzipped returns the gzip of asset name, compressed once.
func (h *handler) gzipped(name string, b []byte) []byte {
	if v, ok := h.gz.Load(name); ok {
		return v.([]byte)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	h.gz.Store(name, buf.Bytes())
	return buf.Bytes()
}
