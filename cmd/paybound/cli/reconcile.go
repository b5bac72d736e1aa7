package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
	"github.com/paybound/paybound/cmd/paybound/internal/cmdline"
)

// The merchant's statement: a CSV file with a header row naming its
// columns, in any order and any letter case. One of the ID columns is
// required, and type, amount and currency:
//
//	source_id (refund_id)      the Paybound object: pay_… for a capture or fee, re_… for a refund
//	payment_id (payment)       the payment
//	reference (ref, order_id)  the payment's metadata "reference" (or its payment link)
//	type                       capture (charge, payment, sale), refund (return), dispute_refund
//	                           (dispute, chargeback) or fee
//	amount                     minor units (1250), or a decimal in the currency's unit (12.50);
//	                           a refund's or fee's sign does not matter; a refund is its
//	                           whole amount, what the payer got back (Paybound's row shows
//	                           the merchant's part, and the fee the platform returned with it
//	                           apart, which counts as a fee row of the opposite sign)
//	currency                   ISO 4217
//	date (created_at)          optional: RFC 3339 or YYYY-MM-DD; the period when --from/--to are not given
//
// Rows are matched on the first ID column of the list above that the
// header has, and compared by ID and type: the sums of each (ID, type) on
// either side. Fees are compared only when the statement has fee rows.

// statementLimits bound what reconcile reads.
const (
	maxStatementBytes = 64 << 20
	maxStatementRows  = 1_000_000
)

// stmtRow is a row of either side, as reconcile compares them.
type stmtRow struct {
	line     int // the statement's line; 0 for Paybound's rows
	id, typ  string
	amount   int64 // signed as the report signs it: refunds and fees negative
	currency string
	date     time.Time
}

// columns maps the statement's column names to what reconcile reads.
var columns = map[string]string{
	"source_id": "source_id", "refund_id": "source_id",
	"payment_id": "payment_id", "payment": "payment_id",
	"reference": "reference", "ref": "reference", "order_id": "reference",
	"type": "type", "amount": "amount", "currency": "currency", "date": "date", "created_at": "date",
}

// idColumns are the ID columns, in the order one is chosen.
var idColumns = []string{"source_id", "payment_id", "reference"}

var typeAliases = map[string]string{
	"capture": pb.SettlementCapture, "charge": pb.SettlementCapture, "payment": pb.SettlementCapture, "sale": pb.SettlementCapture,
	"refund": pb.SettlementRefund, "return": pb.SettlementRefund,
	"dispute_refund": pb.SettlementDisputeRefund, "dispute": pb.SettlementDisputeRefund, "chargeback": pb.SettlementDisputeRefund,
	"fee": pb.SettlementFee,
}

// readStatement reads a statement: its rows and the ID column it matches
// on. Errors name the line and the column.
func readStatement(r io.Reader) (rows []stmtRow, idCol string, err error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, "", fmt.Errorf("the statement has no header row: %w", err)
	}
	at := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if c, ok := columns[h]; ok {
			if _, dup := at[c]; dup {
				return nil, "", fmt.Errorf("the statement's header names %s twice", c)
			}
			at[c] = i
		}
	}
	for _, c := range idColumns {
		if _, ok := at[c]; ok {
			idCol = c
			break
		}
	}
	if idCol == "" {
		return nil, "", errors.New("the statement's header needs an ID column: source_id, payment_id or reference")
	}
	for _, c := range []string{"type", "amount", "currency"} {
		if _, ok := at[c]; !ok {
			return nil, "", fmt.Errorf("the statement's header needs a %s column", c)
		}
	}
	for {
		rec, err := cr.Read() // blank lines are skipped
		if err == io.EOF {
			return rows, idCol, nil
		}
		if err != nil {
			return nil, "", fmt.Errorf("statement: %w", err)
		}
		if len(rows) >= maxStatementRows {
			return nil, "", fmt.Errorf("the statement has more than %d rows; split it by period", maxStatementRows)
		}
		line, _ := cr.FieldPos(0)
		row, err := statementRow(rec, at, idCol, line)
		if err != nil {
			return nil, "", err
		}
		rows = append(rows, row)
	}
}

