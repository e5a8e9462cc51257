package integration

import (
	"fmt"
	"net"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
)

// TestConsoleBehindTLSProxy puts a TLS reverse proxy on a port of its own
// in front of a server started with --domain (as a deployment on 443
// would) and drives the console through it in Chromium at
// https://console.DOMAIN:PROXYPORT/: the terminal works through the
// proxy, and a forwarded port opens on https and the proxy's port, where
// the app answers — not on the API listener's port, which the browser
// cannot reach through the proxy.
func TestConsoleBehindTLSProxy(t *testing.T) {
	s := newServer(t, "--domain", testDom)
	key := s.account(t, "paid")
	sess, err := s.Client(key).CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewTLSServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // the name the browser asked for, as proxies in front of --domain keep it
		r.SetXForwarded()      // X-Forwarded-Proto: https
	}})
	t.Cleanup(proxy.Close)
	_, port, _ := net.SplitHostPort(proxy.Listener.Addr().String())
	consoleURL := "https://console." + testDom + ":" + port + "/"

	res := runDriver(t, 2*time.Minute, "proxy.mjs", consoleURL, key, sess.ID, testDom, t.TempDir(), shotDir(t, "proxy"),
		"--host-resolver-rules=MAP *."+testDom+" 127.0.0.1", "--ignore-certificate-errors")

	if got, want := fmt.Sprint(res.step("console.json")["forward_origin"]), "https://"+testDom+":"+port; got != want {
		t.Errorf("forward_origin behind the proxy = %s, want %s", got, want)
	}
	res.step("terminal through the proxy")
	st := res.step("forward opened")
	u, _ := url.Parse(fmt.Sprint(st["url"]))
	if u == nil || u.Scheme != "https" || u.Port() != port || !strings.HasSuffix(u.Hostname(), "."+testDom) {
		t.Errorf("the forwarded port opened at %v, want https on the proxy's port %s under %s", st["url"], port, testDom)
	}
	if !strings.Contains(fmt.Sprint(st["text"]), "proxied-app") {
		t.Errorf("the forwarded app did not answer through the proxy: %v", st["text"])
	}
}
