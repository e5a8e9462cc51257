package image

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// DefaultCertsDir is where Docker keeps per-registry certificates, and so
// the default of the server's CHASER_REGISTRY_CERTS_DIR.
const DefaultCertsDir = "/etc/docker/certs.d"

// tlsTransport picks each HTTPS request's TLS settings by the registry
// host it goes to, as Docker does:
//
//   - DIR/HOST[:PORT]/*.crt are CA certificates trusted for that registry
//     besides the system's (which honour SSL_CERT_FILE and SSL_CERT_DIR);
//   - DIR/HOST[:PORT]/NAME.cert with NAME.key is a client certificate;
//   - a registry listed with --insecure-registry is not verified at all.
//
// The directory is read on every request (a stat, and a read when it
// changed), so certificates added while the server runs apply to the next
// pull. Transports are kept per host, so connections are reused.
type tlsTransport struct {
	base     *http.Transport
	dir      string
	insecure map[string]bool

	mu     sync.Mutex
	byHost map[string]hostTransport
}

type hostTransport struct {
	stamp string // what the host's directory held when rt was built
	rt    http.RoundTripper
}

func newTLSTransport(base *http.Transport, dir string, insecure map[string]bool) *tlsTransport {
	return &tlsTransport{base: base, dir: dir, insecure: insecure, byHost: map[string]hostTransport{}}
}

func (t *tlsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		return t.base.RoundTrip(req)
	}
	rt, err := t.forHost(req.URL.Host)
	if err != nil {
		return nil, err
	}
	return rt.RoundTrip(req)
}

// forHost returns the transport of a registry host.
func (t *tlsTransport) forHost(host string) (http.RoundTripper, error) {
	var ents []os.DirEntry
	var stamp strings.Builder
	if t.dir != "" && host != "" && !strings.ContainsAny(host, `/\`) && host != "." && host != ".." {
		ents, _ = os.ReadDir(filepath.Join(t.dir, host)) // missing: nothing configured
		for _, e := range ents {
			if fi, err := e.Info(); err == nil {
				fmt.Fprintf(&stamp, "%s %d %d\n", e.Name(), fi.Size(), fi.ModTime().UnixNano())
			}
		}
	}
	if stamp.Len() == 0 && !t.insecure[host] {
		return t.base, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if h, ok := t.byHost[host]; ok && h.stamp == stamp.String() {
		return h.rt, nil
	}
	cfg, err := t.tlsConfig(host, ents)
	if err != nil {
		return nil, err
	}
	rt := t.base.Clone()
	rt.TLSClientConfig = cfg
	if old, ok := t.byHost[host]; ok {
		if c, ok := old.rt.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
	t.byHost[host] = hostTransport{stamp: stamp.String(), rt: rt}
	return rt, nil
}

// tlsConfig builds the TLS settings of host from its directory entries.
// A file that is not what its name says is an error of the server's
// configuration, reported as ErrUnavailable (see configFileError).
func (t *tlsTransport) tlsConfig(host string, ents []os.DirEntry) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.insecure[host] {
		cfg.InsecureSkipVerify = true // the operator listed it: like Docker's insecure-registries
		return cfg, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, e := range ents {
		p := filepath.Join(t.dir, host, e.Name())
		label := "registry certificate " + host + "/" + e.Name() + " (in CHASER_REGISTRY_CERTS_DIR)"
		switch {
		case strings.HasSuffix(e.Name(), ".crt"):
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, &configFileError{what: label, problem: "cannot be read", path: p, err: err}
			}
			if !pool.AppendCertsFromPEM(b) {
				return nil, &configFileError{what: label, path: p, err: fmt.Errorf("no PEM certificate in it")}
			}
		case strings.HasSuffix(e.Name(), ".cert"):
			keyPath := strings.TrimSuffix(p, ".cert") + ".key"
			pair, err := tls.LoadX509KeyPair(p, keyPath)
			if err != nil {
				return nil, &configFileError{what: label + " with its .key", path: p, err: err}
			}
			cfg.Certificates = append(cfg.Certificates, pair)
		}
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// configFileError is a file of the server's own configuration (registry
// credentials, registry certificates) that cannot be used. Its message, for
// clients, names the file by the setting that locates it, never by its
// path on the host; Path is for the server's log.
//
// Its class is ErrUnavailable (503): the request was fine, so no 4xx fits;
// it is not a fault of Chaser's code either (500 is for those), but a
// dependency the server cannot use until the operator fixes it, like a
// registry that is down. Retrying after the fix works.
type configFileError struct {
	what    string // "registry credentials file (REGISTRY_AUTH_FILE)"
	problem string // "is malformed" when empty
	path    string
	err     error
}

func (e *configFileError) Error() string {
	problem := e.problem
	if problem == "" {
		problem = "is malformed"
	}
	return fmt.Sprintf("the server's %s %s; the server's operator must fix it (the server's log names the file and the cause)", e.what, problem)
}

func (e *configFileError) Unwrap() error { return errdefs.ErrUnavailable }
