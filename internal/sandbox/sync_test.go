package sandbox

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/chaserhq/chaser/internal/errdefs"
)

func tarOf(t *testing.T, files map[string]string, order ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range order {
		body := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	return buf.Bytes()
}

// The server leaves over-limit files out of the stream it passes on, so
// the agent never receives them, and reports them.
func TestFilterArchiveSkipsOverLimitFiles(t *testing.T) {
	in := tarOf(t, map[string]string{"a": "small", "big": strings.Repeat("b", 100), "c": "also small"}, "a", "big", "c")
	pr, pw := io.Pipe()
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(pr); done <- b }()
	skipped := filterArchive(bytes.NewReader(in), pw, 10)
	out := <-done
	if len(skipped) != 1 || skipped[0].Path != "big" || skipped[0].Code != "too_large" {
		t.Fatalf("skipped %+v", skipped)
	}
	tr := tar.NewReader(bytes.NewReader(out))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		names = append(names, h.Name+"="+string(body))
	}
	if strings.Join(names, ",") != "a=small,c=also small" {
		t.Fatalf("passed on %v", names)
	}
}

func TestFilterArchiveMalformed(t *testing.T) {
	in := tarOf(t, map[string]string{"a": strings.Repeat("a", 2000)}, "a")
	pr, pw := io.Pipe()
	errc := make(chan error)
	go func() { _, err := io.ReadAll(pr); errc <- err }()
	filterArchive(bytes.NewReader(in[:1000]), pw, 1<<20)
	if err := <-errc; !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("cut stream: %v", err)
	}
}
