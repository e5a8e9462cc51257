// BenchmarkForward compares one small HTTP request to a server inside a
// sandbox reached three ways in one run: directly from inside the sandbox
// (a Python keep-alive client run in the sandbox), through the path-style
// forward URL (with the owner's key, and without one on a public port), and
// through `chaser forward`. Each reports req/s and p50 latency. Run as root:
//
//	go test ./bench/ -run '^$' -bench Forward -benchtime 2000x

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/testserver"
)

const appPort = 8000

// forwardEnv is one sandbox running the test app and a `chaser forward` to
// it, shared by the sub-benchmarks so they measure the same thing in the
// same run.
type forwardEnv struct {
	url, key, id string
	localPort    int
}

func setupForward(b *testing.B) *forwardEnv {
	s, c := server(b)
	e := &forwardEnv{url: s.URL, key: s.AdminKey}
	ctx := b.Context()
	sess, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: api.SessionTypeSandbox, Ephemeral: true})
	if err != nil {
		b.Fatal(err)
	}
	e.id = sess.ID
	app, err := os.ReadFile("../integration/testdata/fwdapp.py")
	if err != nil {
		b.Fatal(err)
	}
	for name, content := range map[string]string{"fwdapp.py": string(app), "client.py": clientPy} {
		if _, err := c.Exec(ctx, e.id, api.ExecRequest{Command: "cat > /tmp/" + name, Stdin: &content}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := c.StartBackground(ctx, e.id, api.ExecRequest{Command: fmt.Sprintf("exec python3 /tmp/fwdapp.py %d", appPort)}); err != nil {
		b.Fatal(err)
	}
	// Warm up and wait for the app: one request from inside.
	if _, err := inside(ctx, c, e.id, 1, 1); err != nil {
		b.Fatal(err)
	}
	bin, err := testserver.Binary()
	if err != nil {
		b.Fatal(err)
	}
	fwd := exec.Command(bin, "forward", "--json", e.id, fmt.Sprint(appPort), "0")
	fwd.Env = append(os.Environ(), "CHASER_API_URL="+e.url, "CHASER_API_KEY="+e.key)
	out, err := fwd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := fwd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		fwd.Process.Signal(os.Interrupt)
		fwd.Wait()
	})
	var info struct {
		LocalPort int `json:"local_port"`
	}
	if err := json.NewDecoder(out).Decode(&info); err != nil {
		b.Fatalf("chaser forward: %v", err)
	}
	e.localPort = info.LocalPort
	return e
}

// clientPy runs n keep-alive GETs on each of c connections from inside the
// sandbox and prints the elapsed seconds and every latency.
const clientPy = `import http.client, json, sys, threading, time
n, c, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
lat = []
lock = threading.Lock()
def work():
    conn = http.client.HTTPConnection("127.0.0.1", port)
    mine = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", "/hello")
        conn.getresponse().read()
        mine.append(time.perf_counter() - t)
    with lock:
        lat.extend(mine)
for i in range(3):
    try:
        http.client.HTTPConnection("127.0.0.1", port).request("GET", "/hello"); break
    except OSError:
        time.sleep(0.5)
ts = [threading.Thread(target=work) for _ in range(c)]
start = time.perf_counter()
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps({"elapsed": time.perf_counter() - start, "lat": lat}))
`

type result struct {
	Elapsed float64   `json:"elapsed"`
	Lat     []float64 `json:"lat"`
}

func inside(ctx context.Context, c *client.Client, id string, n, conc int) (result, error) {
	res, err := c.Exec(ctx, id, api.ExecRequest{Command: fmt.Sprintf("python3 /tmp/client.py %d %d %d", n, conc, appPort), TimeoutMS: 600_000})
	if err != nil {
		return result{}, err
	}
	if res.ExitCode != 0 {
		return result{}, fmt.Errorf("client in sandbox: exit %d: %s", res.ExitCode, res.Stderr)
	}
	var r result
	err = json.Unmarshal([]byte(res.Stdout), &r)
	return r, err
}

// outside runs n keep-alive GETs on each of conc connections to url.
func outside(b *testing.B, url, key string, n, conc int) result {
	var mu sync.Mutex
	var r result
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			mine := make([]float64, 0, n)
			for range n {
				req, _ := http.NewRequest("GET", url, nil)
				if key != "" {
					req.Header.Set("Authorization", "Bearer "+key)
				}
				t := time.Now()
				resp, err := cl.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != "hello" {
					b.Errorf("%d %q", resp.StatusCode, body)
					return
				}
				mine = append(mine, time.Since(t).Seconds())
			}
			mu.Lock()
			r.Lat = append(r.Lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	r.Elapsed = time.Since(start).Seconds()
	return r
}

func report(b *testing.B, r result) {
	if len(r.Lat) == 0 {
		b.Fatal("no requests measured")
	}
	slices.Sort(r.Lat)
	b.ReportMetric(float64(len(r.Lat))/r.Elapsed, "req/s")
	b.ReportMetric(r.Lat[len(r.Lat)/2]*1e6, "p50-µs")
	b.ReportMetric(0, "ns/op") // the loop runs inside the sandbox for "direct"; ns/op would mislead
}

func BenchmarkForward(b *testing.B) {
	e := setupForward(b)
	path := fmt.Sprintf("%s/s/%s/forward/%d/hello", e.url, e.id, appPort)
	local := fmt.Sprintf("http://127.0.0.1:%d/hello", e.localPort)
	c := client.New(e.url, e.key)
	for _, conc := range []int{1, 8} {
		per := func(b *testing.B) int { return max(1, b.N/conc) }
		b.Run(fmt.Sprintf("direct-in-sandbox/conns=%d", conc), func(b *testing.B) {
			r, err := inside(b.Context(), c, e.id, per(b), conc)
			if err != nil {
				b.Fatal(err)
			}
			report(b, r)
		})
		b.Run(fmt.Sprintf("path-style/conns=%d", conc), func(b *testing.B) {
			report(b, outside(b, path, e.key, per(b), conc))
		})
		// The same URL without credentials (a public port) shows what the
		// per-request key check costs.
		b.Run(fmt.Sprintf("path-style-public/conns=%d", conc), func(b *testing.B) {
			if _, err := c.SetPortPublic(b.Context(), e.id, appPort, true); err != nil {
				b.Fatal(err)
			}
			defer c.SetPortPublic(context.Background(), e.id, appPort, false)
			report(b, outside(b, path, "", per(b), conc))
		})
		b.Run(fmt.Sprintf("chaser-forward/conns=%d", conc), func(b *testing.B) {
			report(b, outside(b, local, "", per(b), conc))
		})
	}
}
