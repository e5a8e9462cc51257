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
	}
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

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
