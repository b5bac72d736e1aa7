// Package risk scores a payment attempt before its hold: what a mandate
// technically allows but is likely wrong — an agent tricked into paying a
// stranger, a runaway loop, a drained wallet. It is pure: the caller
// gathers the attempt's context (the user's history, velocity counters,
// the wallet's balance) into an Input, and Evaluate returns a decision, a
// score and the signals that fired, each with its reason. Nothing here
// stores state or does I/O, so a decision can be replayed offline from a
// recorded Input.
//
// Built-in signals each add points to a score from 0 to 100; the score's
// thresholds make the decision (Config.ReviewAt, Config.BlockAt). A few
// signals decide on their own whatever the score (BlockNow, ReviewNow).
// Statistics are robust: the median and the median absolute deviation of
// the user's past amounts, not their mean, so one large past payment does
// not make the next large one look normal.
package risk

import (
	"fmt"
	"slices"
)

// Decision is what happens to the attempt.
type Decision string

const (
	Allow  Decision = "allow"
	Review Decision = "review" // the user confirms it, even inside a mandate
	Block  Decision = "block"  // declined, decline_code risk_blocked
)

// Assurance levels of the requester, as payments record them.
const (
	AssuranceSigned = "signed"
	AssuranceBearer = "bearer"
	AssuranceUser   = "user"
)

// Provenance says where an agent took a payment's payee or amount from:
// "user" (the user said so), "untrusted" (content the agent read: a page,
// an email, a post), or "" (unknown, the default).
const (
	ProvenanceUser      = "user"
	ProvenanceUntrusted = "untrusted"
)

// Window is a velocity count and sum over one period.
type Window struct {
	Count int64
	Sum   int64 // minor units
}

// Velocity is what one actor did lately: over the last minute, hour, day.
type Velocity struct {
	Minute, Hour, Day Window
}

// Input is one attempt with its context. Amounts are minor units of
// Currency; history amounts are the user's earlier captured payments in the
// same currency, newest first, at most MaxHistory.
type Input struct {
	Amount     int64
	Currency   string
	MerchantID string
	Category   string
	AgentID    string // "" for the user's own payment
	MandateID  string
	Assurance  string

	// History with this merchant, and with this merchant's category.
	MerchantHistory []int64
	CategoryHistory []int64
	// MandateHistory is what this mandate paid before.
	MandateHistory []int64
	// PaidMerchantBefore says whether the user ever paid this merchant.
	PaidMerchantBefore bool

	// Available is the wallet's available balance before this payment.
	Available int64

	// Velocity per agent, per mandate and per payee (merchant) of this
	// user; DeclinesLastHour counts the agent's declined attempts.
	AgentVelocity, MandateVelocity, PayeeVelocity Velocity
	DeclinesLastHour                              int64

	// MerchantFlags are set by the operator ("suspected_fraud", …);
	// MerchantAgeHours is how long ago the merchant was created.
	MerchantFlags    []string
	MerchantAgeHours int64

	// PayeeProvenance and AmountProvenance are what the agent declared.
	PayeeProvenance, AmountProvenance string
}

// MaxHistory bounds each history an Input carries.
const MaxHistory = 200

// Signal is one built-in check that fired.
type Signal struct {
	Name   string `json:"name"`
	Points int    `json:"points"`
	Reason string `json:"reason"`
}

// Assessment is Evaluate's answer.
type Assessment struct {
	Decision Decision `json:"decision"`
	Score    int      `json:"score"`
	Signals  []Signal `json:"signals"`
	// Rule names the operator's rule that decided, if one did.
	Rule string `json:"rule,omitempty"`
}

// Config holds the thresholds, each documented with its default.
type Config struct {
	// ReviewAt and BlockAt are the score thresholds (defaults 40 and 80).
	ReviewAt, BlockAt int
	// AmountOutlierMADs: an amount more than this many MADs above the
	// history's median is an outlier (default 6). MinHistory is the fewest
	// past payments that make a history (default 5).
	AmountOutlierMADs int64
	MinHistory        int
	// AmountOutlierRatio: with a history whose MAD is 0 (all alike), an
	// amount more than this many times the median is an outlier (default 3).
	AmountOutlierRatio int64
	// LargeNewPayee is the amount above which a first payment to a payee is
	// large (default 10,000 minor units: 100.00 in a two-decimal currency).
	LargeNewPayee int64
	// DrainPercent: a payment taking more than this share of the
	// available balance drains the wallet (default 80).
	DrainPercent int64
	// Velocity limits per agent, mandate and payee: most payments a minute,
	// an hour, a day (defaults 10, 120, 500).
	PerMinute, PerHour, PerDay int64
	// DeclineBurst is how many declines in the last hour make a retry
	// suspicious (default 5).
	DeclineBurst int64
	// NewMerchantHours: a merchant younger than this is new (default 24).
	NewMerchantHours int64
}

// Defaults returns the documented default thresholds.
func Defaults() Config {
	return Config{ReviewAt: 40, BlockAt: 80, AmountOutlierMADs: 6, MinHistory: 5, AmountOutlierRatio: 3,
		LargeNewPayee: 10_000, DrainPercent: 80, PerMinute: 10, PerHour: 120, PerDay: 500, DeclineBurst: 5,
		NewMerchantHours: 24}
}

