package cli

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/paybound/paybound/client"
)

// audit checks a running server end to end (operator key) with
// client.Audit, printing what each stage established as it passes.
func (cl *cli) audit(args []string) error {
	c := cl.command("audit", "audit [--duration 10s] [--interval 1s] [--log-key KEY|@FILE]", false)
	duration := c.fs.Duration("duration", 3*time.Second, "how long to watch checkpoints")
	interval := c.fs.Duration("interval", time.Second, "how often to fetch a checkpoint")
	pinned := c.fs.String("log-key", "", "the log's verifier key, if you hold one from before (default: trust the server's, and say so)")
	if _, err := c.parse(args); err != nil {
		return err
	}
	if *interval <= 0 || *duration < 0 || *duration > 24*time.Hour {
		return errors.New("--interval must be positive and --duration between 0 and 24h")
	}
	api, ctx, err := c.client()
	if err != nil {
		return err
	}
	key := *pinned
	if key != "" {
		if key, err = readArg(key); err != nil {
			return err
		}
		if key == "" {
			return fmt.Errorf("--log-key %s holds no key", *pinned)
		}
	}
	_, err = client.Audit(ctx, api, client.AuditOptions{LogKey: key, Duration: *duration, Interval: *interval,
		Progress: func(rep client.AuditReport) { printAuditStage(cl.stdout, rep, *duration) }})
	return err
}

// printAuditStage says what the stage of an audit that just passed
// established.
func printAuditStage(w io.Writer, rep client.AuditReport, duration time.Duration) {
	switch rep.Passed {
	case client.AuditLogKey:
		if !rep.Pinned {
			fmt.Fprintf(w, "log key %s (as the server gives it; pin it with --log-key next time)\n", rep.LogKey)
		}
	case client.AuditCheckpoints:
		fmt.Fprintf(w, "checkpoints: %d over %s, each signed and consistent with the one before; last: size %d\n", rep.Checkpoints, duration, rep.Checkpoint.Size)
	case client.AuditEntries:
		fmt.Fprintf(w, "entries: %d, every leaf hash re-derived, root matches the checkpoint; %d payments, each its own chain\n", rep.Checkpoint.Size, rep.LogPayments)
	case client.AuditPayments:
		fmt.Fprintf(w, "payments: %d cross-checked, captured and refunded amounts match the log (%d rechecked after changing during the audit)\n", rep.Payments, rep.Rechecked)
	case client.AuditLedger:
		fmt.Fprintf(w, "ledger: sound\nOK: the log and the ledger agree\n")
	}
}
