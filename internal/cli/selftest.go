package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/chaserhq/chaser/api"
)

func newSelfTest(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "self-test SESSION",
		Short: "Show what a command inside a sandbox sees: tools, PATH, shell, OS, limits",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := e.client().SelfTest(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(st)
			}
			printSelfTest(e.stdout, st)
			return nil
		},
	}
}

func printSelfTest(w io.Writer, st api.SelfTest) {
	fmt.Fprintf(w, "session   %s\n", st.SessionID)
	if st.Platform != "" {
		fmt.Fprintf(w, "runtime   %s (platform %s)\n", st.Runtime, st.Platform)
	} else {
		fmt.Fprintf(w, "runtime   %s\n", st.Runtime)
	}
	fmt.Fprintf(w, "os        %s\n", orDash(st.OS.Name))
	fmt.Fprintf(w, "kernel    %s\n", st.Kernel)
	fmt.Fprintf(w, "user      %s (home %s, host %s)\n", st.User, st.Home, st.Hostname)
	fmt.Fprintf(w, "cwd       %s\n", st.Cwd)
	if st.Network != nil {
		fmt.Fprintf(w, "network   %s (dns %s)\n", st.Network.Mode, st.Network.DNS)
	}
	lim := []string{fmt.Sprintf("%d online CPUs", st.Limits.OnlineCPUs)}
	if st.Limits.CPUs > 0 {
		lim = append(lim, fmt.Sprintf("cpu quota %.2g", st.Limits.CPUs))
	}
	if st.Limits.MemoryBytes > 0 {
		lim = append(lim, fmt.Sprintf("memory %d MiB", st.Limits.MemoryBytes>>20))
	}
	if st.Limits.Pids > 0 {
		lim = append(lim, fmt.Sprintf("pids %d", st.Limits.Pids))
	}
	fmt.Fprintf(w, "limits    %s\n", strings.Join(lim, ", "))
	fmt.Fprintf(w, "shell     %s %s\n", st.Shell.Path, st.Shell.Version)
	fmt.Fprintf(w, "          config: %s\n", orDash(strings.Join(st.Shell.Config, " ")))
	fmt.Fprintln(w, "env")
	for _, k := range chaserMarkerNames {
		v, ok := st.Env[k]
		if !ok {
			v = "(not set)"
		}
		fmt.Fprintf(w, "  %s=%s\n", k, v)
	}
	fmt.Fprintln(w, "path")
	for _, p := range st.Path {
		mark := "ok"
		if !p.Exists {
			mark = "missing"
		}
		fmt.Fprintf(w, "  %-28s %s\n", p.Dir, mark)
	}
	fmt.Fprintln(w, "tools")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, t := range st.Tools {
		if t.Found {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", t.Name, t.Path, orDash(clip(t.Version, 60)))
		} else {
			fmt.Fprintf(tw, "  %s\tabsent\t%s\n", t.Name, t.Error)
		}
	}
	tw.Flush()
}

var chaserMarkerNames = []string{"CHASER", "CHASER_SESSION_ID", "CHASER_WORKSPACE_ID", "CHASER_IMAGE", "CHASER_RUNTIME"}

// clip shortens s to n runes (curl's version line lists every library).
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
