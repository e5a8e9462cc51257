package cli

import (
	"fmt"

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
	return cmd
}
