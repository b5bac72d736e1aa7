package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/tlog"
)

// MaxAuditEntries bounds the entries one Audit holds in memory (about 150
// bytes of hashes and sums each): a larger log is refused, not audited in
// part.
const MaxAuditEntries = 50_000_000

// ErrAudit is wrapped by every finding of Audit: a checkpoint that is not
// signed by the log's key or not consistent with the one before, entries
// that do not hash to the checkpoint's root or do not chain, a payment
// whose amounts differ between the ledger and the log, a ledger that does
// not verify. The tlog errors (ErrBadSignature, ErrInconsistent, …) are
// wrapped too where they apply. Errors that are not findings (a call that
// failed, ctx done, a log larger than MaxAuditEntries) do not wrap it.
//
// A finding's message is the finding alone: ErrAudit's own text is not in
// it.
var ErrAudit = errors.New("the audit found the log or the ledger at fault")

// finding is an error of Audit that is a finding: errors.Is(f, ErrAudit),
// and its message is its own.
type finding struct{ error }

func (f finding) Is(target error) bool { return target == ErrAudit }
func (f finding) Unwrap() error        { return f.error }

func found(format string, args ...any) error { return finding{fmt.Errorf(format, args...)} }

// AuditOptions are the choices of one Audit.
type AuditOptions struct {
	// LogKey is the log's verifier key as you held it before (a note
	// verifier key, as GET /v1/log/key serves it): the server's must be the
	// same. Empty, the audit takes the server's key on trust
	// (AuditReport.Pinned is false): it then proves the log consistent with
	// itself, not that it is the log you saw before.
	LogKey string
	// Duration is how long to watch checkpoints, 0 to 24h: one checkpoint
	// is fetched every Interval while at least an Interval is left. 0
	// fetches one.
	Duration time.Duration
	// Interval is the time between two checkpoints (default 1s).
	Interval time.Duration
	// Progress, when set, is called with the report each time a stage
	// passes, in the goroutine that called Audit, so that a caller can
	// show how far a long audit got.
	Progress func(AuditReport)
}

// AuditStage is how far an audit got; each stage needs the ones before it.
type AuditStage int

const (
	// AuditStarted: nothing is established yet.
	AuditStarted AuditStage = iota
	// AuditLogKey: the log's verifier key is known, and is the one pinned.
	AuditLogKey
	// AuditCheckpoints: every checkpoint watched is signed by the key and
	// consistent with the one before it.
	AuditCheckpoints
	// AuditEntries: the entries, downloaded as C2SP entry bundles,
	// re-derive the last checkpoint's root; each is canonical JSON, and
	// each payment's entries form its chain.
	AuditEntries
	// AuditPayments: every payment the ledger lists has the captured and
	// refunded amounts its log entries sum to, and every payment of the
	// log is listed.
	AuditPayments
	// AuditLedger: the ledger's own check passed; the log and the ledger
	// agree. Audit returned nil.
	AuditLedger
)

// AuditReport is what an Audit established. Passed is the last stage that
// passed; the fields of the stages after it are zero, but for Ledger.
type AuditReport struct {
	Passed AuditStage
	// LogKey is the verifier key every checkpoint was checked against;
	// Pinned is whether it was the caller's (AuditOptions.LogKey) rather
	// than taken from the server.
	LogKey string
	Pinned bool
	// Checkpoints is how many checkpoints were watched; Checkpoint is the
	// last, whose Size entries were audited.
	Checkpoints int
	Checkpoint  tlog.Checkpoint
	// LogPayments is how many payments the log's entries are about.
	LogPayments int
	// Payments is how many payments of the ledger were cross-checked;
	// Rechecked is how many of them changed during the audit, and so were
	// checked against their own trace, read after them.
	Payments, Rechecked int
	// Ledger is the server's check of the ledger (VerifyLedger), set once
	// it ran, even when it failed.
	Ledger *Report
}

