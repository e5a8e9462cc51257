package daemon

import (
	"strings"
	"testing"
)

func TestConnectionLimitsFromEnvironment(t *testing.T) {
	if cfg := Defaults(); cfg.MaxConnsPerIP != 512 || cfg.MaxConns < 64 {
		t.Fatalf("defaults: per ip %d, total %d", cfg.MaxConnsPerIP, cfg.MaxConns)
	}
	t.Setenv("CHASER_MAX_CONNS_PER_IP", "0")
	t.Setenv("CHASER_MAX_CONNS", "100")
	t.Setenv("CHASER_READ_HEADER_TIMEOUT", "3s")
	cfg := Defaults()
	if cfg.MaxConnsPerIP != 0 || cfg.MaxConns != 100 || cfg.ReadHeaderTimeout.Seconds() != 3 {
		t.Fatalf("from the environment: %+v", cfg)
	}
	for k, v := range map[string]string{"CHASER_MAX_CONNS": "many", "CHASER_MAX_CONNS_PER_IP": "-1", "CHASER_BODY_TIMEOUT": "0s", "CHASER_HTTP_IDLE_TIMEOUT": "soon"} {
		t.Run(k, func(t *testing.T) {
			t.Setenv(k, v)
			cfg := Defaults()
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), k) {
				t.Fatalf("%s=%s: got %v, want an error naming it", k, v, err)
			}
		})
	}
}
