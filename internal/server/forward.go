package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
	"github.com/chaserhq/chaser/internal/store"
)

// forwardCookie holds a signed grant to one session's forward URLs. It is
// never the API key itself: a leaked cookie opens one session's ports for a
// while, not the account.
const forwardCookie = "chaser_forward"

// cookieTTL is how long a grant made from ?token=KEY lasts.
const cookieTTL = 12 * time.Hour

// forwarder proxies HTTP and WebSocket requests to ports inside sandboxes:
// path style /s/{id}/forward/{port}/… and host style {id}.{domain}/forward/{port}/….
type forwarder struct {
	s      *Server
	domain string // host-style forwarding is off when empty
	// secret signs forward cookies: random per process unless the daemon
	// sets a persistent one (WithCookieKey), so grants survive restarts.
	secret []byte
	proxy  *httputil.ReverseProxy
}

func newForwarder(s *Server) *forwarder {
	f := &forwarder{s: s, secret: make([]byte, 32)}
	_, _ = rand.Read(f.secret)
	tr := &http.Transport{
		// The proxy's outgoing URLs are http://{session}:{port}/…, so the
		// pool keeps idle connections per session and port, and every new
		// one is a connection through that sandbox's agent.
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			id, p, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			port, err := agent.ParsePort(p)
			if err != nil {
				return nil, err
			}
			return s.sandboxes.DialPortTrusted(ctx, id, port)
		},
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     60 * time.Second,
		DisableCompression:  true, // pass the app's encoding through untouched
	}
	f.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// serve prepared the request; ReverseProxy drops these three
			// before Rewrite, so they are put back.
			for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				pr.Out.Header[h] = pr.In.Header[h]
			}
		},
		Transport: tr,
		// FlushInterval stays 0: ReverseProxy already flushes at once for
		// answers of unknown length (chunked, long polls) and server-sent
		// events; flushing answers of known length only adds syscalls.
		BufferPool:     bufferPool{},
		ModifyResponse: rewriteResponse,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeForwardError(w, r, err)
		},
	}
	return f
}

// WithCookieKey sets the key that signs forward cookies (32 bytes or
// more), so that the cookies of running sessions stay valid across a
// restart of the server.
func (s *Server) WithCookieKey(key []byte) *Server {
	if len(key) >= 32 {
		s.fwd.secret = key
	}
	return s
}

// WithDomain turns on host-style forwarding for {id}.{domain}.
func (s *Server) WithDomain(domain string) *Server {
	s.fwd.domain = strings.ToLower(strings.Trim(domain, "."))
	return s
}

// writeForwardError answers an error of a forwarded request. An
// unavailable upstream — nothing listening, agent gone — is a 502 Bad
// Gateway, as a user of a proxy expects; everything else keeps its class.
func writeForwardError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away; nobody reads an answer
	}
	logAttrs(r).err = httpjson.Message(err)
	if errors.Is(err, errdefs.ErrUnavailable) {
		code, _ := errdefs.Code(err)
		httpjson.Write(w, http.StatusBadGateway, errBody(code, httpjson.Message(err)))
		return
	}
	if code, _ := errdefs.Code(err); code == "internal" && !errors.Is(err, errdefs.ErrInternal) {
		// A failure between the proxy and the app (a reset mid-answer)
		// has no class; it is still the upstream's fault.
		httpjson.Write(w, http.StatusBadGateway, errBody("unavailable", "the app in the sandbox broke the connection: "+err.Error()))
		return
	}
	writeError(w, r, err)
}

// pathStyle serves /s/{id}/forward/{port}/….
func (f *forwarder) pathStyle(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	prefix := "/s/" + id + "/forward/" + r.PathValue("port")
	f.serve(w, r, id, r.PathValue("port"), prefix, "/s/"+id+"/forward/")
}

