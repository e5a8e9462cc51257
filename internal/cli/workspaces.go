package cli

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/daemon"
	"github.com/chaserhq/chaser/internal/errdefs"
)

func newWorkspaces(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "workspaces", Short: "Manage persistent workspaces (paid accounts)"}
	var req api.CreateWorkspaceRequest
	var res *resourceFlags
	create := &cobra.Command{
		Use:   "create --name NAME [--session-type sandbox] [--image REF] [--cpu N --memory SIZE --disk SIZE --pids N]",
		Short: "Create a workspace; its image and resources are fixed from now on",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if req.Resources, err = res.request(); err != nil {
				return err
			}
			w, err := e.client().CreateWorkspace(cmd.Context(), req)
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(w)
			}
			fmt.Fprintf(e.stdout, "created workspace %s (%s)\n", w.Name, w.ID)
			return nil
		},
	}
	create.Flags().StringVar(&req.Name, "name", "", "workspace name")
	create.Flags().StringVar(&req.SessionType, "session-type", api.SessionTypeSandbox, "session type")
	create.Flags().StringVar(&req.Image, "image", "", "image (default: the server's default image)")
	res = addResourceFlags(create.Flags())
	_ = create.MarkFlagRequired("name")

	var allWorkspaces bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List workspaces (the admin: --all for every account's)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list := e.client().ListWorkspaces
			if allWorkspaces {
				list = e.client().ListAllWorkspaces
			}
			l, err := list(cmd.Context())
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(api.WorkspaceList{Workspaces: l})
			}
			printWorkspaces(e.stdout, l)
			return nil
		},
	}
	list.Flags().BoolVar(&allWorkspaces, "all", false, "every account's workspaces, with their owner (admin only)")
	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a workspace",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := e.client().GetWorkspace(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(w)
			}
			printWorkspaces(e.stdout, []api.Workspace{w})
			return nil
		},
	}
	var force bool
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a workspace and all its data",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := e.client().DeleteWorkspace(cmd.Context(), args[0], force); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(map[string]any{"name": args[0], "deleted": true})
			}
			fmt.Fprintf(e.stdout, "deleted workspace %s\n", args[0])
			return nil
		},
	}
	del.Flags().BoolVar(&force, "force", false, "stop a session running on the workspace first")

	var size string
	grow := &cobra.Command{
		Use:     "grow NAME --disk SIZE",
		Short:   "Grow a workspace's disk (its quota), e.g. --disk 20GiB; disks never shrink",
		Example: "  chaser workspaces grow data --disk 20GiB",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := daemon.ParseSize(size)
			if err != nil {
				return errdefs.New(errdefs.ErrInvalidArgument, "--disk: "+err.Error())
			}
			w, err := e.client().GrowWorkspace(cmd.Context(), args[0], (int64(n)+(1<<20)-1)>>20)
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(w)
			}
			fmt.Fprintf(e.stdout, "workspace %s has %d MiB of disk\n", w.Name, w.DiskMB)
			return nil
		},
	}
	grow.Flags().StringVar(&size, "disk", "", "new size of the disk, e.g. 20GiB or 512MiB")
	_ = grow.MarkFlagRequired("disk")

	cmd.AddCommand(create, list, get, del, grow, newDefault(e))
	return cmd
}

func newDefault(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "default", Short: "The default workspace of a session type (used by targetless requests)"}
	var sandbox bool
	sessionType := func() (string, error) {
		if !sandbox {
			return "", errdefs.New(errdefs.ErrInvalidArgument, "say which session type: --sandbox")
		}
		return api.SessionTypeSandbox, nil
	}
	set := &cobra.Command{
		Use:   "set NAME --sandbox",
		Short: "Make NAME the default workspace",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			typ, err := sessionType()
			if err != nil {
				return err
			}
			if err := e.client().SetDefault(cmd.Context(), typ, args[0]); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(api.DefaultWorkspace{SessionType: typ, Workspace: args[0]})
			}
			fmt.Fprintf(e.stdout, "default %s workspace: %s\n", typ, args[0])
			return nil
		},
	}
	get := &cobra.Command{
		Use:   "get --sandbox",
		Short: "Show the default workspace",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			typ, err := sessionType()
			if err != nil {
				return err
			}
			w, err := e.client().GetDefault(cmd.Context(), typ)
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(w)
			}
			printWorkspaces(e.stdout, []api.Workspace{w})
			return nil
		},
	}
	for _, c := range []*cobra.Command{set, get} {
		c.Flags().BoolVar(&sandbox, "sandbox", false, "the default for sandbox sessions")
	}
	cmd.AddCommand(set, get)
	return cmd
}

func printWorkspaces(w io.Writer, list []api.Workspace) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	owners := slices.ContainsFunc(list, func(x api.Workspace) bool { return x.AccountID != "" })
	if owners {
		fmt.Fprint(tw, "ACCOUNT\t")
	}
	fmt.Fprintln(tw, "NAME\tID\tIMAGE\tDEFAULT\tSESSION\tSIZE\tDISK\tCREATED")
	for _, x := range list {
		if owners {
			fmt.Fprintf(tw, "%s\t", x.AccountID)
		}
		sess := "-"
		if x.SessionID != nil {
			sess = *x.SessionID
		}
		quota := "-"
		if x.DiskMB > 0 {
			quota = strconv.FormatInt(x.DiskMB, 10) + "MiB"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%d\t%s\t%s\n", x.Name, x.ID, x.Image, x.Default, sess, x.SizeBytes, quota, x.CreatedAt.Local().Format(time.DateTime))
	}
	tw.Flush()
}
