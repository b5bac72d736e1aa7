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
	stored := map[int64]pb.Account{}
	derived := map[int64]*pb.Account{}
	holds := map[int64]pb.Transfer{} // open holds by ID
	var resolutions []pb.Transfer    // posts and voids
	var r Report
	problem := func(format string, args ...any) {
		if len(r.Problems) < maxProblems {
			r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
		}
	}
	acct := func(id int64) *pb.Account {
		a := derived[id]
		if a == nil {
			a = &pb.Account{ID: id}
			derived[id] = a
			if _, ok := stored[id]; !ok {
				problem("transfer references unknown account %d", id)
			}
		}
		return a
	}
	err := st.ScanLedger(ctx, func(a *pb.Account) error {
		stored[a.ID] = *a
		return nil
	}, func(t *pb.Transfer) error {
		r.TransfersRead++
		d, c := acct(t.DebitAccountID), acct(t.CreditAccountID)
		switch t.Kind {
		case pb.TransferPosted:
			d.DebitsPosted += t.Amount
			c.CreditsPosted += t.Amount
		case pb.TransferPending:
			d.DebitsPending += t.Amount
			c.CreditsPending += t.Amount
			holds[t.ID] = *t
		case pb.TransferPost, pb.TransferVoid:
			// With several processes taking IDs in blocks, a post may sort
			// before its hold: resolve them after the scan.
			resolutions = append(resolutions, *t)
		default:
			problem("transfer %d has unknown kind %d", t.ID, t.Kind)
		}
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("couldn't read the ledger: %w", err)
	}
	for _, t := range resolutions {
		d, c := acct(t.DebitAccountID), acct(t.CreditAccountID)
		h, ok := holds[t.PendingID]
		if !ok {
			problem("transfer %d resolves %d, which is not an open hold", t.ID, t.PendingID)
			continue
		}
		delete(holds, t.PendingID)
		if h.DebitAccountID != t.DebitAccountID || h.CreditAccountID != t.CreditAccountID {
			problem("transfer %d resolves hold %d between other accounts", t.ID, h.ID)
		}
		d.DebitsPending -= h.Amount
		c.CreditsPending -= h.Amount
		if t.Kind == pb.TransferPost {
			if t.Amount > h.Amount {
				problem("transfer %d posts %d, more than hold %d's %d", t.ID, t.Amount, h.ID, h.Amount)
			}
			d.DebitsPosted += t.Amount
			c.CreditsPosted += t.Amount
		}
	}
	sums := map[string]*CurrencySum{}
	for id, s := range stored {
		r.AccountsChecked++
		d := derived[id]
		if d == nil {
			d = &pb.Account{}
		}
		if d.DebitsPosted != s.DebitsPosted || d.CreditsPosted != s.CreditsPosted ||
			d.DebitsPending != s.DebitsPending || d.CreditsPending != s.CreditsPending {
			problem("account %d (%s %s): stored balances %+v differ from its transfers %+v", id, s.Owner, s.Currency, s, *d)
		}
		if s.Flags&pb.DebitsMustNotExceedCredits != 0 && s.DebitsPosted+s.DebitsPending > s.CreditsPosted {
			problem("account %d (%s %s) must not go negative but is", id, s.Owner, s.Currency)
		}
		cs := sums[s.Currency]
		if cs == nil {
			cs = &CurrencySum{Currency: s.Currency}
			sums[s.Currency] = cs
		}
		cs.Sum += s.CreditsPosted - s.DebitsPosted
		cs.Pending += s.CreditsPending - s.DebitsPending
	}
	r.Currencies = []CurrencySum{}
	for _, cs := range sums {
		if cs.Sum != 0 || cs.Pending != 0 {
			problem("%s does not sum to zero: posted %d, pending %d", cs.Currency, cs.Sum, cs.Pending)
		}
		r.Currencies = append(r.Currencies, *cs)
	}
	sort.Slice(r.Currencies, func(i, j int) bool { return r.Currencies[i].Currency < r.Currencies[j].Currency })
	if r.Problems == nil {
		r.Problems = []string{}
	}
	r.OK = len(r.Problems) == 0
	return r, nil
}