// statementRow reads one record of the statement.
func statementRow(rec []string, at map[string]int, idCol string, line int) (stmtRow, error) {
	get := func(c string) string {
		i, ok := at[c]
		if !ok || i >= len(rec) {
			return ""
		}
		return strings.TrimSpace(rec[i])
	}
	r := stmtRow{line: line, id: get(idCol), currency: strings.ToUpper(get("currency"))}
	if r.id == "" {
		return r, fmt.Errorf("statement line %d: %s is empty", line, idCol)
	}
	typ, ok := typeAliases[strings.ToLower(get("type"))]
	if !ok {
		return r, fmt.Errorf("statement line %d: type %q is not capture, refund, dispute_refund or fee", line, get("type"))
	}
	r.typ = typ
	if err := pb.ValidateCurrency(r.currency, "currency"); err != nil {
		return r, fmt.Errorf("statement line %d: currency %q is not an ISO 4217 code", line, get("currency"))
	}
	a := get("amount")
	var err error
	if strings.Contains(a, ".") {
		r.amount, err = pb.ParseAmount(strings.TrimPrefix(a, "-"), r.currency)
	} else {
		r.amount, err = strconv.ParseInt(strings.TrimPrefix(a, "-"), 10, 64)
		if err == nil && (r.amount < 0 || r.amount > pb.MaxAmount) {
			err = errors.New("out of range")
		}
	}
	if err != nil {
		return r, fmt.Errorf("statement line %d: amount %q is neither minor units (1250) nor a decimal of %s (12.50)", line, a, r.currency)
	}
	if typ != pb.SettlementCapture {
		r.amount = -r.amount
	}
	if d := get("date"); d != "" {
		if r.date, err = time.Parse(time.RFC3339, d); err != nil {
			if r.date, err = time.Parse(time.DateOnly, d); err != nil {
				return r, fmt.Errorf("statement line %d: date %q is neither RFC 3339 nor YYYY-MM-DD", line, d)
			}
		}
	}
	return r, nil
}

// Finding is one disagreement between the statement and Paybound.
type Finding struct {
	Kind string `json:"kind"` // missing_in_statement, missing_in_paybound, differs
	ID   string `json:"id"`
	Type string `json:"type"`
	// Statement and Paybound are each side's sum for ID and Type (minor
	// units), with its currency; Line is the statement's first line of it.
	Statement         *int64 `json:"statement_amount,omitempty"`
	StatementCurrency string `json:"statement_currency,omitempty"`
	Paybound          *int64 `json:"paybound_amount,omitempty"`
	PayboundCurrency  string `json:"paybound_currency,omitempty"`
	Line              int    `json:"line,omitempty"`
	Detail            string `json:"detail"`
}

// Reconciliation is what reconcile found.
type Reconciliation struct {
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	MatchedOn   string    `json:"matched_on"`
	Matched     int       `json:"matched"`
	FeesSkipped bool      `json:"fees_skipped"`
	Findings    []Finding `json:"findings"`
}

// group is the sum of one side's rows of an (ID, type).
type group struct {
	amount     int64
	currencies []string
	line       int
}

type groupKey struct{ id, typ string }

func sum(rows []stmtRow) map[groupKey]*group {
	out := map[groupKey]*group{}
	for _, r := range rows {
		k := groupKey{r.id, r.typ}
		g := out[k]
		if g == nil {
			g = &group{line: r.line}
			out[k] = g
		}
		g.amount += r.amount
		if !slices.Contains(g.currencies, r.currency) {
			g.currencies = append(g.currencies, r.currency)
		}
	}
	return out
}

