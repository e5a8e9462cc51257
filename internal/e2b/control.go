package e2b

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
	"github.com/chaserhq/chaser/internal/store"
)

// DefaultTimeout is a sandbox's timeout when the create names none (E2B's).
const DefaultTimeout = 300 * time.Second

// TemplateBase is E2B's default template: Chaser's default image.
const TemplateBase = "base"

// workspacePrefix marks a templateID naming a Chaser workspace.
const workspacePrefix = "workspace:"

type authedHandler func(w http.ResponseWriter, r *http.Request, acct store.Account)

func (h *Handler) controlRoutes() {
	m := h.control
	m.HandleFunc("POST /sandboxes", h.authed(h.create))
	m.HandleFunc("POST /v2/sandboxes", h.authed(h.create))
	m.HandleFunc("GET /sandboxes", h.authed(h.list))
	m.HandleFunc("GET /v2/sandboxes", h.authed(h.list))
	m.HandleFunc("GET /sandboxes/{id}", h.authed(h.info))
	m.HandleFunc("DELETE /sandboxes/{id}", h.authed(h.kill))
	m.HandleFunc("POST /sandboxes/{id}/timeout", h.authed(h.setTimeout))
	m.HandleFunc("POST /sandboxes/{id}/connect", h.authed(h.connect))
	m.HandleFunc("POST /v2/sandboxes/{id}/connect", h.authed(h.connect))
	m.HandleFunc("POST /sandboxes/{id}/resume", h.authed(h.connect))
	m.HandleFunc("POST /sandboxes/{id}/refreshes", h.authed(h.refresh))
	m.HandleFunc("GET /sandboxes/{id}/metrics", h.authed(h.metrics))
	m.HandleFunc("POST /sandboxes/{id}/pause", h.authed(h.unsupported("pausing a sandbox")))
	m.HandleFunc("PUT /sandboxes/{id}/network", h.authed(h.unsupported("changing a sandbox's network")))
	m.HandleFunc("POST /sandboxes/{id}/snapshots", h.authed(h.unsupported("snapshots")))
	m.HandleFunc("POST /sandboxes/{id}/fork", h.authed(h.unsupported("forking a sandbox")))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.writeAPIError(w, r, errdefs.New(errdefs.ErrNotFound, "no E2B route for "+r.Method+" "+r.URL.Path))
	})
}

// authed authenticates a control-plane call: the SDK sends the API key as
// X-API-KEY (E2B_API_KEY); a Bearer header is taken too.
func (h *Handler) authed(f authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-API-Key")
		if key == "" {
			if scheme, k, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
				key = strings.TrimSpace(k)
			}
		}
		if key == "" {
			h.writeAPIError(w, r, errdefs.New(errdefs.ErrUnauthenticated, "missing API key: set E2B_API_KEY to a Chaser API key (sent as X-API-KEY)"))
			return
		}
		acct, err := h.accounts.Authenticate(r.Context(), key)
		if err != nil {
			h.writeAPIError(w, r, err)
			return
		}
		f(w, r, acct)
	}
}

// createRequest is E2B's NewSandbox (v1 and v2).
type createRequest struct {
	TemplateID          string            `json:"templateID"`
	Timeout             *int64            `json:"timeout"`
	Metadata            map[string]string `json:"metadata"`
	EnvVars             map[string]string `json:"envVars"`
	AllowInternetAccess *bool             `json:"allow_internet_access"`
	Secure              *bool             `json:"secure"`
	AutoPause           *bool             `json:"autoPause"`
	Network             *struct {
		AllowPublicTraffic *bool `json:"allowPublicTraffic"`
	} `json:"network"`
	// What the SDKs may send that Chaser does not offer: refused by name
	// when asked for, rather than as unknown fields.
	AutoPauseMemory *bool                   `json:"autoPauseMemory"`
	AutoResume      *struct{ Enabled bool } `json:"autoResume"`
	MCP             json.RawMessage         `json:"mcp"`
	IAM             json.RawMessage         `json:"iam"`
	VolumeMounts    []json.RawMessage       `json:"volumeMounts"`
}

