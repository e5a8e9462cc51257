package daemon

import "testing"

func TestParseSize(t *testing.T) {
	for in, want := range map[string]Size{
		"16777216": 16 << 20, "16MB": 16 << 20, "16M": 16 << 20, "16MiB": 16 << 20, "16 mb": 16 << 20,
		"1.5G": 3 << 29, "512K": 512 << 10, "100B": 100,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1MB", "lots", "16TB", "MB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) succeeded", bad)
		}
	}
}

func TestMaxFileSizeFromEnvironment(t *testing.T) {
	t.Setenv("CHASER_MAX_FILE_SIZE", "32MB")
	if got := Defaults().MaxFileSize; got != 32<<20 {
		t.Fatalf("got %d", got)
	}
	t.Setenv("CHASER_MAX_FILE_SIZE", "big")
	cfg := Defaults()
	if err := cfg.Validate(); err == nil {
		t.Fatal("a bad CHASER_MAX_FILE_SIZE was accepted")
	}
}
