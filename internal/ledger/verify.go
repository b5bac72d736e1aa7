package ledger

import (
	"context"
	"fmt"
	"sort"

	pb "github.com/paybound/paybound"
)

// Report is the outcome of Verify.
type Report struct {
	OK              bool          `json:"ok"`
	Currencies      []CurrencySum `json:"currencies"`
	AccountsChecked int           `json:"accounts_checked"`
	TransfersRead   int           `json:"transfers_checked"`
	// Problems describes each disagreement found; empty when OK.
	Problems []string `json:"problems"`
}

// CurrencySum is the net of all balances of one currency: zero in a sound
// ledger, posted and pending alike.
type CurrencySum struct {
	Currency string `json:"currency"`
	Sum      int64  `json:"sum"`
	Pending  int64  `json:"pending_sum"`
}

// maxProblems bounds the report of a badly broken ledger.
const maxProblems = 100

// Verify recomputes every account's balances from the transfers alone and
// compares them with the stored balances, from one consistent snapshot. It
// also checks that each currency sums to zero, that no account that must not
// go negative is, and that every post or void names an open hold once.
func Verify(ctx context.Context, st pb.Store) (Report, error) {
	v := &verifier{stored: map[int64]pb.Account{}, derived: map[int64]*pb.Account{}, holds: map[int64]pb.Transfer{}}
	err := st.ScanLedger(ctx, func(a *pb.Account) error {
		v.stored[a.ID] = *a
		return nil
	}, v.transfer)
	if err != nil {
		return Report{}, fmt.Errorf("couldn't read the ledger: %w", err)
	}
	for _, t := range v.resolutions {
		v.resolve(t)
	}
	v.compare()
	r := &v.r
	if r.Problems == nil {
		r.Problems = []string{}
	}
	r.OK = len(r.Problems) == 0
	return *r, nil
}

// verifier is one run of Verify: the balances stored, those derived from
// the transfers read so far, and the report.
type verifier struct {
	stored      map[int64]pb.Account
	derived     map[int64]*pb.Account
	holds       map[int64]pb.Transfer // open holds by ID
	resolutions []pb.Transfer         // posts and voids
	r           Report
}

func (v *verifier) problem(format string, args ...any) {
	if len(v.r.Problems) < maxProblems {
		v.r.Problems = append(v.r.Problems, fmt.Sprintf(format, args...))
	}
}

// acct returns the balances derived so far for account id.
func (v *verifier) acct(id int64) *pb.Account {
	a := v.derived[id]
	if a == nil {
		a = &pb.Account{ID: id}
		v.derived[id] = a
		if _, ok := v.stored[id]; !ok {
			v.problem("transfer references unknown account %d", id)
		}
	}
	return a
}

// transfer applies a transfer read to the derived balances; posts and
// voids wait for the end of the scan (resolve).
func (v *verifier) transfer(t *pb.Transfer) error {
	v.r.TransfersRead++
	d, c := v.acct(t.DebitAccountID), v.acct(t.CreditAccountID)
	switch t.Kind {
	case pb.TransferPosted:
		d.DebitsPosted += t.Amount
		c.CreditsPosted += t.Amount
	case pb.TransferPending:
		d.DebitsPending += t.Amount
		c.CreditsPending += t.Amount
		v.holds[t.ID] = *t
	case pb.TransferPost, pb.TransferVoid:
		// With several processes taking IDs in blocks, a post may sort
		// before its hold: resolve them after the scan.
		v.resolutions = append(v.resolutions, *t)
	default:
		v.problem("transfer %d has unknown kind %d", t.ID, t.Kind)
	}
	return nil
}

// resolve applies a post or void to the hold it names, which must be open.
func (v *verifier) resolve(t pb.Transfer) {
	d, c := v.acct(t.DebitAccountID), v.acct(t.CreditAccountID)
	h, ok := v.holds[t.PendingID]
	if !ok {
		v.problem("transfer %d resolves %d, which is not an open hold", t.ID, t.PendingID)
		return
	}
	delete(v.holds, t.PendingID)
	if h.DebitAccountID != t.DebitAccountID || h.CreditAccountID != t.CreditAccountID {
		v.problem("transfer %d resolves hold %d between other accounts", t.ID, h.ID)
	}
	d.DebitsPending -= h.Amount
	c.CreditsPending -= h.Amount
	if t.Kind == pb.TransferPost {
		if t.Amount > h.Amount {
			v.problem("transfer %d posts %d, more than hold %d's %d", t.ID, t.Amount, h.ID, h.Amount)
		}
		d.DebitsPosted += t.Amount
		c.CreditsPosted += t.Amount
	}
}

// compare checks each stored account against its derived balances and its
// flags, and each currency's sum.
func (v *verifier) compare() {
	sums := map[string]*CurrencySum{}
	for id, s := range v.stored {
		v.r.AccountsChecked++
		d := v.derived[id]
		if d == nil {
			d = &pb.Account{}
		}
		if d.DebitsPosted != s.DebitsPosted || d.CreditsPosted != s.CreditsPosted ||
			d.DebitsPending != s.DebitsPending || d.CreditsPending != s.CreditsPending {
			v.problem("account %d (%s %s): stored balances %+v differ from its transfers %+v", id, s.Owner, s.Currency, s, *d)
		}
		if s.Flags&pb.DebitsMustNotExceedCredits != 0 && s.DebitsPosted+s.DebitsPending > s.CreditsPosted {
			v.problem("account %d (%s %s) must not go negative but is", id, s.Owner, s.Currency)
		}
		cs := sums[s.Currency]
		if cs == nil {
			cs = &CurrencySum{Currency: s.Currency}
			sums[s.Currency] = cs
		}
		cs.Sum += s.CreditsPosted - s.DebitsPosted
		cs.Pending += s.CreditsPending - s.DebitsPending
	}
	v.r.Currencies = []CurrencySum{}
	for _, cs := range sums {
		if cs.Sum != 0 || cs.Pending != 0 {
			v.problem("%s does not sum to zero: posted %d, pending %d", cs.Currency, cs.Sum, cs.Pending)
		}
		v.r.Currencies = append(v.r.Currencies, *cs)
	}
	sort.Slice(v.r.Currencies, func(i, j int) bool { return v.r.Currencies[i].Currency < v.r.Currencies[j].Currency })
}
