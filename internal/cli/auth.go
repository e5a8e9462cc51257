package cli

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/errdefs"
)

func newAuth(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Log in to Chaser servers and switch between accounts (profiles)",
		Long: `Profiles keep a server URL and an API key under a name, in
$XDG_CONFIG_HOME/chaser/config.json (or CHASER_CONFIG), mode 0600. Commands
use --profile, else CHASER_PROFILE, else the current profile; CHASER_API_URL
and CHASER_API_KEY always win over a profile.`,
	}
	cmd.AddCommand(newAuthLogin(e), newAuthStatus(e), newAuthList(e), newAuthUse(e), newAuthLogout(e))
	return cmd
}

// readKey reads an API key: with a prompt that does not echo on a
// terminal, else the first line of stdin. Keys never come from flags.
func (e *env) readKey() (string, error) {
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(e.stderr, "API key: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		return strings.TrimSpace(string(b)), err
	}
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", errdefs.New(errdefs.ErrInvalidArgument, "no API key on standard input")
	}
	return strings.TrimSpace(line), nil
}

func newAuthLogin(e *env) *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:   "login [--url URL] [--profile NAME]",
		Short: "Check an API key (read from a prompt or stdin) and save it as a profile",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if url == "" {
				url = e.client().BaseURL
			}
			key, err := e.readKey()
			if err != nil {
				return err
			}
			if key == "" {
				return errdefs.New(errdefs.ErrInvalidArgument, "the API key is empty")
			}
			acct, err := client.New(url, key).Account(cmd.Context())
			if err != nil {
				return err // nothing is saved
			}
			name := e.profile
			if name == "" {
				name = client.DefaultProfile
			}
			path := client.ConfigPath()
			cfg, err := client.LoadConfig(path)
			if err != nil {
				return err
			}
			cfg.Profiles[name] = client.Profile{URL: strings.TrimRight(url, "/"), Key: key}
			cfg.Current = name
			if err := cfg.Save(path); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(map[string]any{"profile": name, "url": url, "account": acct})
			}
			fmt.Fprintf(e.stdout, "logged in to %s as %s (tier %s); profile %q saved in %s\n", url, acct.Name, acct.Tier, name, path)
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "server URL (default: CHASER_API_URL, the profile's, or "+client.DefaultURL+")")
	return cmd
}

func newAuthStatus(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show which server and account commands use, and where the key comes from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := e.client()
			acct, err := c.Account(cmd.Context())
			if err != nil {
				return err
			}
			if e.json {
				return e.printJSON(map[string]any{"profile": e.using, "url": c.BaseURL, "key_from": e.keyFrom, "account": acct})
			}
			profile := e.using
			if profile == "" {
				profile = "(none)"
			}
			fmt.Fprintf(e.stdout, "server:   %s\naccount:  %s (%s, tier %s)\nprofile:  %s\nkey from: %s\n", c.BaseURL, acct.Name, acct.ID, acct.Tier, profile, e.keyFrom)
			return nil
		},
	}
}

func newAuthList(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List saved profiles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := client.LoadConfig(client.ConfigPath())
			if err != nil {
				return err
			}
			type row struct {
				Name    string `json:"name"`
				URL     string `json:"url"`
				Current bool   `json:"current"`
			}
			rows := []row{}
			for _, n := range cfg.Names() {
				rows = append(rows, row{n, cfg.Profiles[n].URL, n == cfg.Current})
			}
			if e.json {
				return e.printJSON(map[string]any{"profiles": rows})
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PROFILE\tURL\tCURRENT")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%v\n", r.Name, r.URL, r.Current)
			}
			return tw.Flush()
		},
	}
}

func newAuthUse(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "use PROFILE",
		Short: "Make a saved profile the current one",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := client.ConfigPath()
			cfg, err := client.LoadConfig(path)
			if err != nil {
				return err
			}
			if _, ok := cfg.Profiles[args[0]]; !ok {
				return errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("no profile %q (saved: %s)", args[0], strings.Join(cfg.Names(), ", ")))
			}
			cfg.Current = args[0]
			if err := cfg.Save(path); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(map[string]any{"profile": args[0], "current": true})
			}
			fmt.Fprintf(e.stdout, "using profile %q\n", args[0])
			return nil
		},
	}
}

func newAuthLogout(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "logout [--profile NAME]",
		Short: "Forget a saved profile and its key (default: the current one)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := client.ConfigPath()
			cfg, err := client.LoadConfig(path)
			if err != nil {
				return err
			}
			name := e.profile
			if name == "" {
				name = cfg.Current
			}
			if _, ok := cfg.Profiles[name]; !ok {
				return errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("no profile %q to log out of", name))
			}
			delete(cfg.Profiles, name)
			if cfg.Current == name {
				cfg.Current = ""
			}
			if err := cfg.Save(path); err != nil {
				return err
			}
			if e.json {
				return e.printJSON(map[string]any{"profile": name, "logged_out": true})
			}
			fmt.Fprintf(e.stdout, "logged out of profile %q\n", name)
			return nil
		},
	}
}
