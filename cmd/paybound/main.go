// Command paybound is Paybound's server and command-line client in one
// binary: `paybound serve` runs the server, which Main (in this package)
// composes; `paybound bench` measures it (package bench); the other
// subcommands call a running server's API (package cli; see `paybound
// help`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/paybound/paybound/cmd/paybound/bench"
	"github.com/paybound/paybound/cmd/paybound/cli"
	"github.com/paybound/paybound/cmd/paybound/internal/cmdline"
)

// version and buildDate are set at build time with
// -ldflags "-X main.version=v1.2.3 -X main.buildDate=2026-12-04".
var version, buildDate = "dev", ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(exitCode(os.Stderr, run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)))
}

// exitCode is the process's exit status for run's error: 0 for none or for
// help that was asked for (-h), 2 for a command line that is not one, 1
// for a command that failed (printed here unless already reported).
func exitCode(stderr io.Writer, err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, cmdline.ErrUsage):
		return 2
	case !errors.Is(err, cmdline.ErrReported):
		fmt.Fprintln(stderr, "error:", err)
	}
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		usage(stderr)
		return cmdline.ErrUsage
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr, getenv)
	case "bench":
		return bench.Run(ctx, args[1:], stdout, stderr, bench.Env{OpenStore: openStore, StartServer: benchServer})
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionLine())
		return nil
	case "help", "-h", "--help", "-help":
		if len(args) > 1 && args[0] == "help" {
			// paybound help pay: the command's own help, as pay -h prints it.
			return run(ctx, append(append([]string{}, args[1:]...), "-h"), stdout, stdout, getenv)
		}
		usage(stdout)
		return nil
	}
	if args[0] == "mcp" {
		return cli.MCP(ctx, args[1:], os.Stdin, stdout, stderr, getenv)
	}
	handled, err := cli.Run(ctx, args, stdout, stderr, getenv)
	if !handled {
		fmt.Fprintf(stderr, "paybound: unknown command %q\n\n", args[0])
		usage(stderr)
		return cmdline.ErrUsage
	}
	return err
}

// versionLine names this build: its version, module version, commit and
// dates, from the build info Go records (VCS stamps come with go build in a
// git checkout; go run and test binaries have fewer).
func versionLine() string {
	parts := []string{"paybound", version}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return strings.Join(parts, " ")
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		parts = append(parts, "module "+v)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if settings["vcs.modified"] == "true" {
			rev += "+modified"
		}
		parts = append(parts, "commit "+rev)
	}
	if t := settings["vcs.time"]; t != "" {
		parts = append(parts, "committed "+t)
	}
	if buildDate != "" {
		parts = append(parts, "built "+buildDate)
	}
	return strings.Join(append(parts, bi.GoVersion), " ")
}

func usage(w io.Writer) {
	fmt.Fprint(w, `paybound: payment infrastructure for AI agents.

Server:
  paybound serve [--addr 127.0.0.1:8080] [--data ./paybound-data] [--demo]
  paybound bench ledger [--hot] [--duration 5s] [--clients 2000]
  paybound bench payments [--duration 5s] [--clients 128]
  paybound bench acp [--duration 5s] [--clients 64]
  paybound bench webhooks [--payments 3000] [--endpoints 16]

Client (PAYBOUND_URL, PAYBOUND_KEY from the environment):
`)
	cli.Usage(w)
	fmt.Fprint(w, "\nRun `paybound COMMAND -h` for a command's flags.\n")
}

// benchServer begins a server in this process for bench payments.
func benchServer(ctx context.Context, cfg bench.ServerConfig) (*bench.Server, error) {
	m := NewMain()
	m.Stdout, m.Stderr = io.Discard, io.Discard
	m.Logger = slog.New(slog.DiscardHandler)
	m.Config.Addr, m.Config.DataDir = "127.0.0.1:0", cfg.DataDir
	m.Config.DB, m.Config.Sandbox, m.Config.RiskConfig = cfg.DB, true, cfg.RiskConfig
	if cfg.MaxBatch > 0 {
		m.Config.MaxBatch = cfg.MaxBatch
	}
	m.Config.WebhookAllowHosts = cfg.WebhookAllowHosts
	if err := m.Run(ctx); err != nil {
		m.Close()
		return nil, err
	}
	return &bench.Server{URL: m.URL(), OperatorKey: m.OperatorKey, Ledger: m.Service.Ledger(), Close: m.Close}, nil
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