// reconcile compares the statement's rows with the report's, matched on
// idCol.
func reconcile(stmt []stmtRow, idCol string, rep *pb.SettlementReport) *Reconciliation {
	res := &Reconciliation{From: rep.From, To: rep.To, MatchedOn: idCol, Findings: []Finding{}}
	res.FeesSkipped = !slices.ContainsFunc(stmt, func(r stmtRow) bool { return r.typ == pb.SettlementFee })
	var ours []stmtRow
	for _, r := range rep.Rows {
		if r.Type == pb.SettlementFee && res.FeesSkipped {
			continue
		}
		id := map[string]string{"source_id": r.SourceID, "payment_id": r.PaymentID, "reference": r.Reference}[idCol]
		// A refund as the merchant records it: its whole amount; the fee
		// the platform returned with it is a fee given back.
		ours = append(ours, stmtRow{id: id, typ: r.Type, amount: r.Amount - r.FeeReturned, currency: r.Currency})
		if r.FeeReturned != 0 && !res.FeesSkipped {
			ours = append(ours, stmtRow{id: id, typ: pb.SettlementFee, amount: r.FeeReturned, currency: r.Currency})
		}
	}
	theirs, mine := sum(stmt), sum(ours)
	var onlyTheirs, onlyMine []groupKey
	for k, t := range theirs {
		m, ok := mine[k]
		if !ok {
			onlyTheirs = append(onlyTheirs, k)
			continue
		}
		tc, mc := strings.Join(t.currencies, "+"), strings.Join(m.currencies, "+")
		switch {
		case tc != mc:
			res.Findings = append(res.Findings, differs(k, t, m, fmt.Sprintf("currency: %s in the statement, %s in Paybound", tc, mc)))
		case t.amount != m.amount:
			res.Findings = append(res.Findings, differs(k, t, m, fmt.Sprintf("amount: %d in the statement, %d in Paybound (%s)", t.amount, m.amount, tc)))
		default:
			res.Matched++
		}
	}
	for k := range mine {
		if _, ok := theirs[k]; !ok {
			onlyMine = append(onlyMine, k)
		}
	}
	// An ID with one unmatched type on each side is one row whose type differs.
	for _, tk := range onlyTheirs {
		var same []groupKey
		for _, mk := range onlyMine {
			if mk.id == tk.id {
				same = append(same, mk)
			}
		}
		if len(same) == 1 && countID(onlyTheirs, tk.id) == 1 {
			mk := same[0]
			res.Findings = append(res.Findings, differs(tk, theirs[tk], mine[mk], fmt.Sprintf("type: %s in the statement, %s in Paybound", tk.typ, mk.typ)))
			onlyMine = slices.DeleteFunc(onlyMine, func(k groupKey) bool { return k == mk })
			continue
		}
		t := theirs[tk]
		res.Findings = append(res.Findings, Finding{Kind: "missing_in_paybound", ID: tk.id, Type: tk.typ, Statement: &t.amount,
			StatementCurrency: strings.Join(t.currencies, "+"), Line: t.line,
			Detail: fmt.Sprintf("statement line %d has no match in Paybound for %s", t.line, periodString(rep.From, rep.To))})
	}
	for _, mk := range onlyMine {
		m := mine[mk]
		res.Findings = append(res.Findings, Finding{Kind: "missing_in_statement", ID: mk.id, Type: mk.typ, Paybound: &m.amount,
			PayboundCurrency: strings.Join(m.currencies, "+"), Detail: "in Paybound's report, not in the statement"})
	}
	sort.Slice(res.Findings, func(i, j int) bool {
		a, b := res.Findings[i], res.Findings[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Type < b.Type
	})
	return res
}

func countID(ks []groupKey, id string) int {
	n := 0
	for _, k := range ks {
		if k.id == id {
			n++
		}
	}
	return n
}

func differs(k groupKey, t, m *group, detail string) Finding {
	return Finding{Kind: "differs", ID: k.id, Type: k.typ, Statement: &t.amount, StatementCurrency: strings.Join(t.currencies, "+"),
		Paybound: &m.amount, PayboundCurrency: strings.Join(m.currencies, "+"), Line: t.line, Detail: detail}
}

// reconcileCmd is `paybound reconcile STATEMENT.csv`. It exits 0 when the
// statement and Paybound agree, 1 when they differ, and 2 when it could
// not compare them (a bad command line, an unreadable statement, an API
// error).
func (cl *cli) reconcileCmd(args []string) error {
	c := cl.command("reconcile", "reconcile STATEMENT.csv [--server URL] [--key MERCHANT_KEY] [--from T --to T]", false)
	c.fs.StringVar(&c.url, "server", "", "the Paybound server, as --url")
	fromS := c.fs.String("from", "", "the period's start, RFC 3339 or YYYY-MM-DD (default: the statement's first date)")
	toS := c.fs.String("to", "", "the period's end, exclusive (default: the day after the statement's last date)")
	pos, err := c.parse(args, "STATEMENT.csv")
	if err != nil {
		return err
	}
	trouble := func(err error) error {
		cl.printError(err)
		// Exit status 2: nothing was compared.
		return fmt.Errorf("%w: %w", cmdline.ErrUsage, err)
	}
	data, err := cmdline.ReadFile(pos[0], maxStatementBytes)
	if err != nil {
		return trouble(err)
	}
	stmt, idCol, err := readStatement(bytes.NewReader(data))
	if err != nil {
		return trouble(err)
	}
	from, to, err := period(*fromS, *toS, stmt)
	if err != nil {
		return trouble(err)
	}
	api, ctx, err := c.client()
	if err != nil {
		return trouble(err)
	}
	rep, err := fetchReport(ctx, api, from, to)
	if err != nil {
		return trouble(err)
	}
	res := reconcile(stmt, idCol, rep)
	if err := c.print(res, func(w io.Writer) { printReconciliation(w, res) }); err != nil {
		return trouble(err)
	}
	if len(res.Findings) > 0 {
		return fmt.Errorf("%w: %d differences", cmdline.ErrReported, len(res.Findings))
	}
	return nil
}

// fetchReport reads the report of [from, to), halving a period that holds
// more movements than one report may.
func fetchReport(ctx context.Context, api *client.Client, from, to time.Time) (*pb.SettlementReport, error) {
	rep, err := api.SettlementReport(ctx, from, to)
	if pb.ErrorCode(err) != pb.ErrReportTooLarge || to.Sub(from) < 2*time.Millisecond {
		return rep, err
	}
	mid := from.Add(to.Sub(from) / 2).Truncate(time.Millisecond)
	a, err := fetchReport(ctx, api, from, mid)
	if err != nil {
		return nil, err
	}
	b, err := fetchReport(ctx, api, mid, to)
	if err != nil {
		return nil, err
	}
	a.To, a.Rows = b.To, append(a.Rows, b.Rows...)
	return a, nil
}

// period is the period to compare: --from and --to, else the statement's
// dates (from the first date's day to the day after the last).
func period(fromS, toS string, stmt []stmtRow) (from, to time.Time, err error) {
	parse := func(s, name string) (time.Time, error) {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t, nil
		}
		if t, err := time.Parse(time.DateOnly, s); err == nil {
			return t, nil
		}
		return time.Time{}, fmt.Errorf("--%s %q is neither RFC 3339 nor YYYY-MM-DD", name, s)
	}
	if fromS != "" {
		if from, err = parse(fromS, "from"); err != nil {
			return
		}
	}
	if toS != "" {
		if to, err = parse(toS, "to"); err != nil {
			return
		}
	}
	for _, r := range stmt {
		if r.date.IsZero() {
			continue
		}
		if fromS == "" && (from.IsZero() || r.date.Before(from)) {
			from = r.date.UTC().Truncate(24 * time.Hour)
		}
		if toS == "" && !r.date.Before(to) {
			to = r.date.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
		}
	}
	if from.IsZero() || to.IsZero() {
		return from, to, errors.New("give the period with --from and --to (the statement has no date column to take it from)")
	}
	return from, to, nil
}

func printReconciliation(w io.Writer, res *Reconciliation) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range res.Findings {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", strings.ReplaceAll(f.Kind, "_", " "), f.ID, f.Type, f.Detail)
	}
	tw.Flush()
	fmt.Fprintf(w, "%s: %d matched, %d differences (matched on %s", periodString(res.From, res.To), res.Matched, len(res.Findings), res.MatchedOn)
	if res.FeesSkipped {
		fmt.Fprint(w, "; fees not compared: the statement has none")
	}
	fmt.Fprintln(w, ")")
}

// periodString is [from, to) for people.
func periodString(from, to time.Time) string {
	return "[" + from.UTC().Format(time.RFC3339Nano) + ", " + to.UTC().Format(time.RFC3339Nano) + ")"
}
