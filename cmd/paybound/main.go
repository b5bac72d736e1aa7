// Command paybound is Paybound's server and command-line client in one
// binary: `paybound serve` runs the server, which Main (in this package)
// composes; `paybound bench` measures it (package bench); the other
// subcommands call a running server's API (package cli; see `paybound
// help`).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/paybound/paybound/cmd/paybound/bench"
	"github.com/paybound/paybound/cmd/paybound/cli"
	"github.com/paybound/paybound/cmd/paybound/internal/cmdline"
)

// version and buildDate are set at build time with
// -ldflags "-X main.version=v1.2.3 -X main.buildDate=2026-12-04".
var version, buildDate = "dev", ""

// serverGCPercent is the garbage collector's target (GOGC) of the
// commands that serve (serve, gateway, bench) when GOGC is not set: a
// server allocates fast and keeps little, so Go's default, 100, collects
// often. 200 took about 11% off an ingest's CPU an event
// (BenchmarkTokenPayIngest: 8.4 to 7.5 µs) for 17% more resident memory
// (134 to 157 MB).
const serverGCPercent = 200

// serverGC sets serverGCPercent unless GOGC says otherwise.
func serverGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(serverGCPercent)
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && slices.Contains([]string{"serve", "gateway", "bench"}, os.Args[1]) {
		serverGC(os.Getenv)
	}
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
	case "gateway":
		return gatewayCmd(ctx, args[1:], stderr, getenv)
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
  paybound gateway --upstream URL --provider mch_… [--addr 127.0.0.1:8090]

Client (PAYBOUND_URL, PAYBOUND_KEY from the environment):
`)
	cli.Usage(w)
	fmt.Fprint(w, "\nRun `paybound COMMAND -h` for a command's flags.\n")
}

// benchServer begins a server for a bench: in this process, or as a
// process of its own (cfg.Process).
func benchServer(ctx context.Context, cfg bench.ServerConfig) (*bench.Server, error) {
	if cfg.Process {
		return benchProcess(ctx, cfg)
	}
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
	led := m.Service.Ledger()
	usage := func() (bench.Usage, error) {
		st := led.Stats()
		return bench.Usage{Batches: st.Batches, CommitTime: st.CommitTime, DiskWrites: bench.ProcWrites("/proc/self/io")}, nil
	}
	return &bench.Server{URL: m.URL(), OperatorKey: m.OperatorKey, Usage: usage, Close: m.Close}, nil
}

// benchProcess starts `paybound serve` (this program) for a bench, and
// waits until it serves.
func benchProcess(ctx context.Context, cfg bench.ServerConfig) (*bench.Server, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("couldn't find this program to start the server: %w", err)
	}
	args := []string{"serve", "--sandbox", "--addr", "127.0.0.1:0", "--data", cfg.DataDir, "--risk-config", cfg.RiskConfig, "--log-level", "error"}
	if cfg.DB != "" {
		args = append(args, "--db", cfg.DB)
	}
	if cfg.MaxBatch > 0 {
		args = append(args, "--max-batch", strconv.Itoa(cfg.MaxBatch))
	}
	if len(cfg.WebhookAllowHosts) > 0 {
		args = append(args, "--webhook-allow-hosts", strings.Join(cfg.WebhookAllowHosts, ","))
	}
	cmd := exec.Command(exe, args...)
	// The flags above decide, as the Config of a server in this process
	// does: none of the bench's own PAYBOUND_* settings.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PAYBOUND_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("couldn't start %s serve: %w", exe, err)
	}
	stop := func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			return <-done
		}
	}
	// The server says where it serves on stderr; what else it says is
	// kept for the error, should it stop before that.
	url := make(chan string, 1)
	var said strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			l := sc.Text()
			if _, rest, ok := strings.Cut(l, "serving on "); ok {
				u, _, _ := strings.Cut(rest, " ")
				url <- u
				io.Copy(io.Discard, stderr)
				return
			}
			if said.Len() < 4<<10 {
				said.WriteString(l + "\n")
			}
		}
		close(url)
	}()
	var base string
	select {
	case u, ok := <-url:
		if !ok {
			stop()
			return nil, fmt.Errorf("the server stopped before serving:\n%s", said.String())
		}
		base = u
	case <-time.After(60 * time.Second):
		stop()
		return nil, errors.New("the server did not start serving within 60 s")
	}
	key, err := os.ReadFile(filepath.Join(cfg.DataDir, "operator.key"))
	if err != nil {
		stop()
		return nil, fmt.Errorf("couldn't read the server's operator key: %w", err)
	}
	return &bench.Server{URL: base, OperatorKey: strings.TrimSpace(string(key)),
		Usage: bench.ProcessUsage(ctx, base, cmd.Process.Pid), Close: stop}, nil
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
