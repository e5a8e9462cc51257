package daemon

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/chaserhq/chaser/internal/agent/fs"
)

// Size is a byte count given as a number with an optional binary unit:
// "16777216", "16M", "16MB", "16MiB", "1.5G". K, M and G mean KiB, MiB and
// GiB, whether spelt KB or KiB: the seed's "16 MB" is 16 MiB. It is a
// pflag.Value.
type Size int64

// ParseSize parses s as a Size.
func ParseSize(s string) (Size, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f <= 0 || f*float64(mult) > 1<<50 {
		return 0, fmt.Errorf("size %q: want a positive number of bytes with an optional unit, such as 16MB", s)
	}
	return Size(f * float64(mult)), nil
}

// String formats the size for help texts.
func (s *Size) String() string { return fs.HumanSize(int64(*s)) }

// Set parses a flag value.
func (s *Size) Set(v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*s = n
	return nil
}

// Type names the flag's value in help texts.
func (s *Size) Type() string { return "size" }

// sizeEnv reads a size from the environment; a bad value becomes -1, which
// Validate reports.
func sizeEnv(name string, def Size) Size {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := ParseSize(v)
	if err != nil {
		return -1
	}
	return n
}
