package daemon

import "testing"

func TestValidateDomain(t *testing.T) {
	for d, ok := range map[string]bool{
		"": true, "localhost": true, "chaser.example.com": true, "a-b.c0": true,
		"http://x.com": false, "x.com:8080": false, "*.x.com": false, "a..b": false, "x_y.com": false,
	} {
		if err := validateDomain(d); (err == nil) != ok {
			t.Errorf("validateDomain(%q) = %v, want ok=%v", d, err, ok)
		}
	}
}
