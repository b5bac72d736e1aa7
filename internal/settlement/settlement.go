// Package settlement is the merchant's settlement report: every movement
// of the merchant's balance over a period (captures, fees, refunds, the
// refunds of disputes), in time order with a running balance per
// currency, and a summary per currency. Its rows are the ledger's own
// transfers on the merchant's accounts, one row a transfer, so the report's
// net for a currency is, by construction, the change of the merchant's
// posted balance in that currency over the period.
//
// What does not touch the merchant's balance is not in it: holds and their
// release (an authorization moves pending balances only, until it is
// captured), and a dispute's compensation, which the platform pays from its
// own compensation fund (sys_compensation) to the payer.
package settlement

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/service"
)

// Limits of a report.
const (
	// MaxSpan is the longest period a report covers.
	MaxSpan = 366 * 24 * time.Hour
	// DefaultMaxRows is how many movements a report holds at most, unless
	// Config says otherwise (a few MiB of JSON): a period with more is
	// refused with ErrReportTooLarge, to be asked in shorter periods.
	DefaultMaxRows = 5000
	// page is how many movements are read from the store at a time.
	page = 1000
)

// Store is what the report reads.
type Store interface {
	pb.SettlementStore
}

// Config is the report's configuration.
type Config struct {
	// MaxRows bounds a report's rows (0: DefaultMaxRows).
	MaxRows int
}

// Service is the settlement capability. Safe for concurrent use.
type Service struct {
	st  Store
	cfg Config
}

// New returns the settlement capability over st.
func New(st Store, cfg Config) *Service {
	if cfg.MaxRows <= 0 {
		cfg.MaxRows = DefaultMaxRows
	}
	return &Service{st: st, cfg: cfg}
}

// Report (merchant) reads the merchant's movements created in [from, to),
// at most MaxSpan long, to the millisecond. A period of more than
// Config.MaxRows movements is refused (ErrReportTooLarge): ask for
// shorter periods. A period not yet over is what was committed when it
// was read.
func (s *Service) Report(ctx context.Context, caller pb.Principal, from, to time.Time) (*pb.SettlementReport, error) {
	if err := service.RequireRole(caller, pb.RoleMerchant); err != nil {
		return nil, err
	}
	if from.IsZero() {
		return nil, pb.Errorf(pb.ErrParameterMissing, "from", "from is required: the period's start, an RFC 3339 timestamp")
	}
	if to.IsZero() {
		return nil, pb.Errorf(pb.ErrParameterMissing, "to", "to is required: the period's end (exclusive), an RFC 3339 timestamp")
	}
	if !to.After(from) {
		return nil, pb.Errorf(pb.ErrParameterInvalid, "to", "to must be after from")
	}
	if to.Sub(from) > MaxSpan {
		return nil, pb.Errorf(pb.ErrParameterInvalid, "to", "a report covers at most %d days; ask for shorter periods", MaxSpan/(24*time.Hour))
	}
	rep := &pb.SettlementReport{Object: "settlement_report", MerchantID: caller.ID, From: from.UTC(), To: to.UTC(), Rows: []pb.SettlementRow{}, Summary: []pb.SettlementSummary{}}
	sums := map[string]*pb.SettlementSummary{}
	f := pb.MerchantTransferFilter{MerchantID: caller.ID, From: from, To: to, Limit: page}
	for {
		ts, err := s.st.MerchantTransfers(ctx, f)
		if err != nil {
			return nil, err
		}
		if len(rep.Rows)+len(ts) > s.cfg.MaxRows {
			return nil, pb.Errorf(pb.ErrReportTooLarge, "to", "the period holds more than %d movements; ask for shorter periods", s.cfg.MaxRows)
		}
		for i := range ts {
			rep.Rows = append(rep.Rows, add(sums, &ts[i]))
		}
		if len(ts) < page {
			break
		}
		last := ts[len(ts)-1]
		f.AfterTime, f.AfterID = last.CreatedAt, last.ID
	}
	for _, sm := range sums {
		rep.Summary = append(rep.Summary, *sm)
	}
	sort.Slice(rep.Summary, func(i, j int) bool { return rep.Summary[i].Currency < rep.Summary[j].Currency })
	return rep, nil
}

