package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
)

// e2bDir holds the E2B test's npm project: the `e2b` SDK, pinned.
const e2bDir = "testdata/e2b"

// e2bFlow is what testdata/e2b/flow.mjs reports.
type e2bFlow struct {
	Last, Error        string
	SandboxID          string
	CreateToFirstRunMs float64
	CreateMs           float64
	// The same for a second sandbox, later in the flow (the SDK warm).
	CreateToFirstRunWarmMs float64
	Echo                   struct {
		Stdout   string
		ExitCode int
	}
	Env, RootUID string
	Exit3        struct {
		Error              string
		IsCommandExitError bool
		ExitCode           int
		Stdout             string
	}
	Read                            string
	List                            []struct{ Name, Type, Path string }
	ReadMissing                     string
	BgPid                           int
	BgListed                        bool
	BgKilled                        bool
	KillUnknownPid                  bool
	PtyAnswered, PtySize, PtyKilled bool
	Host                            string
	HostStatus                      int
	HostBody                        string
	EndAtInS                        int
	InfoMetadata                    map[string]string
	Listed                          []string
	ListedOther                     int
	TrueMedianMs                    float64
	RunTimeout                      string
	SleepsProbe, SleepsLeft         int
	Metrics                         []struct {
		Timestamp                                        int64
		CPUCount                                         int     `json:"cpuCount"`
		CPUUsedPct                                       float64 `json:"cpuUsedPct"`
		MemUsed, MemTotal, MemCache, DiskUsed, DiskTotal int64
	}
	Watched, WatchedRecursive []struct{ Name, Type string }
	IsRunningBefore           bool
	KillAgain                 bool
	ConnectKilled             string
	BadKey                    struct {
		Error                 string
		IsAuthenticationError bool
	}
	KillUnknown bool
	InfoUnknown struct {
		Error           string
		IsNotFoundError bool
	}
	KillOther    bool
	ConnectOther struct {
		Error           string
		IsNotFoundError bool
	}
	Paged        []string
	SecondID     string
	PausedListed int
	OwnListed    *struct {
		TemplateID         string `json:"templateId"`
		State              string
		Started, EndsLater bool
		CPUCount           int `json:"cpuCount"`
		MemoryMB           int `json:"memoryMB"`
	}
	OwnRun string
	Pause  struct {
		Error, Message string
	}
	UnknownUser, UnknownUserRead string
	RateLimited                  string
	// A fork storm at the pids limit.
	StormRunning, StormKilled bool
	StormRun, StormConnect    string
	StormSeccomp              string
	StormKillMs               float64
}