// unsupported names what a create asks for that Chaser does not offer.
func (c createRequest) unsupported() string {
	switch {
	case c.AutoPause != nil && *c.AutoPause, c.AutoPauseMemory != nil, c.AutoResume != nil && c.AutoResume.Enabled:
		return "autoPause, autoPauseMemory and autoResume are not supported: Chaser sandboxes cannot be paused; leave lifecycle.onTimeout unset or 'kill'"
	case len(c.MCP) > 0 && string(c.MCP) != "null":
		return "mcp is not supported: Chaser runs no MCP gateway in sandboxes (Chaser's own MCP endpoint is /mcp on the server)"
	case len(c.IAM) > 0 && string(c.IAM) != "null":
		return "iam is not supported by Chaser"
	case len(c.VolumeMounts) > 0:
		return "volumeMounts are not supported: use a Chaser workspace (templateID workspace:NAME) for a persistent disk"
	}
	return ""
}

// sandboxAnswer is E2B's Sandbox: the answer of create and connect.
type sandboxAnswer struct {
	SandboxID          string  `json:"sandboxID"`
	TemplateID         string  `json:"templateID"`
	ClientID           string  `json:"clientID"`
	EnvdVersion        string  `json:"envdVersion"`
	EnvdAccessToken    string  `json:"envdAccessToken"`
	TrafficAccessToken *string `json:"trafficAccessToken"`
	Domain             *string `json:"domain"`
}

// clientID is what E2B calls the node a sandbox runs on.
const clientID = "chaser"

func (h *Handler) create(w http.ResponseWriter, r *http.Request, acct store.Account) {
	var req createRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		h.writeAPIError(w, r, err)
		return
	}
	timeout := DefaultTimeout
	if req.Timeout != nil {
		if *req.Timeout <= 0 || *req.Timeout > int64(24*time.Hour/time.Second) {
			h.writeAPIError(w, r, errdefs.New(errdefs.ErrInvalidArgument, "timeout must be between 1 and 86400 seconds"))
			return
		}
		timeout = time.Duration(*req.Timeout) * time.Second
	}
	if msg := req.unsupported(); msg != "" {
		h.writeAPIError(w, r, errdefs.New(errdefs.ErrInvalidArgument, msg))
		return
	}
	if req.TemplateID == "" {
		req.TemplateID = TemplateBase
	}
	cs := api.CreateSessionRequest{Type: api.SessionTypeSandbox}
	switch {
	case req.TemplateID == TemplateBase:
		cs.Ephemeral = true
	case strings.HasPrefix(req.TemplateID, workspacePrefix):
		cs.Workspace = strings.TrimPrefix(req.TemplateID, workspacePrefix)
	default:
		cs.Image, cs.Ephemeral = req.TemplateID, true
	}
	// allow_internet_access (E2B's default: true) is network mode internet
	// where the tier allows egress; the SDK asks for it by default, so
	// where the tier forbids it the sandbox is made without rather than
	// refused. False is mode none. A workspace fixes its own network.
	internet := req.AllowInternetAccess == nil || *req.AllowInternetAccess
	if cs.Workspace == "" {
		mode := api.NetworkNone
		if internet {
			mode = h.sandboxes.Egress(acct)
		}
		cs.Network = &api.Network{Mode: mode}
	}
	rec := record{TemplateID: req.TemplateID, Metadata: req.Metadata, EnvVars: req.EnvVars}
	if req.Network != nil && req.Network.AllowPublicTraffic != nil && !*req.Network.AllowPublicTraffic {
		rec.Private = true
	}
	data, _ := json.Marshal(rec)
	sess, created, err := h.sandboxes.Create(r.Context(), acct, cs)
	if err != nil {
		h.writeAPIError(w, r, err)
		return
	}
	if !created {
		h.writeAPIError(w, r, errdefs.New(errdefs.ErrFailedPrecondition, fmt.Sprintf("workspace %q already has a running session (%s): connect to it instead", cs.Workspace, sess.ID)))
		return
	}
	if !internet && sess.Network != nil && sess.Network.Mode == api.NetworkInternet {
		err = errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("allow_internet_access false: workspace %q was made with network mode internet, which its sandboxes keep; use a template without egress", cs.Workspace))
	}
	if err == nil {
		err = h.sandboxes.SetE2B(r.Context(), acct, sess.ID, string(data))
	}
	if err == nil {
		_, err = h.sandboxes.Extend(r.Context(), acct, sess.ID, timeout)
	}
	if err != nil {
		if derr := h.sandboxes.Delete(r.Context(), acct, sess.ID); derr != nil {
			h.log.Error("delete half-made sandbox", "session_id", sess.ID, "err", derr)
		}
		h.writeAPIError(w, r, err)
		return
	}
	h.log.Info("e2b sandbox created", "session_id", sess.ID, "template", req.TemplateID)
	httpjson.Write(w, http.StatusCreated, h.answer(r, sess.ID, rec))
}

