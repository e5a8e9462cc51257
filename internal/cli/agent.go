package cli

import (
	"github.com/spf13/cobra"

	"github.com/chaserhq/chaser/internal/agent"
)

// newAgent is the hidden command that runs inside every sandbox as its init.
func newAgent() *cobra.Command {
	var socket string
	var vm bool
	seccompFD := -1
	cmd := &cobra.Command{
		Use:    "agent",
		Short:  "Run the in-sandbox agent (started by the server)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if vm {
				return agent.MainVM()
			}
			return agent.Main(socket, seccompFD)
		},
	}
	cmd.Flags().BoolVar(&vm, "vm", false, "run as a microVM's init: serve on the virtio-serial port")
	cmd.Flags().IntVar(&seccompFD, "seccomp-fd", -1, "first install the seccomp filter program read from this fd (runtime runc)")
	cmd.Flags().StringVar(&socket, "socket", "", "listen on this unix socket instead of the inherited fd 3")
	return cmd
}