// TestE2BSDK drives a Chaser server with the unmodified `e2b` npm SDK,
// pointed at it by E2B_API_URL and E2B_SANDBOX_URL: the whole flow of
// issue 16 (create, commands, files, background commands, a terminal,
// getHost through host-style forwarding, setTimeout, list with a metadata
// filter, kill, connect to a killed one) and the error paths (bad key,
// unknown sandbox, exit 3, another account's sandbox). It also reports
// create-to-first-result and the round trip of `true`, next to Chaser's
// own API in the same run.
func TestE2BSDK(t *testing.T) {
	if _, err := os.Stat(e2bDir + "/node_modules/e2b/package.json"); err != nil {
		t.Fatalf("the e2b SDK is missing in %s: run `. scripts/deps.sh && install_deps` (cd integration/testdata/e2b && npm ci)", e2bDir)
	}
	cfg := writeConfig(t, "tiers:\n  free: {max_sandboxes: 1}\n")
	s := newServer(t, "--domain", testDom, "--config", cfg)
	key := s.account(t, api.TierPaid)
	// other has the one sandbox its tier allows: an E2B create with its
	// key is rate limited.
	other := s.account(t, api.TierFree)
	otherID := s.sandbox(t, other)
	ownID := s.sandbox(t, key) // a session of Chaser's own API

	run := fmt.Sprintf("run-%d", time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "flow.mjs")
	cmd.Dir = e2bDir
	cmd.Env = append(os.Environ(), "E2B_API_URL="+s.URL, "E2B_SANDBOX_URL="+s.URL, "E2B_API_KEY="+key,
		"E2B_DOMAIN=", "RUN_ID="+run, "OTHER_ID="+otherID, "OWN_ID="+ownID, "LIMITED_KEY="+other)
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("node flow.mjs: %v\n%s", err, b)
	}
	var got e2bFlow
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("flow output: %v\n%s", err, b)
	}
	t.Logf("flow: %s", b)
	if got.Error != "" || got.Last != "done" {
		t.Fatalf("the flow stopped at %q: %s", got.Last, got.Error)
	}
	u, _ := url.Parse(s.URL)
	checks := []struct {
		what      string
		got, want any
	}{
		{"commands.run('echo hi')", got.Echo.Stdout, "hi\n"},
		{"its exit code", got.Echo.ExitCode, 0},
		{"envVars of create reach commands", got.Env, "hello-env\n"},
		{"user root", got.RootUID, "0\n"},
		{"exit 3 raises CommandExitError", got.Exit3.IsCommandExitError, true},
		{"its exitCode", got.Exit3.ExitCode, 3},
		{"its stdout", got.Exit3.Stdout, "out\n"},
		{"files.read of files.write", got.Read, "hello from e2b"},
		{"reading a missing file", got.ReadMissing, "FileNotFoundError"},
		{"background command listed", got.BgListed, true},
		{"background command killed", got.BgKilled, true},
		{"kill of an unknown pid", got.KillUnknownPid, false},
		{"pty answers input", got.PtyAnswered, true},
		{"pty resize reaches stty", got.PtySize, true},
		{"pty killed", got.PtyKilled, true},
		{"getHost", got.Host, "8000-" + got.SandboxID + "." + testDom + ":" + u.Port()},
		{"host-style status", got.HostStatus, 200},
		{"host-style body", got.HostBody, "hello from e2b"},
		{"getInfo metadata", got.InfoMetadata, map[string]string{"purpose": "chaser-e2b-test", "run": run}},
		{"list with the metadata filter", got.Listed, []string{got.SandboxID}},
		{"list with another filter", got.ListedOther, 0},
		{"isRunning", got.IsRunningBefore, true},
		{"Sandbox.kill of a killed one", got.KillAgain, false},
		{"Sandbox.connect of a killed one", got.ConnectKilled, "SandboxNotFoundError"},
		{"bad key", got.BadKey.IsAuthenticationError, true},
		{"kill of an unknown sandbox", got.KillUnknown, false},
		{"getInfo of an unknown sandbox", got.InfoUnknown.IsNotFoundError, true},
		{"kill of another account's sandbox", got.KillOther, false},
		{"connect to another account's sandbox", got.ConnectOther.IsNotFoundError, true},
		{"commands.run past its timeoutMs", got.RunTimeout, "TimeoutError"},
		{"a running sleep is counted", got.SleepsProbe >= 1, true},
		{"its process is killed", got.SleepsLeft, 0},
		{"Sandbox.list paged by one, newest first", got.Paged, []string{got.SecondID, got.SandboxID}},
		{"Sandbox.list of paused ones", got.PausedListed, 0},
		{"a Chaser session driven after Sandbox.connect", got.OwnRun, "own\n"},
		{"pause raises", got.Pause.Error, "SandboxError"},
		{"commands.run as an unknown user", got.UnknownUser, "InvalidArgumentError"},
		{"files.read as an unknown user", got.UnknownUserRead, "InvalidArgumentError"},
		{"create beyond the tier's sandboxes", got.RateLimited, "RateLimitError"},
		{"a later sandbox's agent filtered by the compiled seccomp program", got.StormSeccomp, "/.chaser/agent agent --seccomp-fd 4 \nSeccomp:\t2\nrefused\n"},
		{"isRunning during a fork storm at the pids limit", got.StormRunning, true},
		{"kill of the storm's sandbox", got.StormKilled, true},
		{"connect to it after", got.StormConnect, "SandboxNotFoundError"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.what, c.got, c.want)
		}
	}
	// A command during the storm gets a free slot now and then; otherwise
	// the SDK raises the 429's message.
	if got.StormRun != "hi\n" && !strings.Contains(got.StormRun, "no free process slots") {
		t.Errorf("commands.run during the storm: %q", got.StormRun)
	}
	if len(got.List) != 1 || got.List[0].Name != "hello.txt" || got.List[0].Type != "file" || got.List[0].Path != "/tmp/e2b/hello.txt" {
		t.Errorf("files.list = %+v", got.List)
	}
	if o := got.OwnListed; o == nil || o.TemplateID == "" || o.State != "running" || !o.Started || !o.EndsLater || o.CPUCount < 1 || o.MemoryMB <= 0 {
		t.Errorf("the Chaser session %s in Sandbox.list: %+v", ownID, o)
	}
	if !strings.Contains(got.Pause.Message, "not supported") {
		t.Errorf("pause's error says %q, want that Chaser does not support it", got.Pause.Message)
	}
	if len(got.Metrics) == 0 {
		t.Errorf("getMetrics returned no sample")
	}
	for _, m := range got.Metrics {
		if m.MemUsed <= 0 || m.MemTotal < m.MemUsed || m.CPUCount <= 0 || m.DiskTotal <= 0 || m.DiskUsed <= 0 || m.CPUUsedPct < 0 ||
			time.Since(time.UnixMilli(m.Timestamp)) > time.Minute {
			t.Errorf("getMetrics sample %+v", m)
		}
		// The sandbox's figures, not the host's (24 GiB, 2 cores here):
		// no tier allows more than 8 GiB.
		if m.MemTotal > 8<<30 || m.MemCache > m.MemUsed {
			t.Errorf("getMetrics reports the host's memory, not the sandbox's: %+v", m)
		}
	}
	watched := func(evs []struct{ Name, Type string }, name, typ string) bool {
		for _, e := range evs {
			if e.Name == name && e.Type == typ {
				return true
			}
		}
		return false
	}
	if !watched(got.Watched, "f", "create") || !watched(got.Watched, "f", "write") {
		t.Errorf("watchDir saw %+v, want create and write of f", got.Watched)
	}
	if watched(got.Watched, "sub/g", "create") {
		t.Errorf("a watch that is not recursive saw sub/g: %+v", got.Watched)
	}
	for _, w := range []struct{ name, typ string }{{"sub/h", "create"}, {"new", "create"}, {"new/deep", "create"}, {"new/deep/n", "create"}, {"f", "rename"}, {"f2", "chmod"}, {"f2", "remove"}} {
		if !watched(got.WatchedRecursive, w.name, w.typ) {
			t.Errorf("recursive watchDir saw %+v, want %s of %s", got.WatchedRecursive, w.typ, w.name)
		}
	}
	creates := 0
	for _, e := range got.WatchedRecursive {
		if e.Name == "new/deep/n" && e.Type == "create" {
			creates++
		}
	}
	if creates != 1 {
		t.Errorf("recursive watchDir saw new/deep/n created %d times: %+v", creates, got.WatchedRecursive)
	}
	if got.EndAtInS < 100 || got.EndAtInS > 125 {
		t.Errorf("after setTimeout(120 s) the sandbox ends in %d s", got.EndAtInS)
	}
	// The other account's sandbox is untouched.
	if sess, err := s.Client(other).GetSession(ctx, otherID); err != nil || sess.Status != api.StatusRunning {
		t.Errorf("the other account's session after the E2B calls: %+v, %v", sess, err)
	}
	// The E2B sandbox was an ordinary session, now ended.
	if sess, err := s.Client(key).GetSession(ctx, got.SandboxID); err != nil || sess.Status == api.StatusRunning {
		t.Errorf("the E2B sandbox's session after kill: %+v, %v", sess, err)
	}

	// Measure (reported, not asserted): Chaser's own API in the same run.
	c := s.Client(key)
	start := time.Now()
	sess, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: api.SessionTypeSandbox, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, sess.ID, api.ExecRequest{Command: "echo hi"}); err != nil {
		t.Fatal(err)
	}
	own := time.Since(start)
	// E2B's create alone, at the HTTP level, beside Chaser's.
	t0 := time.Now()
	made := s.e2bCreate(t, key, `{}`)
	e2bCreate := time.Since(t0)
	s.e2bKill(key, made.SandboxID)
	t0 = time.Now()
	sess2, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: api.SessionTypeSandbox, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	ownCreate := time.Since(t0)
	c.DeleteSession(ctx, sess2.ID)
	// The SDK's commands.run(cmd) runs /bin/bash -l -c cmd: a login
	// shell reads the profile first. Chaser's own API is measured with
	// "true" and with that same login shell.
	median := func(req api.ExecRequest) float64 {
		var times []time.Duration
		for range 20 {
			t0 := time.Now()
			if _, err := c.Exec(ctx, sess.ID, req); err != nil {
				t.Fatal(err)
			}
			times = append(times, time.Since(t0))
		}
		sortDurations(times)
		return float64(times[10].Microseconds()) / 1000
	}
	plain := median(api.ExecRequest{Command: "true"})
	login := median(api.ExecRequest{Argv: []string{"/bin/bash", "-l", "-c", "true"}})
	t.Logf("MEASURE create→first result: E2B SDK %.0f ms (Sandbox.create %.0f ms; the SDK's first request, Node cold), %.0f ms (a later one, warm), Chaser API %.0f ms", got.CreateToFirstRunMs, got.CreateMs, got.CreateToFirstRunWarmMs, float64(own.Microseconds())/1000)
	t.Logf("MEASURE create alone over HTTP: POST /v2/sandboxes %.0f ms, POST /v1/sessions %.0f ms", float64(e2bCreate.Microseconds())/1000, float64(ownCreate.Microseconds())/1000)
	t.Logf("MEASURE run('true') median of 20: E2B SDK %.1f ms, Chaser API %.1f ms (true) and %.1f ms (/bin/bash -l -c true, what the SDK runs)", got.TrueMedianMs, plain, login)
}

func sortDurations(d []time.Duration) {
	for i := 1; i < len(d); i++ {
		for j := i; j > 0 && d[j] < d[j-1]; j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}