// add is t as a row, counted in its currency's summary.
func add(sums map[string]*pb.SettlementSummary, t *pb.MerchantTransfer) pb.SettlementRow {
	sm := sums[t.Currency]
	if sm == nil {
		sm = &pb.SettlementSummary{Currency: t.Currency}
		sums[t.Currency] = sm
	}
	r := pb.SettlementRow{TransferID: t.ID, CreatedAt: t.CreatedAt, Type: kind(t), Currency: t.Currency, Amount: t.Amount,
		PaymentID: t.PaymentID, SourceID: t.Ref, Description: t.Description, Reference: t.Metadata["reference"], PaymentLink: t.PayLinkID}
	if r.Reference == "" {
		r.Reference = t.PayLinkID
	}
	switch r.Type {
	case pb.SettlementCapture:
		sm.Captures += t.Amount
	case pb.SettlementFee:
		sm.Fees += t.Amount
	case pb.SettlementRefund, pb.SettlementDisputeRefund:
		r.FeeReturned = t.RefundAmount + t.Amount // the refund less what the merchant paid
		sm.Refunds += t.Amount
		sm.FeesReturned += r.FeeReturned
		if r.Type == pb.SettlementDisputeRefund {
			sm.DisputeRefunds += t.Amount
		}
	default:
		sm.Adjustments += t.Amount
	}
	sm.Count++
	sm.Net += t.Amount
	r.Balance = sm.Net
	return r
}

// kind names what t was, from what caused it: a payment credited (a
// capture) or debited to the platform (its fee), a refund debited.
func kind(t *pb.MerchantTransfer) string {
	switch {
	case strings.HasPrefix(t.Ref, pb.PrefixPayment) && t.Amount > 0:
		return pb.SettlementCapture
	case strings.HasPrefix(t.Ref, pb.PrefixPayment) && t.Counterparty == pb.OwnerPlatform:
		return pb.SettlementFee
	case strings.HasPrefix(t.Ref, pb.PrefixRefund) && t.Amount < 0:
		if strings.HasPrefix(t.RefundReason, "dispute "+pb.PrefixDispute) {
			return pb.SettlementDisputeRefund
		}
		return pb.SettlementRefund
	}
	return pb.SettlementAdjustment
}

// csvTime is how the CSV writes times: UTC, to the millisecond, always
// with three digits.
const csvTime = "2006-01-02T15:04:05.000Z"

// CSVHeader is the header row of a report as CSV.
var CSVHeader = []string{"created_at", "type", "currency", "amount", "fee_returned", "balance", "payment_id", "source_id",
	"reference", "payment_link", "description", "transfer_id"}

// CSV renders the report's rows as CSV (RFC 4180: CRLF line ends, quoted
// where needed), with a header row; amounts are integers in the currency's
// minor units. A text cell that a spreadsheet would run as a formula (it
// starts with =, +, -, @, a tab or a carriage return) is prefixed with '.
func CSV(rep *pb.SettlementReport) ([]byte, error) {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.UseCRLF = true
	if err := w.Write(CSVHeader); err != nil {
		return nil, err
	}
	for _, r := range rep.Rows {
		rec := []string{r.CreatedAt.UTC().Format(csvTime), r.Type, r.Currency, strconv.FormatInt(r.Amount, 10),
			strconv.FormatInt(r.FeeReturned, 10), strconv.FormatInt(r.Balance, 10), r.PaymentID, r.SourceID,
			cell(r.Reference), r.PaymentLink, cell(r.Description), strconv.FormatInt(r.TransferID, 10)}
		if err := w.Write(rec); err != nil {
			return nil, err
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, fmt.Errorf("couldn't write the report as CSV: %w", err)
	}
	return b.Bytes(), nil
}

// cell defuses a text cell that a spreadsheet would read as a formula.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
