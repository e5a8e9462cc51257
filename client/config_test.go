package client

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLocalServerAt checks which URLs reach the server recorded in
// admin.addr: only its port, on its host or on this machine.
func TestLocalServerAt(t *testing.T) {
	for _, tc := range []struct {
		addr, url string
		want      bool
	}{
		{"127.0.0.1:8080", "http://127.0.0.1:8080", true},
		{"127.0.0.1:8080", "http://localhost:8080/", true},
		{"127.0.0.1:8080", "http://127.0.0.1:8081", false},
		{"127.0.0.1:8080", "http://10.1.2.3:8080", false},
		{"127.0.0.1:8080", "https://127.0.0.1:8080", false},
		{"127.0.0.1:80", "http://127.0.0.1", true},
		{"[::]:8080", "http://127.0.0.1:8080", true},
		{"0.0.0.0:8080", "http://localhost:8080", true},
		{"0.0.0.0:8080", "http://192.0.2.77:8080", false}, // not an address of this machine
		{"[::1]:8080", "http://[::1]:8080", true},
		{"garbage", "http://127.0.0.1:8080", false},
	} {
		f := filepath.Join(t.TempDir(), AddrFile)
		if err := os.WriteFile(f, []byte(tc.addr+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, got := localServerAt(f, tc.url); got != tc.want {
			t.Errorf("server on %s, client of %s: match = %v, want %v", tc.addr, tc.url, got, tc.want)
		}
	}
	if addr, ok := localServerAt(filepath.Join(t.TempDir(), AddrFile), "http://127.0.0.1:8080"); ok || addr != "" {
		t.Errorf("no address file: %q %v", addr, ok)
	}
}
