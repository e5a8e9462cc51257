// Package metrics defines the Prometheus metrics of the server. One Metrics
// value is made by the daemon and passed to the components that update it.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the collectors.
type Metrics struct {
	reg *prometheus.Registry

	Requests        *prometheus.CounterVec
	RequestDuration *prometheus.HistogramVec
	SandboxCreate   prometheus.Histogram
	SandboxFailures prometheus.Counter
	SandboxDeletes  prometheus.Counter
	Commands        *prometheus.CounterVec
	ConnsRefused    *prometheus.CounterVec
	// The warm pool: creates served from it, creates it could not serve
	// (by reason: empty, unpooled, claim_failed), and the time to make
	// one warm sandbox. PoolSize registers the gauge of its size.
	PoolHits   prometheus.Counter
	PoolMisses *prometheus.CounterVec
	PoolRefill prometheus.Histogram
	// Host-wide admission: sandboxes it refused, by who asked (create,
	// pool), and the warm sandboxes the pool released to make room.
	HostRefusals *prometheus.CounterVec
	PoolYields   prometheus.Counter
}

// New returns metrics registered on a new registry, with Go and process
// collectors. active reports the number of running sandboxes.
func New(active func() float64) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chaser_http_requests_total", Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chaser_http_request_duration_seconds", Help: "HTTP request durations by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"route"}),
		SandboxCreate: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chaser_sandbox_create_seconds", Help: "Time to create a sandbox until its agent answers.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}),
		SandboxFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chaser_sandbox_create_failures_total", Help: "Sandbox creations that failed.",
		}),
		SandboxDeletes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chaser_sandbox_deletes_total", Help: "Sandboxes destroyed.",
		}),
		Commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chaser_commands_total", Help: "Commands started, by kind (sync, stream, background).",
		}, []string{"kind"}),
		ConnsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chaser_http_connections_refused_total", Help: "Connections refused (429) by the cap that was full: client or total.",
		}, []string{"reason"}),
		PoolHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chaser_pool_hits_total", Help: "Sessions whose sandbox came from the warm pool.",
		}),
		PoolMisses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chaser_pool_misses_total", Help: "Creates of throwaway sandboxes the warm pool did not serve, by reason: empty (its sandboxes were all taken), unpooled (no pool for that image, runtime and resources), claim_failed (a fresh sandbox was made instead).",
		}, []string{"reason"}),
		PoolRefill: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chaser_pool_refill_seconds", Help: "Time to make one warm sandbox of the pool.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}),
	}
	m.HostRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chaser_host_admission_refusals_total", Help: "Sandboxes host-wide admission refused, by who asked: create (a user's create, answered 429) or pool (a refill held back).",
	}, []string{"who"})
	m.PoolYields = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chaser_pool_yields_total", Help: "Warm sandboxes released to make room for users' creates (host admission).",
	})
	reg.MustRegister(m.PoolHits, m.PoolMisses, m.PoolRefill, m.HostRefusals, m.PoolYields)
	reg.MustRegister(m.Requests, m.RequestDuration, m.SandboxCreate, m.SandboxFailures, m.SandboxDeletes, m.Commands, m.ConnsRefused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chaser_sandboxes_running", Help: "Sandboxes running now."}, active),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// OpenConnections registers the gauge of open HTTP connections, read from
// open. Call it once per listener set.
func (m *Metrics) OpenConnections(open func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chaser_http_connections_open", Help: "HTTP connections held open now.",
	}, open))
}

// PoolSize registers the gauge of warm sandboxes waiting in the pool,
// read from size. Call it once.
func (m *Metrics) PoolSize(size func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chaser_pool_sandboxes", Help: "Warm sandboxes waiting in the pool to be claimed.",
	}, size))
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
