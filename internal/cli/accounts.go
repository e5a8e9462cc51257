package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chaserhq/chaser/api"
)

func newAccounts(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "accounts", Short: "Manage accounts (admin)"}
	var name, tier string
	create := &cobra.Command{
		Use:   "create --name NAME --tier free|paid",
		Short: "Create an account and print its API key (shown once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := e.client().CreateAccount(cmd.Context(), api.CreateAccountRequest{Name: name, Tier: tier})
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(a)
			}
			fmt.Fprintf(e.stdout, "account %s (%s, tier %s)\nAPI key (shown once): %s\n", a.Name, a.ID, a.Tier, a.APIKey)
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "account name")
	create.Flags().StringVar(&tier, "tier", "free", "free or paid")
	_ = create.MarkFlagRequired("name")
	cmd.AddCommand(create)
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List every account",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := e.client().Accounts(cmd.Context())
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(api.AccountList{Accounts: list})
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tTIER\tADMIN\tCREATED")
			for _, a := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", a.ID, a.Name, a.Tier, a.Admin, a.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	})
	var force bool
	del := &cobra.Command{
		Use:   "delete ID [--force]",
		Short: "Delete an account, its keys and its workspaces (--force ends its live sessions first)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := e.client().DeleteAccount(cmd.Context(), args[0], force); err != nil {
				return err
			}
			if !e.json {
				fmt.Fprintf(e.stdout, "account %s deleted\n", args[0])
			}
			return nil
		},
	}
	del.Flags().BoolVar(&force, "force", false, "end the account's live sessions first")
	cmd.AddCommand(del)
	return cmd
}
