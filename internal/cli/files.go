package cli

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/agent/fs"
	"github.com/chaserhq/chaser/internal/errdefs"
)

func newUpload(e *env) *cobra.Command {
	var mode, user string
	cmd := &cobra.Command{
		Use:   "upload SESSION LOCAL REMOTE",
		Short: "Copy a local file into a sandbox",
		Long: `Copy LOCAL (a file, or - for standard input) to REMOTE in SESSION.
REMOTE is an absolute path in the sandbox; when it ends in / or names a
directory there, the file keeps its local name. Missing parent directories
are created. The upload is atomic: REMOTE changes only when the whole file
arrived. Files are limited to the server's --max-file-size (16 MB by default).
A progress bar shows on a terminal, never under --json or when piped.`,
		Example: "  chaser upload s-abc ./app.js /workspace/app.js\n  tar c src | chaser upload s-abc - /workspace/src.tar",
		Args:    cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, local, remote := args[0], args[1], args[2]
			ctx := cmd.Context()
			c := e.client()
			var r io.Reader
			size := int64(-1)
			if local == "-" {
				if strings.HasSuffix(remote, "/") {
					return errdefs.New(errdefs.ErrInvalidArgument, "with - (standard input) REMOTE must name a file, not a directory")
				}
				r = e.stdin
			} else {
				f, err := os.Open(local)
				if err != nil {
					return err
				}
				defer f.Close()
				fi, err := f.Stat()
				if err != nil {
					return err
				}
				if fi.IsDir() {
					return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%s is a directory; upload files one by one, or an archive: tar c %s | chaser upload %s - /workspace/%s.tar", local, local, id, filepath.Base(local)))
				}
				r, size = f, fi.Size()
				if strings.HasSuffix(remote, "/") {
					remote += filepath.Base(local)
				} else if info, err := c.StatFile(ctx, id, remote); err == nil && info.Type == api.FileTypeDir {
					remote = path.Join(remote, filepath.Base(local))
				}
			}
			var bar *progress
			if e.progressAllowed() {
				bar = newProgress(e.stderr, path.Base(remote), size)
				r = io.TeeReader(r, bar)
			}
			info, err := c.Upload(ctx, id, remote, r, size, client.UploadOptions{Mode: mode, User: user})
			if bar != nil {
				bar.finish(err == nil)
			}
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(info)
			}
			fmt.Fprintf(e.stdout, "uploaded %s to %s:%s (%s)\n", displayLocal(local), id, info.Path, fs.HumanSize(info.Size))
			return nil
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "owner of the new file and directories: a name or uid[:gid] (default: the image's user)")
	cmd.Flags().StringVar(&mode, "mode", "", "permission bits of REMOTE in octal, e.g. 0755 (default: those of the file replaced, or 0644)")
	return cmd
}

func newDownload(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "download SESSION REMOTE LOCAL",
		Short: "Copy a file out of a sandbox",
		Long: `Copy REMOTE (an absolute path in SESSION) to LOCAL, or to standard output
with -. When LOCAL ends in / or is a directory, the file keeps its remote
name. LOCAL is written to a temporary file and renamed into place only when
the whole file arrived. A progress bar shows on a terminal, never under
--json or when piped.`,
		Example: "  chaser download s-abc /workspace/app.js ./app.js\n  chaser download s-abc /workspace/out.tar - | tar x",
		Args:    cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, remote, local := args[0], args[1], args[2]
			resp, err := e.client().Download(cmd.Context(), id, remote)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			size := resp.ContentLength
			var src io.Reader = resp.Body
			var bar *progress
			if e.progressAllowed() && local != "-" {
				bar = newProgress(e.stderr, path.Base(remote), size)
				src = io.TeeReader(src, bar)
			}
			info := map[string]any{"session_id": id, "path": remote, "size": size, "local": local}
			if local == "-" {
				n, err := io.Copy(e.stdout, src)
				if err == nil && size >= 0 && n != size {
					err = fmt.Errorf("download of %s ended after %d of %d bytes: %w", remote, n, size, errdefs.ErrUnavailable)
				}
				if err != nil {
					return err
				}
				if e.json {
					// Standard output carries the file: the summary goes
					// to standard error.
					enc := &env{stdout: e.stderr}
					return enc.printJSON(info)
				}
				return nil
			}
			if strings.HasSuffix(local, "/") || isDir(local) {
				local = filepath.Join(local, path.Base(remote))
			}
			err = saveAtomically(local, src, size, fileMode(resp.Header.Get("X-Chaser-File-Mode")))
			if bar != nil {
				bar.finish(err == nil)
			}
			if err != nil {
				return err
			}
			info["local"] = local
			if e.json {
				return e.printJSON(info)
			}
			fmt.Fprintf(e.stdout, "downloaded %s:%s to %s (%s)\n", id, remote, local, fs.HumanSize(size))
			return nil
		},
	}
	return cmd
}

func displayLocal(p string) string {
	if p == "-" {
		return "standard input"
	}
	return p
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// fileMode keeps the permission bits of a downloaded file (so scripts stay
// executable), without set-id bits; 0644 when unknown.
func fileMode(s string) os.FileMode {
	m, ok, err := fs.ParseMode(s)
	if err != nil || !ok {
		return 0o644
	}
	return os.FileMode(m & 0o777)
}

// saveAtomically writes exactly size bytes of r (any length when size < 0)
// to a temporary file next to dst and renames it over dst: an interrupted
// download leaves dst as it was.
func saveAtomically(dst string, r io.Reader, size int64, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".chaser-download-*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	n, err := io.Copy(f, r)
	if err != nil {
		return fmt.Errorf("download interrupted after %d bytes: %v: %w", n, err, errdefs.ErrUnavailable)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("download ended after %d of %d bytes: %w", n, size, errdefs.ErrUnavailable)
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return err
	}
	ok = true
	return nil
}

// progressAllowed reports whether a progress bar may be drawn: on a
// terminal only, never under --json or when standard output is piped.
func (e *env) progressAllowed() bool {
	return !e.json && isTerminal(e.stderr) && isTerminal(e.stdout)
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress draws a one-line progress bar on a terminal.
type progress struct {
	w           io.Writer
	name        string
	total, done int64
	start, last time.Time
}

func newProgress(w io.Writer, name string, total int64) *progress {
	return &progress{w: w, name: name, total: total, start: time.Now()}
}

func (p *progress) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if time.Since(p.last) >= 100*time.Millisecond {
		p.draw()
	}
	return len(b), nil
}

func (p *progress) draw() {
	p.last = time.Now()
	rate := float64(p.done) / max(time.Since(p.start).Seconds(), 0.001)
	name := p.name
	if len(name) > 24 {
		name = name[:21] + "..."
	}
	if p.total > 0 {
		const width = 30
		frac := min(float64(p.done)/float64(p.total), 1)
		fill := int(frac * width)
		fmt.Fprintf(p.w, "\r%-24s [%s%s] %3.0f%% %s / %s  %s/s ", name, strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
			frac*100, fs.HumanSize(p.done), fs.HumanSize(p.total), fs.HumanSize(int64(rate)))
		return
	}
	fmt.Fprintf(p.w, "\r%-24s %s  %s/s ", name, fs.HumanSize(p.done), fs.HumanSize(int64(rate)))
}

// finish draws the last state and ends the line.
func (p *progress) finish(ok bool) {
	p.draw()
	if !ok {
		fmt.Fprint(p.w, " failed")
	}
	fmt.Fprintln(p.w)
}
