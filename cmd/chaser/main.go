// Command chaser is the Chaser CLI, server (`chaser serve`) and in-sandbox
// agent (`chaser agent`, started by the server) in one static binary.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/chaserhq/chaser/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