func (h *Handler) answer(r *http.Request, id string, rec record) sandboxAnswer {
	a := sandboxAnswer{SandboxID: id, TemplateID: rec.TemplateID, ClientID: clientID, EnvdVersion: EnvdVersion,
		EnvdAccessToken: h.envdToken(id), Domain: h.publicDomain(r)}
	if rec.Private {
		t := h.trafficToken(id)
		a.TrafficAccessToken = &t
	}
	return a
}

// publicDomain is the domain the SDK builds host-style addresses with
// (getHost: PORT-ID.DOMAIN): --domain, with the port the client used;
// null without --domain.
func (h *Handler) publicDomain(r *http.Request) *string {
	d := h.domain()
	if d == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(r.Host); err == nil && port != "" && port != "80" && port != "443" {
		d += ":" + port
	}
	return &d
}

// live returns the record of one of the account's running sessions; a
// session that ended is not found, as E2B forgets a killed sandbox.
func (h *Handler) live(r *http.Request, acct store.Account) (store.Session, error) {
	id := r.PathValue("id")
	x, err := h.sandboxes.Record(r.Context(), acct, id)
	if err == nil && (x.EndedAt != nil || x.Reason != "" || x.Status != api.StatusRunning) {
		err = errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("sandbox %s not found (it ended: %s)", id, x.Reason))
	}
	if err != nil && errors.Is(err, errdefs.ErrNotFound) {
		return x, errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("sandbox %s not found", id))
	}
	return x, err
}

