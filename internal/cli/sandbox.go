package cli

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chaserhq/chaser/api"
)

func newSandbox(e *env) *cobra.Command {
	var req api.CreateSessionRequest
	var res *resourceFlags
	var network string
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Create a sandbox session",
		Long: `Create a sandbox session. --cpu, --memory, --disk and --pids ask for other
resources than the tier's defaults (up to the tier's maximums); with them,
a paid account gets a throwaway sandbox instead of its default workspace.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Type = api.SessionTypeSandbox
			var err error
			if req.Resources, err = res.request(); err != nil {
				return err
			}
			if network != "" {
				req.Network = &api.Network{Mode: network}
			}
			if req.Image != "" && req.Image != "host" && !e.json {
				// Pull first so a terminal shows progress; the create
				// then finds the image cached.
				if _, err := e.pull(cmd.Context(), req.Image, true); err != nil {
					return err
				}
			}
			s, err := e.client().CreateSession(cmd.Context(), req)
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(s)
			}
			fmt.Fprintf(e.stdout, "%s\n", s.ID)
			return nil
		},
	}
	cmd.Flags().BoolVar(&req.Ephemeral, "ephemeral", false, "a throwaway sandbox, bypassing workspace defaults")
	cmd.Flags().StringVar(&req.Image, "image", "", "OCI image (default: the server's default image)")
	cmd.Flags().StringVar(&req.Workspace, "workspace", "", "workspace to run on")
	res = addResourceFlags(cmd.Flags())
	cmd.Flags().StringVar(&network, "network", "", "network: none (loopback only) or internet (egress through the host's NAT); the tier's when not given")
	return cmd
}

func printSessions(w io.Writer, list []api.Session) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// An admin's --all list says whose each session is.
	owners := slices.ContainsFunc(list, func(s api.Session) bool { return s.AccountID != "" })
	if owners {
		fmt.Fprint(tw, "ACCOUNT\t")
	}
	fmt.Fprintln(tw, "ID\tSTATUS\tIMAGE\tEPHEMERAL\tCREATED\tEXPIRES")
	for _, s := range list {
		if owners {
			fmt.Fprintf(tw, "%s\t", s.AccountID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", s.ID, s.Status, s.Image, s.Ephemeral,
			s.CreatedAt.Local().Format(time.DateTime), s.ExpiresAt.Local().Format(time.DateTime))
	}
	tw.Flush()
}

func newSessions(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "sessions", Short: "List, inspect and delete sessions"}
	var all bool
	listCmd := &cobra.Command{
		Use:   "list",
		Short: "List your sessions (the admin: --all for every account's)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list := e.client().ListSessions
			if all {
				list = e.client().ListAllSessions
			}
			sessions, err := list(cmd.Context())
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(api.SessionList{Sessions: sessions})
			}
			printSessions(e.stdout, sessions)
			return nil
		},
	}
	listCmd.Flags().BoolVar(&all, "all", false, "every account's sessions, with their owner (admin only)")
	cmd.AddCommand(listCmd, &cobra.Command{
		Use:   "get SESSION",
		Short: "Show a session",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := e.client().GetSession(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(s)
			}
			printSessions(e.stdout, []api.Session{s})
			return nil
		},
	}, &cobra.Command{
		Use:   "delete SESSION...",
		Short: "Destroy sessions and their sandboxes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, id := range args {
				if err := e.client().DeleteSession(cmd.Context(), id); err != nil {
					return err
				}
				if e.json {
					if err := e.printJSON(map[string]any{"id": id, "deleted": true}); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(e.stdout, "deleted %s\n", id)
				}
			}
			return nil
		},
	})
	cmd.AddCommand(newSelfTest(e))
	return cmd
}
