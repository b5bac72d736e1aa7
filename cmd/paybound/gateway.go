package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/paybound/paybound/cmd/paybound/internal/cmdline"
	"github.com/paybound/paybound/internal/gateway"
)

// gatewayCmd runs `paybound gateway`: Token Pay's metering reverse proxy
// in front of an OpenAI-compatible API (internal/gateway).
func gatewayCmd(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("paybound gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cmdline.UsageFor(fs, stderr, "paybound gateway --upstream URL --provider mch_… [flags]")
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	upstream := fs.String("upstream", "", "the OpenAI-compatible API's base URL, such as http://127.0.0.1:8000")
	provider := fs.String("provider", "", "the provider's merchant ID (mch_…); its API key is $PAYBOUND_KEY")
	server := fs.String("url", "", "the Paybound server (default $PAYBOUND_URL, else http://127.0.0.1:8080)")
	maxTokens := fs.Int64("default-max-tokens", 4096, "tokens reserved for a request that names no max_tokens")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("gateway takes no arguments; got %q: %w", fs.Args(), cmdline.ErrUsage)
	}
	up, err := url.Parse(*upstream)
	if err != nil {
		return fmt.Errorf("--upstream: %w", err)
	}
	base := *server
	if base == "" {
		base = getenv("PAYBOUND_URL")
	}
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	g, err := gateway.New(gateway.Config{Upstream: up, UpstreamKey: getenv("PAYBOUND_UPSTREAM_KEY"), Paybound: base,
		Provider: *provider, ProviderKey: getenv("PAYBOUND_KEY"), DefaultMaxTokens: *maxTokens, Logger: logger})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("couldn't listen on %s: %w", *addr, err)
	}
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	fmt.Fprintf(stderr, "paybound gateway: serving on http://%s, metering %s for %s through %s\n", ln.Addr(), up, *provider, base)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