func (h *Handler) kill(w http.ResponseWriter, r *http.Request, acct store.Account) {
	x, err := h.live(r, acct)
	if err == nil {
		err = h.sandboxes.Delete(r.Context(), acct, x.ID)
	}
	if err != nil {
		h.writeAPIError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type timeoutRequest struct {
	Timeout *int64 `json:"timeout"`
}

// extend applies a timeout in seconds (none: leave the expiry).
func (h *Handler) extend(r *http.Request, acct store.Account, id string, secs *int64) error {
	if secs == nil {
		return nil
	}
	if *secs <= 0 || *secs > int64(24*time.Hour/time.Second) {
		return errdefs.New(errdefs.ErrInvalidArgument, "timeout must be between 1 and 86400 seconds")
	}
	_, err := h.sandboxes.Extend(r.Context(), acct, id, time.Duration(*secs)*time.Second)
	return err
}

// setTimeout answers POST /sandboxes/{id}/timeout {"timeout": seconds}.
func (h *Handler) setTimeout(w http.ResponseWriter, r *http.Request, acct store.Account) {
	var req timeoutRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		h.writeAPIError(w, r, err)
		return
	}
	if req.Timeout == nil {
		h.writeAPIError(w, r, errdefs.New(errdefs.ErrInvalidArgument, `"timeout" (seconds) is required`))
		return
	}
	h.moveExpiry(w, r, acct, req.Timeout)
}

// refresh answers POST /sandboxes/{id}/refreshes {"duration"?: seconds}.
func (h *Handler) refresh(w http.ResponseWriter, r *http.Request, acct store.Account) {
	var req struct {
		Duration *int64 `json:"duration"`
	}
	if err := httpjson.Decode(w, r, &req); err != nil {
		h.writeAPIError(w, r, err)
		return
	}
	h.moveExpiry(w, r, acct, req.Duration)
}

// moveExpiry extends the live sandbox of the request by secs (see extend)
// and answers 204.
func (h *Handler) moveExpiry(w http.ResponseWriter, r *http.Request, acct store.Account, secs *int64) {
	x, err := h.live(r, acct)
	if err == nil {
		err = h.extend(r, acct, x.ID, secs)
	}
	if err != nil {
		h.writeAPIError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// connect answers Sandbox.connect: a running sandbox, its timeout moved
// when one is given. Chaser cannot pause, so there is nothing to resume: a
// sandbox that ended is not found.
func (h *Handler) connect(w http.ResponseWriter, r *http.Request, acct store.Account) {
	var req timeoutRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		h.writeAPIError(w, r, err)
		return
	}
	x, err := h.live(r, acct)
	if err == nil {
		err = h.extend(r, acct, x.ID, req.Timeout)
	}
	if err != nil {
		h.writeAPIError(w, r, err)
		return
	}
	rec, _ := recordOf(x)
	status := http.StatusOK
	if strings.HasPrefix(r.URL.Path, "/sandboxes/") && strings.HasSuffix(r.URL.Path, "/resume") {
		status = http.StatusCreated
	}
	httpjson.Write(w, status, h.answer(r, x.ID, rec))
}

// listed is E2B's ListedSandbox; detail adds SandboxDetail's fields.
type listed struct {
	SandboxID    string            `json:"sandboxID"`
	TemplateID   string            `json:"templateID"`
	Alias        *string           `json:"alias,omitempty"`
	ClientID     string            `json:"clientID"`
	StartedAt    time.Time         `json:"startedAt"`
	EndAt        time.Time         `json:"endAt"`
	CPUCount     int64             `json:"cpuCount"`
	MemoryMB     int64             `json:"memoryMB"`
	DiskSizeMB   int64             `json:"diskSizeMB"`
	Metadata     map[string]string `json:"metadata"`
	State        string            `json:"state"`
	EnvdVersion  string            `json:"envdVersion"`
	VolumeMounts []struct{}        `json:"volumeMounts"`
}

type detail struct {
	listed
	EnvdAccessToken string  `json:"envdAccessToken"`
	Domain          *string `json:"domain"`
}

func (h *Handler) listedOf(acct store.Account, x store.Session) listed {
	rec, _ := recordOf(x)
	res := x.Resources
	tier := h.sandboxes.Tier(acct)
	if res.MilliCPUs == 0 {
		res = store.Resources{MilliCPUs: tier.Defaults.MilliCPUs, MemoryMB: tier.Defaults.MemoryMB, DiskMB: tier.Defaults.DiskMB}
	}
	md := rec.Metadata
	if md == nil {
		md = map[string]string{}
	}
	return listed{SandboxID: x.ID, TemplateID: rec.TemplateID, ClientID: clientID, StartedAt: x.CreatedAt, EndAt: x.ExpiresAt,
		CPUCount: max(1, (res.MilliCPUs+999)/1000), MemoryMB: res.MemoryMB, DiskSizeMB: res.DiskMB, Metadata: md,
		State: "running", EnvdVersion: EnvdVersion, VolumeMounts: []struct{}{}}
}

func (h *Handler) info(w http.ResponseWriter, r *http.Request, acct store.Account) {
	x, err := h.live(r, acct)
	if err != nil {
		h.writeAPIError(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, detail{listed: h.listedOf(acct, x), EnvdAccessToken: h.envdToken(x.ID), Domain: h.publicDomain(r)})
}

// Listing limits.
const (
	DefaultListLimit = 100
	MaxListLimit     = 100
)

// list serves GET /v2/sandboxes (and v1's GET /sandboxes): the account's
// running sandboxes, every Chaser session included, filtered by state,
// metadata, startedAfter and template, newest first (order=asc: oldest
// first), paged with nextToken and X-Next-Token.
func (h *Handler) list(w http.ResponseWriter, r *http.Request, acct store.Account) {
	q := r.URL.Query()
	limit := DefaultListLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxListLimit {
			h.writeAPIError(w, r, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("limit must be between 1 and %d", MaxListLimit)))
			return
		}
		limit = n
	}
	// nextToken is the position of the last sandbox of the page before:
	// its start time and id, so that it holds when that one ended since.
	var after *listPos
	if tok := q.Get("nextToken"); tok != "" {
		p, ok := parseListPos(tok)
		if !ok {
			h.writeAPIError(w, r, errdefs.New(errdefs.ErrInvalidArgument, "nextToken is not one this server gave"))
			return
		}
		after = &p
	}
	want, err := metadataFilter(q.Get("metadata"))
	if err != nil {
		h.writeAPIError(w, r, err)
		return
	}
	desc := true // E2B's default: newest first
	switch q.Get("order") {
	case "", "desc":
	case "asc":
		desc = false
	default:
		h.writeAPIError(w, r, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("unknown order %q (use asc or desc)", q.Get("order"))))
		return
	}
	var startedAfter time.Time
	if v := q.Get("startedAfter"); v != "" {
		if startedAfter, err = time.Parse(time.RFC3339Nano, v); err != nil {
			h.writeAPIError(w, r, errdefs.New(errdefs.ErrInvalidArgument, "startedAfter must be an RFC 3339 time"))
			return
		}
	}
	template := q.Get("template")
	running := true
	if states := q["state"]; len(states) > 0 {
		running = false
		for _, s := range states {
			for _, st := range strings.Split(s, ",") {
				switch st {
				case "running":
					running = true
				case "paused":
				default:
					h.writeAPIError(w, r, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("unknown state %q (use running or paused)", st)))
					return
				}
			}
		}
	}
	out := []listed{}
	if running {
		all, err := h.sandboxes.Records(r.Context(), acct)
		if err != nil {
			h.writeAPIError(w, r, err)
			return
		}
		// before tells whether a comes before b in the list's order.
		before := func(a, b listPos) bool {
			if desc {
				a, b = b, a
			}
			return a.at.Before(b.at) || a.at.Equal(b.at) && a.id < b.id
		}
		sort.Slice(all, func(i, j int) bool { return before(posOf(all[i]), posOf(all[j])) })
		last := listPos{}
		for _, x := range all {
			if after != nil && !before(*after, posOf(x)) {
				continue
			}
			if x.Status != api.StatusRunning || x.Reason != "" {
				continue
			}
			l := h.listedOf(acct, x)
			if !matches(l.Metadata, want) || x.CreatedAt.Before(startedAfter) || template != "" && l.TemplateID != template {
				continue
			}
			if len(out) == limit {
				w.Header().Set("X-Next-Token", last.token())
				break
			}
			out = append(out, l)
			last = posOf(x)
		}
	}
	httpjson.Write(w, http.StatusOK, out)
}

