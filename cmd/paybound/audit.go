package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
	tl "github.com/paybound/paybound/internal/tlog"
)

// maxAuditEntries bounds the entries one audit holds in memory (about 150
// bytes of hashes and sums each).
const maxAuditEntries = 50_000_000

// audit checks a running server end to end (operator key): checkpoints
// over --duration are each signed and consistent with the one before; every
// entry, downloaded as C2SP entry bundles, re-derives the tree's root; every
// payment's entries form its chain; and each payment's captured and
// refunded amounts in the log match the ledger's.
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
	a := &auditor{ctx: ctx, api: api, out: cl.stdout}
	return a.run(*pinned, *duration, *interval)
}

type auditor struct {
	ctx context.Context
	api *client.Client
	out io.Writer
}

func (a *auditor) printf(format string, args ...any) { fmt.Fprintf(a.out, format, args...) }

func (a *auditor) run(pinned string, duration, interval time.Duration) error {
	vkey, err := a.api.LogKey(a.ctx)
	if err != nil {
		return err
	}
	if pinned != "" {
		if pinned, err = readArg(pinned); err != nil {
			return err
		}
		if pinned != vkey {
			return fmt.Errorf("the server's log key %q is not the key you hold, %q", vkey, pinned)
		}
	} else {
		a.printf("log key %s (as the server gives it; pin it with --log-key next time)\n", vkey)
	}
	last, err := a.watch(vkey, duration, interval)
	if err != nil {
		return err
	}
	sums, err := a.entries(last)
	if err != nil {
		return err
	}
	if err := a.crossCheck(sums, vkey); err != nil {
		return err
	}
	rep, err := a.api.VerifyLedger(a.ctx)
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("the ledger does not verify: %+v", rep)
	}
	a.printf("ledger: sound\nOK: the log and the ledger agree\n")
	return nil
}

// watch fetches checkpoints over duration, each signed by vkey and
// consistent with the one before, and returns the last.
func (a *auditor) watch(vkey string, duration, interval time.Duration) (tl.Checkpoint, error) {
	var prev tl.Checkpoint
	n := 0
	deadline := time.Now().Add(duration)
	for {
		note, err := a.api.LogCheckpoint(a.ctx)
		if err != nil {
			return prev, err
		}
		c, err := tl.Open(note, vkey)
		if err != nil {
			return prev, fmt.Errorf("checkpoint %d: %w", n+1, err)
		}
		if n > 0 {
			if c.Size < prev.Size {
				return prev, fmt.Errorf("%w: the log shrank from %d to %d entries", tl.ErrInconsistent, prev.Size, c.Size)
			}
			p, err := a.api.ConsistencyProof(a.ctx, prev.Size, c.Size)
			if err != nil {
				return prev, err
			}
			hs, err := decodeHashes(p.Hashes)
			if err != nil {
				return prev, err
			}
			if err := tl.VerifyConsistency(prev, c, hs); err != nil {
				return prev, fmt.Errorf("checkpoints of size %d and %d: %w", prev.Size, c.Size, err)
			}
		}
		prev, n = c, n+1
		if !time.Now().Add(interval).Before(deadline) {
			break
		}
		select {
		case <-a.ctx.Done():
			return prev, a.ctx.Err()
		case <-time.After(interval):
		}
	}
	a.printf("checkpoints: %d over %s, each signed and consistent with the one before; last: size %d\n", n, duration, prev.Size)
	return prev, nil
}

// paymentSums is what the log says about one payment.
type paymentSums struct {
	captured, refunded int64
	head               [32]byte
	entries            int
}

// entries downloads the tree's entries in bundles, re-derives its root, and
// checks each payment's chain; it returns what the log says per payment.
func (a *auditor) entries(c tl.Checkpoint) (map[string]*paymentSums, error) {
	if c.Size > maxAuditEntries {
		return nil, fmt.Errorf("the log has %d entries; this audit holds at most %d in memory", c.Size, maxAuditEntries)
	}
	var mem tl.Memory
	sums := map[string]*paymentSums{}
	for n := int64(0); n*256 < c.Size; n++ {
		width := int(min(256, c.Size-n*256))
		b, err := a.api.LogTile(a.ctx, tl.TilePath(-1, n, width))
		if err != nil {
			return nil, err
		}
		for i := 0; i < width; i++ {
			if len(b) < 2 || len(b) < 2+int(binary.BigEndian.Uint16(b)) {
				return nil, fmt.Errorf("entry bundle %d is cut short at entry %d", n, i)
			}
			size := int(binary.BigEndian.Uint16(b))
			entry := b[2 : 2+size]
			b = b[2+size:]
			idx, _ := mem.Append(entry)
			if err := account(sums, idx, entry); err != nil {
				return nil, err
			}
		}
		if len(b) != 0 {
			return nil, fmt.Errorf("entry bundle %d holds more than %d entries", n, width)
		}
	}
	root, err := mem.Root(c.Size)
	if c.Size == 0 {
		root, err = tl.EmptyRoot, nil
	}
	if err != nil {
		return nil, err
	}
	if root != c.Hash {
		return nil, fmt.Errorf("%w: the %d entries served hash to root %x, the checkpoint says %x", tl.ErrNotIncluded, c.Size, root, c.Hash)
	}
	a.printf("entries: %d, every leaf hash re-derived, root matches the checkpoint; %d payments, each its own chain\n", c.Size, len(sums))
	return sums, nil
}

