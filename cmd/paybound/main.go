// Command paybound is Paybound's server and command-line client in one
// binary: `paybound serve` runs the server; the other subcommands call a
// running server's API (see `paybound help`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		if !errors.Is(err, flag.ErrHelp) && !errors.Is(err, errReported) {
			fmt.Fprintln(os.Stderr, "error:", err)
		}
		os.Exit(1)
	}
}

// errReported is returned by commands that already printed their error.
var errReported = errors.New("reported")

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		usage(stderr)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr, getenv)
	case "bench":
		return bench(ctx, args[1:], stdout, stderr, getenv)
	case "version", "--version":
		fmt.Fprintln(stdout, "paybound", version)
		return nil
	case "help", "-h", "--help":
		usage(stdout)
		return nil
	}
	handled, err := runClient(ctx, args, stdout, stderr, getenv)
	if !handled {
		fmt.Fprintf(stderr, "paybound: unknown command %q\n\n", args[0])
		usage(stderr)
		return flag.ErrHelp
	}
	return err
}

func usage(w io.Writer) {
	fmt.Fprint(w, `paybound: payment infrastructure for AI agents.

Server:
  paybound serve [--addr 127.0.0.1:8080] [--data ./paybound-data] [--demo]
  paybound bench ledger [--hot] [--duration 5s] [--clients 2000]
  paybound bench payments [--duration 5s] [--clients 128]

Client (PAYBOUND_URL, PAYBOUND_KEY from the environment):
`)
	clientUsage(w)
	fmt.Fprint(w, "\nRun `paybound COMMAND -h` for a command's flags.\n")
}

// serve runs the server until ctx is done.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	m := NewMain()
	m.Stdout, m.Stderr = stdout, stderr
	if err := m.ParseFlags(args, getenv); err != nil {
		return err
	}
	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	<-ctx.Done()
	fmt.Fprintln(stderr, "paybound: shutting down")
	return m.Close()
}