// listPos is a sandbox's place in a list: its start time, then its id.
type listPos struct {
	at time.Time
	id string
}

func posOf(x store.Session) listPos { return listPos{at: x.CreatedAt, id: x.ID} }

func (p listPos) token() string {
	return base64.RawURLEncoding.EncodeToString([]byte(p.at.UTC().Format(time.RFC3339Nano) + " " + p.id))
}

func parseListPos(tok string) (listPos, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return listPos{}, false
	}
	at, id, ok := strings.Cut(string(b), " ")
	t, err := time.Parse(time.RFC3339Nano, at)
	if !ok || err != nil || id == "" {
		return listPos{}, false
	}
	return listPos{at: t, id: id}, true
}

// metadataFilter reads the metadata query: "k=v&k2=v2", keys and values
// URI-encoded once more by the SDK.
func metadataFilter(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	vals, err := url.ParseQuery(s)
	if err != nil {
		return nil, errdefs.New(errdefs.ErrInvalidArgument, "metadata filter must be key=value pairs joined by &")
	}
	out := map[string]string{}
	for k, v := range vals {
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		val := v[0]
		if uv, err := url.QueryUnescape(val); err == nil {
			val = uv
		}
		out[k] = val
	}
	return out, nil
}

func matches(md, want map[string]string) bool {
	for k, v := range want {
		if got, ok := md[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// metricSample is one of E2B's SandboxMetric.
type metricSample struct {
	Timestamp  time.Time `json:"timestamp"`
	TimestampS int64     `json:"timestampUnix"`
	CPUCount   int       `json:"cpuCount"`
	CPUUsedPct float64   `json:"cpuUsedPct"`
	MemUsed    int64     `json:"memUsed"`
	MemTotal   int64     `json:"memTotal"`
	MemCache   int64     `json:"memCache"`
	DiskUsed   int64     `json:"diskUsed"`
	DiskTotal  int64     `json:"diskTotal"`
}

// metrics answers GET /sandboxes/{id}/metrics with one sample taken now
// by the sandbox's agent: Chaser keeps no history, so start and end are
// not honoured beyond that.
func (h *Handler) metrics(w http.ResponseWriter, r *http.Request, acct store.Account) {
	x, err := h.live(r, acct)
	if err != nil {
		h.writeAPIError(w, r, err)
		return
	}
	c, _, err := h.sandboxes.Agent(r.Context(), acct, x.ID)
	if err != nil {
		h.writeAPIError(w, r, err)
		return
	}
	s, err := c.Stats(r.Context())
	if err != nil {
		h.writeAPIError(w, r, err)
		return
	}
	// The agent sees the kernel's figures where no cgroup is mounted in
	// the sandbox (runc): memory used is the runtime's count of the
	// sandbox's cgroup, and the totals are the session's limits.
	sample := metricSample{
		Timestamp: s.Timestamp, TimestampS: s.Timestamp.Unix(), CPUCount: s.CPUCount, CPUUsedPct: s.CPUUsedPct,
		MemUsed: s.MemUsed, MemTotal: s.MemTotal, MemCache: s.MemCache, DiskUsed: s.DiskUsed, DiskTotal: s.DiskTotal,
	}
	if st, err := h.sandboxes.Stats(r.Context(), acct, x.ID); err == nil && st.MemoryBytes > 0 {
		sample.MemUsed = st.MemoryBytes
		// The page cache is part of the cgroup's count: where the agent
		// saw the kernel's cache (the host's), bound it by that.
		sample.MemCache = min(sample.MemCache, sample.MemUsed)
	}
	if res := x.Resources; res.MemoryMB > 0 {
		sample.MemTotal = min(sample.MemTotal, res.MemoryMB<<20)
		sample.MemUsed = min(sample.MemUsed, sample.MemTotal)
		sample.MemCache = min(sample.MemCache, sample.MemTotal)
	}
	if res := x.Resources; res.MilliCPUs > 0 && s.CPUCount > 0 {
		// The agent's percentage is of the CPUs it sees; E2B's is of the
		// sandbox's, its quota.
		sample.CPUCount = min(sample.CPUCount, int((res.MilliCPUs+999)/1000))
		used := s.CPUUsedPct / 100 * float64(s.CPUCount)
		sample.CPUUsedPct = math.Round(min(used/(float64(res.MilliCPUs)/1000)*100, 100)*100) / 100
	}
	httpjson.Write(w, http.StatusOK, []metricSample{sample})
}

// unsupported answers what Chaser cannot do (pause, snapshots, forks,
// network changes): 404 for a sandbox that is not the account's, else 501,
// which the SDK raises as a SandboxError carrying the message.
func (h *Handler) unsupported(what string) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, acct store.Account) {
		if _, err := h.live(r, acct); err != nil {
			h.writeAPIError(w, r, err)
			return
		}
		h.writeAPIError(w, r, errdefs.New(errdefs.ErrNotImplemented, what+" is not supported by Chaser"))
	}
}
