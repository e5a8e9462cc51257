package userns

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/chaserhq/chaser/internal/errdefs"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Remap
		bad  bool
	}{
		{in: "", want: Remap{}},
		{in: "off", want: Remap{}},
		{in: "100000:65536", want: Remap{Base: 100000, Size: 65536}},
		{in: "200000:100000", want: Remap{Base: 200000, Size: 100000}},
		{in: "100000", bad: true},
		{in: "0:65536", bad: true},          // host root
		{in: "100000:1000", bad: true},      // nobody (65534) unmapped
		{in: "1000:65536", bad: true},       // overlaps the ids it maps
		{in: "4294967000:65536", bad: true}, // beyond 32 bits
		{in: "on", bad: true},
	} {
		got, err := Parse(tc.in)
		if tc.bad {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("Parse(%q) = %v, %v; want ErrInvalidArgument", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestAuto(t *testing.T) {
	dir := t.TempDir()
	uid, gid := filepath.Join(dir, "subuid"), filepath.Join(dir, "subgid")
	if got, err := auto(uid, gid); err != nil || got != Default {
		t.Fatalf("without files: %v, %v; want %v", got, err, Default)
	}
	os.WriteFile(uid, []byte("alice:100000:65536\nchaser:300000:65536\n"), 0o644)
	os.WriteFile(gid, []byte("chaser:300000:65536\n"), 0o644)
	if got, err := auto(uid, gid); err != nil || got != (Remap{300000, 65536}) {
		t.Fatalf("chaser's entry: %v, %v", got, err)
	}
	os.WriteFile(gid, []byte("chaser:400000:65536\n"), 0o644)
	if _, err := auto(uid, gid); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("different uid and gid ranges: %v; want ErrInvalidArgument", err)
	}
}

func TestHost(t *testing.T) {
	m := Remap{Base: 100000, Size: 65536}
	if h, err := m.Host(0); err != nil || h != 100000 {
		t.Errorf("Host(0) = %d, %v", h, err)
	}
	if h, err := m.Host(65534); err != nil || h != 165534 {
		t.Errorf("Host(65534) = %d, %v", h, err)
	}
	if _, err := m.Host(65536); !errors.Is(err, errdefs.ErrUnprocessable) {
		t.Errorf("Host(65536): %v; want ErrUnprocessable", err)
	}
	if h, err := (Remap{}).Host(70000); err != nil || h != 70000 {
		t.Errorf("off: Host(70000) = %d, %v", h, err)
	}
}
