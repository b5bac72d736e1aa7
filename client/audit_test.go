package client_test

import (
	"bytes"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
	"github.com/paybound/paybound/internal/tlog"
)

// auditedLog is a log of three payments: one refunded in part, one only
// authorized, and one captured.
func auditedLog(t *testing.T) *fakeLog {
	l := newFakeLog()
	t.Cleanup(l.Close)
	l.pay("pay_01jq8v6x3k2m4n5p6q7r8s9t01", 1250, 1250, 250)
	l.pay("pay_01jq8v6x3k2m4n5p6q7r8s9t02", 500, 0, 0)
	l.pay("pay_01jq8v6x3k2m4n5p6q7r8s9t03", 900, 900, 0)
	return l
}

// TestAuditAgrees: a log and a ledger that agree pass every stage, in
// order, with what each established in the report.
func TestAuditAgrees(t *testing.T) {
	t.Parallel()
	l := auditedLog(t)
	var stages []client.AuditStage
	rep, err := client.Audit(t.Context(), client.New(l.URL, "pbk_op_test"), client.AuditOptions{
		Progress: func(r client.AuditReport) { stages = append(stages, r.Passed) }})
	if err != nil {
		t.Fatal(err)
	}
	want := []client.AuditStage{client.AuditLogKey, client.AuditCheckpoints, client.AuditEntries, client.AuditPayments, client.AuditLedger}
	if !slices.Equal(stages, want) {
		t.Errorf("progress %v, want %v", stages, want)
	}
	if rep.Passed != client.AuditLedger || rep.LogKey != l.LogKey || rep.Pinned || rep.Checkpoints != 1 ||
		rep.Checkpoint.Size != 6 || rep.LogPayments != 3 || rep.Payments != 3 || rep.Rechecked != 0 || rep.Ledger == nil || !rep.Ledger.OK {
		t.Errorf("report %+v", rep)
	}
	rep, err = client.Audit(t.Context(), client.New(l.URL, "pbk_op_test"), client.AuditOptions{LogKey: l.LogKey})
	if err != nil || !rep.Pinned {
		t.Errorf("pinned to the right key: %v %+v", err, rep)
	}
}

// TestAuditRechecksPaymentsThatChanged: a payment refunded after the
// checkpoint the audit checks the log at is checked against its own,
// fresher, trace instead.
func TestAuditRechecksPaymentsThatChanged(t *testing.T) {
	t.Parallel()
	l := auditedLog(t)
	const id = "pay_01jq8v6x3k2m4n5p6q7r8s9t03"
	l.setCheckpoint(func(signed []byte) []byte {
		if p := l.payment(id); p.AmountRefunded == 0 {
			l.log(id, pb.LogPaymentRefunded, 100)
			p.AmountRefunded = 100
		}
		return signed
	})
	rep, err := client.Audit(t.Context(), client.New(l.URL, "pbk_op_test"), client.AuditOptions{})
	if err != nil || rep.Checkpoint.Size != 6 || rep.Payments != 3 || rep.Rechecked != 1 {
		t.Fatalf("%v %+v", err, rep)
	}
}

// TestAuditWatchesCheckpoints: over its duration, the audit fetches a
// checkpoint each interval and proves each consistent with the one
// before, as the log grows; one that is not (the log forked, or shrank)
// is a finding.
func TestAuditWatchesCheckpoints(t *testing.T) {
	t.Parallel()
	l := auditedLog(t)
	c := client.New(l.URL, "pbk_op_test")
	n := 0
	l.setCheckpoint(func(signed []byte) []byte {
		if n++; n == 2 {
			go l.pay("pay_01jq8v6x3k2m4n5p6q7r8s9t04", 100, 100, 0) // the log grows during the watch
		}
		return signed
	})
	rep, err := client.Audit(t.Context(), c, client.AuditOptions{Duration: 100 * time.Millisecond, Interval: 20 * time.Millisecond})
	if err != nil || rep.Checkpoints < 3 {
		t.Fatalf("a growing log: %v %+v", err, rep)
	}
	for name, fake := range map[string]func(n int, signed []byte) []byte{
		"fork": func(n int, signed []byte) []byte {
			if n == 1 {
				return signed
			}
			c, _ := tlog.Open(signed, l.LogKey)
			return must(l.signer.Sign(c.Size, tlog.LeafHash([]byte("another history"))))
		},
		"shrink": func(n int, signed []byte) []byte {
			if n == 1 {
				return signed
			}
			return must(l.signer.Sign(1, tlog.LeafHash(l.entries[0])))
		},
	} {
		n := 0
		l.setCheckpoint(func(signed []byte) []byte { n++; return fake(n, signed) })
		rep, err := client.Audit(t.Context(), c, client.AuditOptions{Duration: 50 * time.Millisecond, Interval: 10 * time.Millisecond})
		if !errors.Is(err, client.ErrAudit) || !errors.Is(err, client.ErrInconsistent) && !errors.Is(err, client.ErrFork) || rep.Passed != client.AuditLogKey {
			t.Errorf("%s: %v, passed %v", name, err, rep.Passed)
		}
	}
}