// Evaluate scores in under cfg. It is deterministic and allocates little:
// it runs inside the payment request.
func Evaluate(in *Input, cfg *Config) Assessment {
	a := Assessment{Signals: []Signal{}}
	add := func(name string, points int, format string, args ...any) {
		a.Signals = append(a.Signals, Signal{Name: name, Points: points, Reason: fmt.Sprintf(format, args...)})
		a.Score += points
	}
	agent := in.AgentID != ""
	var scratch [MaxHistory]int64 // for the medians: no allocation

	// Amount against the user's own history, and the mandate's.
	for _, h := range []struct {
		name    string
		history []int64
		what    string
	}{
		{"amount_vs_merchant_history", in.MerchantHistory, "this merchant"},
		{"amount_vs_category_history", in.CategoryHistory, "this category"},
		{"amount_vs_mandate_history", in.MandateHistory, "this mandate"},
	} {
		if out, med, mad := outlier(in.Amount, h.history, cfg, scratch[:]); out {
			add(h.name, 25, "%d is far above the median %d (MAD %d) of %d earlier payments to %s", in.Amount, med, mad, len(h.history), h.what)
		}
	}

	// A payee never paid, especially with a large amount.
	if !in.PaidMerchantBefore {
		switch {
		case in.Amount > cfg.LargeNewPayee:
			add("new_payee_large_amount", 35, "first payment to this payee, and %d is above %d", in.Amount, cfg.LargeNewPayee)
		default:
			add("new_payee", 10, "first payment to this payee")
		}
	}

	// Share of the available balance.
	if in.Available > 0 && in.Amount*100 > in.Available*cfg.DrainPercent {
		add("drains_wallet", 25, "takes %d of the %d available (over %d%%)", in.Amount, in.Available, cfg.DrainPercent)
	}

	// Velocity per agent, mandate and payee.
	for _, v := range []struct {
		name string
		w    Velocity
		skip bool
	}{
		{"agent", in.AgentVelocity, !agent},
		{"mandate", in.MandateVelocity, in.MandateID == ""},
		{"payee", in.PayeeVelocity, false},
	} {
		if v.skip {
			continue
		}
		switch {
		case v.w.Minute.Count >= cfg.PerMinute:
			add("velocity_"+v.name, 30, "%d payments by this %s in the last minute (limit %d)", v.w.Minute.Count, v.name, cfg.PerMinute)
		case v.w.Hour.Count >= cfg.PerHour:
			add("velocity_"+v.name, 20, "%d payments by this %s in the last hour (limit %d)", v.w.Hour.Count, v.name, cfg.PerHour)
		case v.w.Day.Count >= cfg.PerDay:
			add("velocity_"+v.name, 15, "%d payments by this %s in the last day (limit %d)", v.w.Day.Count, v.name, cfg.PerDay)
		}
	}
	if agent && in.DeclinesLastHour >= cfg.DeclineBurst {
		add("decline_burst", 25, "%d declined attempts by this agent in the last hour", in.DeclinesLastHour)
	}

	// Who asked.
	if agent && in.Assurance == AssuranceBearer {
		add("bearer_agent", 10, "the agent used a bearer key, not a signed request")
	}

	// The merchant.
	if len(in.MerchantFlags) > 0 {
		add("merchant_flagged", 40, "the operator flagged this merchant: %v", in.MerchantFlags)
	}
	if in.MerchantAgeHours < cfg.NewMerchantHours {
		add("new_merchant", 10, "the merchant account is %dh old", in.MerchantAgeHours)
	}

	// What the agent read.
	if in.PayeeProvenance == ProvenanceUntrusted {
		add("untrusted_payee", 30, "the agent took the payee from content it read")
	}
	if in.AmountProvenance == ProvenanceUntrusted {
		add("untrusted_amount", 20, "the agent took the amount from content it read")
	}

	a.Score = min(a.Score, 100)
	switch {
	case a.Score >= cfg.BlockAt:
		a.Decision = Block
	case a.Score >= cfg.ReviewAt:
		a.Decision = Review
	default:
		a.Decision = Allow
	}
	// A user paying themselves is never blocked by the score alone: they
	// are asked to confirm.
	if !agent && a.Decision == Block {
		a.Decision = Review
	}
	return a
}

// outlier reports whether amount is far above history (robust z-score on
// the median and the MAD), with the median and MAD it used. scratch holds
// at least MaxHistory values; a longer history counts its newest MaxHistory.
func outlier(amount int64, history []int64, cfg *Config, scratch []int64) (bool, int64, int64) {
	if len(history) < cfg.MinHistory {
		return false, 0, 0
	}
	history = history[:min(len(history), MaxHistory)]
	s := scratch[:len(history)]
	copy(s, history)
	slices.Sort(s)
	med := s[(len(s)-1)/2]
	for i, x := range history {
		s[i] = max(x-med, med-x)
	}
	slices.Sort(s)
	mad := s[(len(s)-1)/2]
	if mad == 0 {
		return amount > med*cfg.AmountOutlierRatio, med, mad
	}
	return amount > med+cfg.AmountOutlierMADs*mad, med, mad
}

// Median returns the median of xs (the lower middle for an even count; 0
// for none). xs is not changed.
func Median(xs []int64) int64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// MAD returns the median absolute deviation of xs from med.
func MAD(xs []int64, med int64) int64 {
	d := make([]int64, len(xs))
	for i, x := range xs {
		d[i] = max(x-med, med-x)
	}
	return Median(d)
}