// account adds entry idx to its payment's sums and checks its chain.
func account(sums map[string]*paymentSums, idx int64, entry []byte) error {
	var e struct {
		Type    string `json:"type"`
		Subject string `json:"subject"`
		Prev    string `json:"prev"`
		Data    struct {
			Amount int64 `json:"amount"`
		} `json:"data"`
	}
	if err := json.Unmarshal(entry, &e); err != nil {
		return fmt.Errorf("entry %d is not JSON: %w", idx, err)
	}
	if c, err := pb.Canonical(entry); err != nil || !bytes.Equal(c, entry) {
		return fmt.Errorf("entry %d is not canonical JSON", idx)
	}
	if !pb.HasPrefix(e.Subject, pb.PrefixPayment) {
		return nil
	}
	s := sums[e.Subject]
	if s == nil {
		s = &paymentSums{}
		sums[e.Subject] = s
	}
	want := ""
	if s.entries > 0 {
		want = hex.EncodeToString(s.head[:])
	}
	if e.Prev != want {
		return fmt.Errorf("entry %d of %s names prev %q; the payment's previous entry hashes to %q", idx, e.Subject, e.Prev, want)
	}
	s.head, s.entries = pb.LeafHash(entry), s.entries+1
	switch e.Type {
	case pb.LogPaymentCaptured:
		s.captured += e.Data.Amount
	case pb.LogPaymentRefunded:
		s.refunded += e.Data.Amount
	}
	return nil
}

// crossCheck compares every payment the ledger holds with the log. A
// payment that changed after the audit's checkpoint is checked again
// against its own, fresher, trace.
func (a *auditor) crossCheck(sums map[string]*paymentSums, vkey string) error {
	n, rechecked := 0, 0
	inLog := 0 // payments of the log found in the ledger
	after := ""
	for {
		page, err := a.api.ListPayments(a.ctx, client.ListParams{Limit: pb.MaxListLimit, StartingAfter: after})
		if err != nil {
			return err
		}
		for _, p := range page.Data {
			s := sums[p.ID]
			if s != nil {
				inLog++
			}
			if s != nil && s.captured == p.AmountCaptured && s.refunded == p.AmountRefunded {
				n++
				continue
			}
			fresh, err := a.recheck(p.ID, vkey)
			if err != nil {
				return err
			}
			if !fresh {
				return fmt.Errorf("payment %s: the ledger says captured %d, refunded %d; the log's entries do not", p.ID, p.AmountCaptured, p.AmountRefunded)
			}
			n, rechecked = n+1, rechecked+1
		}
		if !page.HasMore {
			break
		}
		after = page.Data[len(page.Data)-1].ID
	}
	if inLog < len(sums) {
		return fmt.Errorf("the log has entries of %d payments the ledger does not list", len(sums)-inLog)
	}
	a.printf("payments: %d cross-checked, captured and refunded amounts match the log (%d rechecked after changing during the audit)\n", n, rechecked)
	return nil
}

// recheck compares a payment with its own trace, read after it.
func (a *auditor) recheck(id, vkey string) (bool, error) {
	p, err := a.api.GetPayment(a.ctx, id)
	if err != nil {
		return false, err
	}
	t, err := a.api.PaymentTrace(a.ctx, id)
	if err != nil {
		return false, err
	}
	c, err := tl.Open([]byte(t.Checkpoint), vkey)
	if err != nil {
		return false, err
	}
	s := map[string]*paymentSums{}
	for _, e := range t.Entries {
		hs, err := decodeHashes(e.InclusionProof)
		if err != nil {
			return false, err
		}
		if err := tl.VerifyInclusion([]byte(e.Entry), e.Index, hs, c); err != nil {
			return false, fmt.Errorf("payment %s, entry %d: %w", id, e.Index, err)
		}
		if err := account(s, e.Index, []byte(e.Entry)); err != nil {
			return false, err
		}
	}
	got := s[id]
	if got == nil {
		return false, errors.New("payment " + id + " has no entries in the log")
	}
	return got.captured == p.AmountCaptured && got.refunded == p.AmountRefunded, nil
}