// TestAuditFindings: each way a log and a ledger can disagree is a finding
// (ErrAudit), reported with what it is about, after the stages that
// passed; a failed call is not a finding and comes back as the client
// returns it.
func TestAuditFindings(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		key    string // the operator key sent; "" is pbk_op_test
		pin    string
		change func(l *fakeLog)
		passed client.AuditStage
		want   string
		is     error
	}{
		{name: "another key", pin: "paybound.example/log+00000000+AAAA", passed: client.AuditStarted, want: "is not the key you hold"},
		{name: "a refund only in the ledger", change: func(l *fakeLog) {
			l.setPayment("pay_01jq8v6x3k2m4n5p6q7r8s9t01", func(p *pb.Payment) { p.AmountRefunded++ })
		}, passed: client.AuditEntries, want: "payment pay_01jq8v6x3k2m4n5p6q7r8s9t01: the ledger says captured 1250, refunded 251"},
		{name: "a payment missing from the ledger", change: func(l *fakeLog) {
			l.mu.Lock()
			l.payments = l.payments[1:]
			l.mu.Unlock()
		}, passed: client.AuditEntries, want: "the log has entries of 1 payments the ledger does not list"},
		{name: "an entry changed", change: func(l *fakeLog) {
			l.mu.Lock()
			l.entries[5] = bytes.Replace(l.entries[5], []byte(`"amount":900`), []byte(`"amount":990`), 1)
			l.mu.Unlock()
		}, passed: client.AuditCheckpoints, want: "hash to root", is: client.ErrNotIncluded},
		{name: "an entry out of its chain", change: func(l *fakeLog) {
			l.mu.Lock()
			delete(l.heads, "pay_01jq8v6x3k2m4n5p6q7r8s9t03")
			l.log("pay_01jq8v6x3k2m4n5p6q7r8s9t03", pb.LogPaymentRefunded, 1)
			l.mu.Unlock()
		}, passed: client.AuditCheckpoints, want: `entry 6 of pay_01jq8v6x3k2m4n5p6q7r8s9t03 names prev ""`},
		{name: "a ledger that does not verify", change: func(l *fakeLog) {
			l.mu.Lock()
			l.ledgerOK = false
			l.mu.Unlock()
		}, passed: client.AuditPayments, want: "the ledger does not verify"},
		{name: "a checkpoint of another key", change: func(l *fakeLog) {
			skey, _ := must2(tlog.NewKey("paybound.example/log"))
			l.setCheckpoint(func([]byte) []byte { return must(must(tlog.NewSigner(skey)).Sign(0, tlog.EmptyRoot)) })
		}, passed: client.AuditLogKey, want: "checkpoint 1", is: client.ErrBadSignature},
	} {
		l := auditedLog(t)
		if c.change != nil {
			c.change(l)
		}
		rep, err := client.Audit(t.Context(), client.New(l.URL, "pbk_op_test"), client.AuditOptions{LogKey: c.pin})
		if !errors.Is(err, client.ErrAudit) || !strings.Contains(err.Error(), c.want) || (c.is != nil && !errors.Is(err, c.is)) {
			t.Errorf("%s: %v, want a finding with %q", c.name, err, c.want)
		}
		if strings.Contains(err.Error(), client.ErrAudit.Error()) {
			t.Errorf("%s: the finding's message carries ErrAudit's: %v", c.name, err)
		}
		if rep.Passed != c.passed {
			t.Errorf("%s: passed %v, want %v", c.name, rep.Passed, c.passed)
		}
	}
}

// TestAuditCallErrors: a call the server refuses fails the audit with
// the API's error as it is, not a finding; so do bad options.
func TestAuditCallErrors(t *testing.T) {
	t.Parallel()
	f, c := newFake(t)
	f.on("GET", "/v1/log/key", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("k\n")) })
	f.on("GET", "/v1/log/checkpoint", replyError(403, pb.ErrForbidden, "this call needs an operator key"))
	rep, err := client.Audit(t.Context(), c, client.AuditOptions{})
	var e *pb.Error
	if !errors.As(err, &e) || err != error(e) || errors.Is(err, client.ErrAudit) || rep.Passed != client.AuditLogKey {
		t.Errorf("a refused call: %v, passed %v", err, rep.Passed)
	}
	for _, o := range []client.AuditOptions{{Interval: -time.Second}, {Duration: -time.Second}, {Duration: 25 * time.Hour}} {
		if _, err := client.Audit(t.Context(), c, o); err == nil || errors.Is(err, client.ErrAudit) {
			t.Errorf("options %+v: %v", o, err)
		}
	}
}