// Audit checks a running server end to end with c, which must carry the
// operator's key: the checkpoints fetched over opts.Duration are each
// signed by the log's key and consistent with the one before; every entry,
// downloaded in C2SP entry bundles, re-derives the last checkpoint's root;
// each payment's entries form its chain; each payment's captured and
// refunded amounts in the log match the ledger's (a payment that changes
// during the audit is checked against its own, fresher, trace); and the
// ledger verifies (VerifyLedger).
//
// It returns the report of the stages that passed, with a nil error when
// all did. A finding wraps ErrAudit; the errors of c's calls are returned
// as c returns them (a *paybound.Error for an API error). Audit makes its
// calls one at a time and holds at most MaxAuditEntries entries' hashes
// and sums in memory.
func Audit(ctx context.Context, c *Client, opts AuditOptions) (AuditReport, error) {
	if opts.Interval == 0 {
		opts.Interval = time.Second
	}
	if opts.Interval < 0 || opts.Duration < 0 || opts.Duration > 24*time.Hour {
		return AuditReport{}, fmt.Errorf("client: audit: Interval %s must be positive and Duration %s between 0 and 24h", opts.Interval, opts.Duration)
	}
	a := &auditor{ctx: ctx, c: c, progress: opts.Progress}
	err := a.run(opts)
	return a.rep, err
}

// auditor is one Audit's state.
type auditor struct {
	ctx      context.Context
	c        *Client
	rep      AuditReport
	progress func(AuditReport)
}

// passed records that stage passed.
func (a *auditor) passed(stage AuditStage) {
	a.rep.Passed = stage
	if a.progress != nil {
		a.progress(a.rep)
	}
}

func (a *auditor) run(opts AuditOptions) error {
	vkey, err := a.c.LogKey(a.ctx)
	if err != nil {
		return err
	}
	if opts.LogKey != "" && opts.LogKey != vkey {
		return found("the server's log key %q is not the key you hold, %q", vkey, opts.LogKey)
	}
	a.rep.LogKey, a.rep.Pinned = vkey, opts.LogKey != ""
	a.passed(AuditLogKey)
	last, n, err := a.watch(vkey, opts.Duration, opts.Interval)
	if err != nil {
		return err
	}
	a.rep.Checkpoints, a.rep.Checkpoint = n, last
	a.passed(AuditCheckpoints)
	sums, err := a.entries(last)
	if err != nil {
		return err
	}
	a.rep.LogPayments = len(sums)
	a.passed(AuditEntries)
	if err := a.crossCheck(sums, vkey); err != nil {
		return err
	}
	a.passed(AuditPayments)
	rep, err := a.c.VerifyLedger(a.ctx)
	if err != nil {
		return err
	}
	a.rep.Ledger = rep
	if !rep.OK {
		return found("the ledger does not verify: %+v", rep)
	}
	a.passed(AuditLedger)
	return nil
}

// watch fetches checkpoints over duration, each signed by vkey and
// consistent with the one before, and returns the last and how many.
func (a *auditor) watch(vkey string, duration, interval time.Duration) (tlog.Checkpoint, int, error) {
	var prev tlog.Checkpoint
	n := 0
	deadline := time.Now().Add(duration)
	for {
		note, err := a.c.LogCheckpoint(a.ctx)
		if err != nil {
			return prev, n, err
		}
		c, err := tlog.Open(note, vkey)
		if err != nil {
			return prev, n, found("checkpoint %d: %w", n+1, err)
		}
		if n > 0 {
			if c.Size < prev.Size {
				return prev, n, found("%w: the log shrank from %d to %d entries", tlog.ErrInconsistent, prev.Size, c.Size)
			}
			p, err := a.c.ConsistencyProof(a.ctx, prev.Size, c.Size)
			if err != nil {
				return prev, n, err
			}
			hs, err := decodeHashes(p.Hashes)
			if err != nil {
				return prev, n, finding{err}
			}
			if err := checkConsistency(prev, c, hs); err != nil {
				return prev, n, finding{err}
			}
		}
		prev, n = c, n+1
		if !time.Now().Add(interval).Before(deadline) {
			return prev, n, nil
		}
		select {
		case <-a.ctx.Done():
			return prev, n, a.ctx.Err()
		case <-time.After(interval):
		}
	}
}

