// Command eventlake is the one binary of eventlake: an event-driven
// lakehouse that turns Kafka event streams into Iceberg tables and serves
// them with DuckDB. Run `eventlake help` for the subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "eventlake: shutting down (flushing and committing); press Ctrl-C again to abort")
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "eventlake: aborted; uncommitted records will be re-read from Kafka on the next start")
		os.Exit(130)
	}()
	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Environ())
	cancel()
	var ue usageError
	var h hinted
	switch {
	case err == nil:
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "eventlake:", err)
		if errors.As(err, &h) {
			fmt.Fprintln(os.Stderr, h.hint)
		}
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "eventlake:", err)
		os.Exit(1)
	}
}
