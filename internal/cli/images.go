package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/chaserhq/chaser/api"
)

func newImages(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "images", Short: "List, pull and remove cached OCI images"}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the server's cached images",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := e.client().ListImages(cmd.Context())
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(api.ImageList{Images: list})
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REF\tDIGEST\tLAYERS\tSIZE\tPULLED")
			for _, img := range list {
				d := img.Digest
				if len(d) > 19 {
					d = d[:19]
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", img.Ref, d, img.Layers, humanBytes(img.Size), img.PulledAt.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}, &cobra.Command{
		Use:   "pull REF",
		Short: "Pull an image (or refresh a tag) into the server's cache",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := e.pull(cmd.Context(), args[0], false)
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(img)
			}
			fmt.Fprintf(e.stdout, "%s %s\n", img.Ref, img.Digest)
			return nil
		},
	}, &cobra.Command{
		Use:   "rm REF...",
		Short: "Remove images from the server's cache (admin only)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, ref := range args {
				if err := e.client().DeleteImage(cmd.Context(), ref); err != nil {
					return err
				}
				if e.json {
					if err := e.printJSON(map[string]any{"ref": ref, "deleted": true}); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(e.stdout, "removed %s\n", ref)
				}
			}
			return nil
		},
	})
	return cmd
}

// pull pulls ref, drawing a progress bar on stderr when it is a terminal
// and --json is off. ifMissing answers from the cache when possible (what
// a create does before it starts the sandbox).
func (e *env) pull(ctx context.Context, ref string, ifMissing bool) (api.Image, error) {
	req := api.PullImageRequest{Ref: ref, IfMissing: ifMissing}
	f, ok := e.stderr.(*os.File)
	if e.json || !ok || !term.IsTerminal(int(f.Fd())) {
		return e.client().PullImage(ctx, req, nil)
	}
	drawn := false
	img, err := e.client().PullImage(ctx, req, func(ev api.PullEvent) {
		drawn = true
		drawProgress(e.stderr, ref, ev)
	})
	if drawn {
		fmt.Fprintln(e.stderr)
	}
	return img, err
}

// drawProgress redraws one line: bar, bytes and layers.
func drawProgress(w io.Writer, ref string, ev api.PullEvent) {
	const width = 30
	fill := 0
	if ev.Total > 0 {
		fill = int(min(ev.Current, ev.Total) * width / ev.Total)
	}
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
	fmt.Fprintf(w, "\rpulling %s [%s] %s/%s, %d/%d layers\x1b[K", ref, bar,
		humanBytes(ev.Current), humanBytes(ev.Total), ev.LayersDone, ev.Layers)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