// paymentSums is what the log says about one payment.
type paymentSums struct {
	captured, refunded int64
	head               [32]byte
	entries            int
}

// entries downloads the tree's entries in bundles, re-derives its root, and
// checks each payment's chain; it returns what the log says per payment.
func (a *auditor) entries(c tlog.Checkpoint) (map[string]*paymentSums, error) {
	if c.Size > MaxAuditEntries {
		return nil, fmt.Errorf("the log has %d entries; this audit holds at most %d in memory", c.Size, MaxAuditEntries)
	}
	var mem tlog.Memory
	sums := map[string]*paymentSums{}
	for n := int64(0); n*256 < c.Size; n++ {
		width := int(min(256, c.Size-n*256))
		b, err := a.c.LogTile(a.ctx, tlog.TilePath(-1, n, width))
		if err != nil {
			return nil, err
		}
		for i := 0; i < width; i++ {
			if len(b) < 2 || len(b) < 2+int(binary.BigEndian.Uint16(b)) {
				return nil, found("entry bundle %d is cut short at entry %d", n, i)
			}
			size := int(binary.BigEndian.Uint16(b))
			entry := b[2 : 2+size]
			b = b[2+size:]
			idx, _ := mem.Append(entry)
			if err := account(sums, idx, entry); err != nil {
				return nil, finding{err}
			}
		}
		if len(b) != 0 {
			return nil, found("entry bundle %d holds more than %d entries", n, width)
		}
	}
	root, err := mem.Root(c.Size)
	if c.Size == 0 {
		root, err = tlog.EmptyRoot, nil
	}
	if err != nil {
		return nil, err
	}
	if root != c.Hash {
		return nil, found("%w: the %d entries served hash to root %x, the checkpoint says %x", tlog.ErrNotIncluded, c.Size, root, c.Hash)
	}
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
		page, err := a.c.ListPayments(a.ctx, ListParams{Limit: pb.MaxListLimit, StartingAfter: after})
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
				return found("payment %s: the ledger says captured %d, refunded %d; the log's entries do not", p.ID, p.AmountCaptured, p.AmountRefunded)
			}
			n, rechecked = n+1, rechecked+1
		}
		if !page.HasMore {
			break
		}
		after = page.Data[len(page.Data)-1].ID
	}
	if inLog < len(sums) {
		return found("the log has entries of %d payments the ledger does not list", len(sums)-inLog)
	}
	a.rep.Payments, a.rep.Rechecked = n, rechecked
	return nil
}

// recheck compares a payment with its own trace, read after it.
func (a *auditor) recheck(id, vkey string) (bool, error) {
	p, err := a.c.GetPayment(a.ctx, id)
	if err != nil {
		return false, err
	}
	t, err := a.c.PaymentTrace(a.ctx, id)
	if err != nil {
		return false, err
	}
	c, err := tlog.Open([]byte(t.Checkpoint), vkey)
	if err != nil {
		return false, finding{err}
	}
	s := map[string]*paymentSums{}
	for _, e := range t.Entries {
		hs, err := decodeHashes(e.InclusionProof)
		if err != nil {
			return false, finding{err}
		}
		if err := tlog.VerifyInclusion([]byte(e.Entry), e.Index, hs, c); err != nil {
			return false, found("payment %s, entry %d: %w", id, e.Index, err)
		}
		if err := account(s, e.Index, []byte(e.Entry)); err != nil {
			return false, finding{err}
		}
	}
	got := s[id]
	if got == nil {
		return false, found("payment %s has no entries in the log", id)
	}
	return got.captured == p.AmountCaptured && got.refunded == p.AmountRefunded, nil
}