// hostStyle serves /forward/{port}/… on host {id}.{domain}.
func (f *forwarder) hostStyle(w http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	id, ok := strings.CutSuffix(host, "."+f.domain)
	if f.domain == "" || !ok || id == "" || strings.Contains(id, ".") {
		writeError(w, r, errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("no route for %s %s (host-style forwarding needs Host: SESSION.DOMAIN and chaser serve --domain)", r.Method, r.URL.Path)))
		return
	}
	f.serve(w, r, id, r.PathValue("port"), "/forward/"+r.PathValue("port"), "/forward/")
}

// serve checks access to port of session id and proxies the request to it.
// prefix is the forward URL's path prefix (the app sees the path after
// it); cookiePath scopes the grant cookie to the session's forward URLs.
func (f *forwarder) serve(w http.ResponseWriter, r *http.Request, id, portStr, prefix, cookiePath string) {
	logAttrs(r).session = id
	port, err := agent.ParsePort(portStr)
	if err != nil {
		writeError(w, r, err)
		return
	}
	// rest is the path the app sees, kept in the client's own escaping.
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), prefix)
	if !ok { // the client escaped the prefix itself: fall back to the decoded path
		rest = (&url.URL{Path: "/" + r.PathValue("rest")}).EscapedPath()
		if r.PathValue("rest") == "" && !strings.HasSuffix(r.URL.Path, "/") {
			rest = ""
		}
	}
	// A WebSocket client cannot follow a redirect: an upgrade is
	// authenticated and forwarded at once, never redirected.
	upgrade := isUpgrade(r)
	if rest == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) && !upgrade {
		// Relative links of the app only resolve under a trailing slash.
		redirect(w, r, prefix+"/", r.URL.Query())
		return
	}
	if rest == "" {
		rest = "/"
	}

	q := r.URL.Query()
	token, ticket := q.Get("token"), q.Get("ticket")
	q.Del("token")
	q.Del("ticket")
	acc, err := f.authorize(r, id, port, token, ticket)
	if err != nil {
		if errors.Is(err, errdefs.ErrUnauthenticated) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="chaser"`)
		}
		writeError(w, r, err)
		return
	}
	if !acc.allowed {
		writeError(w, r, errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("session %s not found", id)))
		return
	}
	if (token != "" || ticket != "") && acc.owner {
		http.SetCookie(w, &http.Cookie{
			Name: forwardCookie, Value: f.sign(id, time.Now().Add(cookieTTL)), Path: cookiePath,
			MaxAge: int(cookieTTL.Seconds()), HttpOnly: true, Secure: scheme(r) == "https", SameSite: http.SameSiteLaxMode,
		})
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && !upgrade {
			// Take the key out of the address bar and the history. (An
			// upgrade gets the cookie on its 101 answer instead.)
			redirect(w, r, r.URL.EscapedPath(), q)
			return
		}
	}

	out := r.Clone(r.Context())
	out.URL = &url.URL{Scheme: "http", Host: net.JoinHostPort(id, strconv.Itoa(port)), RawQuery: r.URL.RawQuery}
	if token != "" || ticket != "" {
		out.URL.RawQuery = q.Encode() // without the key; else the app's own encoding
	}
	if p, err := url.PathUnescape(rest); err == nil {
		out.URL.Path, out.URL.RawPath = p, rest
	} else {
		out.URL.Path = rest
	}
	// The app sees itself reached locally, as through `chaser forward`, so
	// dev servers that check Host accept it; the public address is in
	// X-Forwarded-Host and X-Forwarded-Prefix.
	out.Host = "localhost:" + strconv.Itoa(port)
	dropCookie(out.Header, forwardCookie)
	if acc.stripAuth {
		out.Header.Del("Authorization")
	}
	setForwarded(out.Header, r, prefix)
	f.proxy.ServeHTTP(w, out.WithContext(context.WithValue(out.Context(), prefixKey{}, prefixInfo{prefix: prefix, port: port})))
}

// access is the outcome of authorize.
type access struct {
	// allowed false means "not found": another account's session, or one
	// that does not run.
	allowed bool
	// owner says the credential was the session owner's key; only then
	// does ?token= earn a cookie (a stranger on a public port gets none).
	owner bool
	// stripAuth says the Authorization header was a Chaser key and must
	// not reach the app.
	stripAuth bool
}

// chaserKeyHeader says whether r's Authorization header holds a Chaser API
// key (of any account).
func (f *forwarder) chaserKeyHeader(r *http.Request) bool {
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	_, err := f.s.accounts.Authenticate(r.Context(), strings.TrimSpace(key))
	return err == nil
}

// authorize decides whether r may reach port of session id. Whatever
// credential decides, an Authorization header holding a Chaser key is
// marked for removal: no key ever reaches an app.
//
// ticket is a single-use forward ticket (POST /v1/sessions/{id}/tickets)
// for this session and port: it stands for its account's key.
func (f *forwarder) authorize(r *http.Request, id string, port int, token, ticket string) (access, error) {
	ctx := r.Context()
	owns := func(key string) (bool, error) {
		acct, err := f.s.accounts.Authenticate(ctx, key)
		if err != nil {
			return false, err
		}
		logAttrs(r).account = acct.ID
		return f.owns(ctx, acct, id)
	}
	public := f.s.sandboxes.PortPublic(id, port)
	var hdr access // what the Authorization header's key, if any, says
	var hdrErr error
	if scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		ok, err := owns(strings.TrimSpace(key))
		switch {
		case err == nil:
			hdr = access{allowed: ok || public, owner: ok, stripAuth: true}
		case errors.Is(err, errdefs.ErrUnauthenticated):
			// Not a Chaser key: the app's own credential, passed on;
			// the other credentials decide.
			hdrErr = err
		default:
			return access{}, err
		}
	}
	switch {
	case ticket != "":
		acct, err := f.s.tickets.redeem(ticket, id, api.TicketForward, port, time.Now())
		if err != nil {
			return access{}, err
		}
		logAttrs(r).account = acct.ID
		ok, err := f.owns(ctx, acct, id)
		if err != nil {
			return access{}, err
		}
		return access{allowed: ok || public, owner: ok, stripAuth: hdr.stripAuth}, nil
	case token != "":
		ok, err := owns(token)
		if err != nil {
			return access{}, err
		}
		return access{allowed: ok || public, owner: ok, stripAuth: hdr.stripAuth}, nil
	case hdr.stripAuth:
		return hdr, nil
	}
	if c, err := r.Cookie(forwardCookie); err == nil && f.verify(c.Value, id) {
		return access{allowed: f.s.sandboxes.IsRunning(id)}, nil
	}
	if public {
		return access{allowed: f.s.sandboxes.IsRunning(id)}, nil
	}
	if hdrErr != nil {
		return access{}, hdrErr
	}
	return access{}, errdefs.New(errdefs.ErrUnauthenticated,
		"this forwarded port needs the session owner's API key: send Authorization: Bearer KEY, or open the URL once with ?token=KEY; the owner can make it public with PUT /v1/sessions/"+id+"/ports/"+strconv.Itoa(port))
}

// owns reports whether acct owns running session id; errors other than
// "not found" (a session that does not run) are returned.
func (f *forwarder) owns(ctx context.Context, acct store.Account, id string) (bool, error) {
	_, _, err := f.s.sandboxes.Agent(ctx, acct, id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// sign returns a grant for session id valid until exp.
func (f *forwarder) sign(id string, exp time.Time) string {
	msg := id + "|" + strconv.FormatInt(exp.Unix(), 10)
	m := hmac.New(sha256.New, f.secret)
	m.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString([]byte(msg)) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// verify checks a grant for session id.
func (f *forwarder) verify(v, id string) bool {
	b64msg, b64sig, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	msg, err1 := base64.RawURLEncoding.DecodeString(b64msg)
	sig, err2 := base64.RawURLEncoding.DecodeString(b64sig)
	if err1 != nil || err2 != nil {
		return false
	}
	m := hmac.New(sha256.New, f.secret)
	m.Write(msg)
	if !hmac.Equal(sig, m.Sum(nil)) {
		return false
	}
	sid, exp, ok := strings.Cut(string(msg), "|")
	n, err := strconv.ParseInt(exp, 10, 64)
	return ok && err == nil && sid == id && time.Now().Unix() < n
}

func errBody(code, msg string) api.ErrorBody {
	return api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: msg}}
}

func redirect(w http.ResponseWriter, r *http.Request, path string, q url.Values) {
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	w.Header().Set("Location", path)
	w.WriteHeader(http.StatusTemporaryRedirect)
}

// dropCookie removes one cookie from a request's Cookie headers.
func dropCookie(h http.Header, name string) {
	var keep []string
	for _, line := range h.Values("Cookie") {
		for _, part := range strings.Split(line, ";") {
			if n, _, _ := strings.Cut(strings.TrimSpace(part), "="); n != name && strings.TrimSpace(part) != "" {
				keep = append(keep, strings.TrimSpace(part))
			}
		}
	}
	h.Del("Cookie")
	if len(keep) > 0 {
		h.Set("Cookie", strings.Join(keep, "; "))
	}
}

// scheme is the scheme the client used: TLS here, or a TLS-terminating
// proxy in front that says so.
func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if p := strings.ToLower(r.Header.Get("X-Forwarded-Proto")); p == "https" || p == "http" {
		return p
	}
	return "http"
}

// setForwarded sets the X-Forwarded-* headers that tell the app where it is
// published. A chain of proxies in front is kept in X-Forwarded-For.
func setForwarded(h http.Header, r *http.Request, prefix string) {
	client, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		client = r.RemoteAddr
	}
	if prior := r.Header.Values("X-Forwarded-For"); len(prior) > 0 {
		client = strings.Join(prior, ", ") + ", " + client
	}
	h.Set("X-Forwarded-For", client)
	host := r.Header.Get("X-Forwarded-Host")
	if host == "" {
		host = r.Host
	}
	h.Set("X-Forwarded-Host", host)
	h.Set("X-Forwarded-Proto", scheme(r))
	h.Set("X-Forwarded-Prefix", prefix)
	h.Del("Forwarded")
}

// bufferPool recycles the proxy's copy buffers, one per request otherwise.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { return make([]byte, 32<<10) }}

func (bufferPool) Get() []byte  { return buffers.Get().([]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(b) } // boxing the slice header costs far less than 32 KiB

type prefixKey struct{}

type prefixInfo struct {
	prefix string
	port   int
}

// rewriteResponse keeps redirects, cookies and Service Worker scopes of the
// app under the forward prefix: "Location: /login" becomes "/s/ID/forward/PORT/login", an absolute
// URL back to the app's own local address becomes the public one, and a
// cookie's Path moves under the prefix and its Domain goes (see
// rewriteCookie).
func rewriteResponse(resp *http.Response) error {
	info, ok := resp.Request.Context().Value(prefixKey{}).(prefixInfo)
	if !ok {
		return nil
	}
	// A Service Worker of the app may not widen its scope beyond the
	// forward prefix: with Service-Worker-Allowed: / it would control
	// every page of this origin, the API's own and other sessions' forwards.
	resp.Header.Del("Service-Worker-Allowed")
	if loc := resp.Header.Get("Location"); loc != "" {
		resp.Header.Set("Location", rewriteLocation(loc, info))
	}
	if cookies := resp.Header.Values("Set-Cookie"); len(cookies) > 0 {
		resp.Header.Del("Set-Cookie")
		for _, c := range cookies {
			resp.Header.Add("Set-Cookie", rewriteCookie(c, info.prefix))
		}
	}
	return nil
}

func rewriteLocation(loc string, info prefixInfo) string {
	u, err := url.Parse(loc)
	if err != nil {
		return loc
	}
	if u.Scheme != "" || u.Host != "" {
		h := strings.ToLower(u.Hostname())
		local := h == "localhost" || h == "127.0.0.1" || h == "::1" || h == "0.0.0.0"
		if !local || (u.Port() != "" && u.Port() != strconv.Itoa(info.port)) {
			return loc // somewhere else: leave it
		}
		// Make it relative to the public address, which the browser knows.
		u.Scheme, u.Host, u.User = "", "", nil
		if u.Path == "" {
			u.Path = "/"
		}
	}
	if !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, info.prefix+"/") || u.Path == info.prefix {
		return u.String() // relative, or already under the prefix
	}
	u.Path = info.prefix + u.Path
	if u.RawPath != "" {
		u.RawPath = info.prefix + u.RawPath
	}
	return u.String()
}

// rewriteCookie scopes one Set-Cookie of an app to its session. Its Path
// moves under prefix, and its Domain attribute is dropped: the cookie is
// then host-only, for the host the browser asked (SESSION.DOMAIN in host
// style, the server's own host in path style). A Domain would let one
// session's app set cookies for every session's host under --domain, or
// for the server's parent domain.
func rewriteCookie(c, prefix string) string {
	parts := strings.Split(c, ";")
	out := []string{parts[0]} // name=value
	found := false
	for _, p := range parts[1:] {
		name, val, _ := strings.Cut(p, "=")
		name, val = strings.TrimSpace(name), strings.TrimSpace(val)
		switch {
		case strings.EqualFold(name, "domain"):
			continue
		case strings.EqualFold(name, "path"):
			found = true
			if strings.HasPrefix(val, "/") && !strings.HasPrefix(val, prefix+"/") && val != prefix {
				p = " Path=" + strings.TrimSuffix(prefix+val, "/")
				if val == "/" {
					p = " Path=" + prefix + "/"
				}
			}
		}
		out = append(out, p)
	}
	if !found {
		out = append(out, " Path="+prefix+"/")
	}
	return strings.Join(out, ";")
}

// e2bHostStyle serves a request to host PORT-ID.DOMAIN, the address of a
// sandbox port in E2B's SDKs (sandbox.getHost), and reports whether the
// host was one. The whole path goes to the app. Sandboxes made through
// the E2B API follow E2B's access rule (e2b.Handler.PortAccess); Chaser's
// own sessions keep Chaser's.
func (f *forwarder) e2bHostStyle(w http.ResponseWriter, r *http.Request) bool {
	if f.domain == "" {
		return false
	}
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	label, ok := strings.CutSuffix(host, "."+f.domain)
	if !ok || strings.Contains(label, ".") {
		return false
	}
	portStr, id, ok := strings.Cut(label, "-")
	if !ok || id == "" || portStr == "" || strings.Trim(portStr, "0123456789") != "" {
		return false
	}
	logAttrs(r).session = id
	port, err := agent.ParsePort(portStr)
	if err != nil {
		writeError(w, r, err)
		return true
	}
	made, err := f.s.e2b.PortAccess(r, id)
	if err != nil {
		writeError(w, r, err)
		return true
	}
	// Credentials never reach an app (issue 13): a Chaser key in the
	// Authorization header is dropped also on ports E2B made public.
	stripAuth := made && f.chaserKeyHeader(r)
	if !made {
		acc, err := f.authorize(r, id, port, "", "")
		if err != nil {
			writeError(w, r, err)
			return true
		}
		if !acc.allowed {
			writeError(w, r, errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("session %s not found", id)))
			return true
		}
		stripAuth = acc.stripAuth
	}
	out := r.Clone(r.Context())
	out.URL = &url.URL{Scheme: "http", Host: net.JoinHostPort(id, strconv.Itoa(port)), Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	out.Host = "localhost:" + strconv.Itoa(port)
	dropCookie(out.Header, forwardCookie)
	// A Chaser key in ?token= does not authorize this form, but it never
	// reaches the app either.
	if q := r.URL.Query(); q.Has("token") {
		if _, err := f.s.accounts.Authenticate(r.Context(), q.Get("token")); err == nil {
			q.Del("token")
			out.URL.RawQuery = q.Encode()
		}
	}
	if stripAuth {
		out.Header.Del("Authorization")
	}
	setForwarded(out.Header, r, "")
	out.Header.Del("X-Forwarded-Prefix")
	f.proxy.ServeHTTP(w, out)
	return true
}
