package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
	"github.com/paybound/paybound/cmd/paybound/internal/cmdline"
	"github.com/paybound/paybound/internal/risk"
	"github.com/paybound/paybound/internal/riskctl"
	"github.com/paybound/paybound/internal/strictjson"
)

func (cl *cli) risk(args []string) error {
	rules := func(args []string) error {
		return cl.group("risk rules", args, map[string]func([]string) error{"set": cl.setRiskRule,
			"list": cl.listRiskRules, "delete": cl.deleteRiskRule})
	}
	return cl.group("risk", args, map[string]func([]string) error{"explain": cl.explainRisk, "flag": cl.flagMerchant,
		"export": cl.exportRisk, "replay": cl.replayRisk, "rules": rules})
}

// printRisk prints an assessment for a person: the decision, what decided
// it, and each signal with its points and reason.
func printRisk(w io.Writer, r *pb.Risk) {
	if r.Partial { // an agent's view: docs/visibility.md
		fmt.Fprintf(w, "decision  %s\nscore     (shown to the payer, not to an agent)\n", r.Decision)
		names := make([]string, len(r.Signals))
		for i, s := range r.Signals {
			names[i] = s.Name
		}
		fmt.Fprintf(w, "signals   %s\n", strings.Join(names, ", "))
		return
	}
	fmt.Fprintf(w, "decision  %s\nscore     %d/100\n", r.Decision, r.Score)
	if r.Rule != "" {
		fmt.Fprintf(w, "rule      %s (the operator's rule decided)\n", r.Rule)
	}
	if len(r.Signals) == 0 {
		fmt.Fprintln(w, "signals   none")
		return
	}
	fmt.Fprintln(w, "signals")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range r.Signals {
		fmt.Fprintf(tw, "  +%d\t%s\t%s\n", s.Points, s.Name, s.Reason)
	}
	tw.Flush()
}

func (cl *cli) explainRisk(args []string) error {
	c := cl.command("risk explain", "risk explain pay_…", false)
	pos, api, ctx, err := c.call(args, "PAYMENT_ID")
	if err != nil {
		return err
	}
	p, err := api.GetPayment(ctx, pos[0])
	if err != nil {
		return err
	}
	if p.Risk == nil {
		return fmt.Errorf("payment %s shows no risk assessment to this key: merchants do not see the payer's, and a payment to a merchant that did not exist has none", p.ID)
	}
	return c.print(p.Risk, func(w io.Writer) {
		fmt.Fprintf(w, "payment   %s (%s, %s)\n", p.ID, money(p.Amount, p.Currency), p.Status)
		if p.DeclineCode != "" {
			fmt.Fprintf(w, "declined  %s\n", p.DeclineCode)
		}
		printRisk(w, p.Risk)
	})
}

func (cl *cli) setRiskRule(args []string) error {
	c := cl.command("risk rules set", "risk rules set NAME --expression CEL --action allow|review|block --priority N", false)
	expr := c.fs.String("expression", "", "a CEL condition over payment.*, merchant.*, agent.*, user.*, risk.* and now (required)")
	action := c.fs.String("action", "", "allow, review or block (required)")
	priority := c.fs.Int("priority", -1, "rules run in ascending priority; at a tie block, then review, then allow (required)")
	pos, err := c.parse(args, "NAME")
	if err != nil {
		return err
	}
	if *priority < 0 {
		return errors.New("--priority is required: a number from 0; lower runs first")
	}
	api, ctx, err := c.client()
	if err != nil {
		return err
	}
	r, err := api.PutRiskRule(ctx, pb.RiskRule{Name: pos[0], Expression: *expr, Action: pb.RiskDecision(*action), Priority: *priority})
	if err != nil {
		return err
	}
	return c.print(r, func(w io.Writer) {
		fmt.Fprintf(w, "rule %q set: %s when %s (priority %d)\n", r.Name, r.Action, r.Expression, r.Priority)
	})
}

func (cl *cli) listRiskRules(args []string) error {
	c := cl.command("risk rules list", "risk rules list", false)
	_, api, ctx, err := c.call(args)
	if err != nil {
		return err
	}
	rules, err := api.RiskRules(ctx)
	if err != nil {
		return err
	}
	return c.print(rules, func(w io.Writer) {
		if len(rules) == 0 {
			fmt.Fprintln(w, "no risk rules: the built-in signals decide")
			return
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PRIORITY\tACTION\tNAME\tEXPRESSION")
		for _, r := range rules {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", r.Priority, r.Action, r.Name, r.Expression)
		}
		tw.Flush()
	})
}

func (cl *cli) deleteRiskRule(args []string) error {
	c := cl.command("risk rules delete", "risk rules delete NAME", false)
	pos, api, ctx, err := c.call(args, "NAME")
	if err != nil {
		return err
	}
	if err := api.DeleteRiskRule(ctx, pos[0]); err != nil {
		return err
	}
	return c.print(map[string]any{"name": pos[0], "deleted": true}, func(w io.Writer) { fmt.Fprintf(w, "rule %q deleted\n", pos[0]) })
}

func (cl *cli) flagMerchant(args []string) error {
	c := cl.command("risk flag", "risk flag mch_… [--flags suspected_fraud,…]", false)
	flags := c.fs.String("flags", "", "comma-separated flags; empty clears them")
	pos, api, ctx, err := c.call(args, "MERCHANT_ID")
	if err != nil {
		return err
	}
	list := []string{}
	for f := range strings.SplitSeq(*flags, ",") {
		if f = strings.TrimSpace(f); f != "" {
			list = append(list, f)
		}
	}
	f, err := api.SetMerchantFlags(ctx, pos[0], list)
	if err != nil {
		return err
	}
	return c.print(f, func(w io.Writer) {
		if len(f.Flags) == 0 {
			fmt.Fprintf(w, "%s has no flags\n", f.MerchantID)
			return
		}
		fmt.Fprintf(w, "%s flagged: %s\n", f.MerchantID, strings.Join(f.Flags, ", "))
	})
}

// maxExport bounds one export.
const maxExport = 1_000_000

func (cl *cli) exportRisk(args []string) error {
	c := cl.command("risk export", "risk export [--limit N] > attempts.jsonl", false)
	limit := c.fs.Int("limit", 1000, fmt.Sprintf("most attempts to write, newest first (at most %d)", maxExport))
	if _, err := c.parse(args); err != nil {
		return err
	}
	if *limit < 1 || *limit > maxExport {
		return fmt.Errorf("--limit must be 1 to %d", maxExport)
	}
	api, ctx, err := c.client()
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(cl.stdout)
	n, after := 0, ""
	for n < *limit {
		page, err := api.RiskAttempts(ctx, client.ListParams{Limit: pb.MaxListLimit, StartingAfter: after})
		if err != nil {
			return err
		}
		for _, a := range page.Data {
			if n == *limit {
				break
			}
			b, err := json.Marshal(a)
			if err != nil {
				return err
			}
			bw.Write(append(b, '\n'))
			n++
		}
		if !page.HasMore {
			break
		}
		after = page.NextStartingAfter
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(cl.stderr, "exported %d attempts; label them with \"label\": \"fraud\" or \"legit\" and replay them with paybound risk replay\n", n)
	return nil
}

// maxReplayLine bounds one line of a replay file.
const maxReplayLine = 1 << 20

func (cl *cli) replayRisk(args []string) error {
	c := cl.command("risk replay", "risk replay FILE.jsonl [--rules FILE.json] [--config FILE.json]", false)
	rulesFile := c.fs.String("rules", "", "the rules to replay against, a JSON array of {name, expression, action, priority} (default: the server's current rules)")
	configFile := c.fs.String("config", "", "risk thresholds as JSON, as the server's --risk-config (default: the built-in defaults)")
	pos, err := c.parse(args, "FILE")
	if err != nil {
		return err
	}
	cfg := risk.Defaults()
	if *configFile != "" {
		b, err := cmdline.ReadFile(*configFile, 1<<20)
		if err != nil {
			return err
		}
		got, err := riskctl.ParseRiskConfig(b)
		if err != nil {
			return err
		}
		cfg = *got
	}
	var stored []pb.RiskRule
	if *rulesFile != "" {
		if stored, err = readRiskRules(*rulesFile); err != nil {
			return err
		}
	} else {
		api, ctx, err := c.client()
		if err != nil {
			return err
		}
		if stored, err = api.RiskRules(ctx); err != nil {
			return fmt.Errorf("couldn't fetch the server's rules (or pass --rules FILE): %w", err)
		}
	}
	rules := make([]*risk.Rule, 0, len(stored))
	for _, r := range stored {
		rule, err := risk.NewRule(r.Name, r.Expression, r.Action, r.Priority)
		if err != nil {
			return fmt.Errorf("rule %q: %w", r.Name, err)
		}
		rules = append(rules, rule)
	}
	risk.Sort(rules)
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	rep, err := replay(c.cl.ctx, f, &cfg, rules)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	if *configFile == "" {
		rep.Note = "thresholds: the built-in defaults; pass --config with the server's --risk-config file if it has one"
	}
	return c.print(rep, func(w io.Writer) { rep.print(w) })
}

// readRiskRules reads the rules file of risk replay --rules: a JSON array
// of {name, expression, action, priority}, each with a priority and a name
// of its own, no more than a server runs.
func readRiskRules(path string) ([]pb.RiskRule, error) {
	b, err := cmdline.ReadFile(path, 4<<20)
	if err != nil {
		return nil, err
	}
	var in []struct {
		Name       string          `json:"name"`
		Expression string          `json:"expression"`
		Action     pb.RiskDecision `json:"action"`
		Priority   *int            `json:"priority"`
	}
	if err := strictjson.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("%s: want a JSON array of {name, expression, action, priority}: %w", path, err)
	}
	if len(in) > pb.MaxRiskRules {
		return nil, fmt.Errorf("%s: %d rules; a server runs at most %d", path, len(in), pb.MaxRiskRules)
	}
	var stored []pb.RiskRule
	seen := map[string]bool{}
	for i, r := range in {
		if r.Priority == nil {
			return nil, fmt.Errorf("%s: rule %d (%q) has no priority", path, i+1, r.Name)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("%s: two rules are named %q", path, r.Name)
		}
		seen[r.Name] = true
		stored = append(stored, pb.RiskRule{Name: r.Name, Expression: r.Expression, Action: r.Action, Priority: *r.Priority})
	}
	return stored, nil
}

// replayReport is what a replay found.
type replayReport struct {
	Attempts  int            `json:"attempts"`
	Decisions map[string]int `json:"decisions"` // by new decision
	// Changed lists attempts whose decision differs from the recorded one.
	Changed []replayChange `json:"changed"`
	// Confusion counts labeled attempts by label and new decision:
	// confusion["fraud"]["block"].
	Confusion map[string]map[string]int `json:"confusion,omitempty"`
	// RuleErrors counts, per rule, the attempts it could not be evaluated
	// on (it did not match them).
	RuleErrors map[string]int `json:"rule_errors,omitempty"`
	// ChangedTotal counts every changed decision; Changed lists the first
	// maxChanged.
	ChangedTotal int    `json:"changed_total"`
	Note         string `json:"note,omitempty"`
}

// maxChanged bounds the changes a replay lists.
const maxChanged = 1000

type replayChange struct {
	PaymentID string `json:"payment_id"`
	Was       string `json:"was"`
	Now       string `json:"now"`
	Score     int    `json:"score"`
	Rule      string `json:"rule,omitempty"`
}

// replay evaluates each recorded attempt of r (pb.RiskAttempt, one per
// line) under cfg and rules.
func replay(ctx context.Context, r io.Reader, cfg *risk.Config, rules []*risk.Rule) (*replayReport, error) {
	rep := &replayReport{Decisions: map[string]int{}, Changed: []replayChange{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxReplayLine)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		// Fields a newer export adds are skipped; a key twice, or in
		// other letter cases, is refused, as the server refuses it.
		var at pb.RiskAttempt
		if err := (strictjson.Options{AllowUnknownFields: true}).Unmarshal(sc.Bytes(), &at); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if len(at.Input) == 0 {
			return nil, fmt.Errorf("line %d: no \"input\": each line is an attempt as paybound risk export writes it", line)
		}
		var in risk.Input
		if err := strictjson.Unmarshal(at.Input, &in); err != nil {
			return nil, fmt.Errorf("line %d: input: %w", line, err)
		}
		switch at.Label {
		case "", "fraud", "legit":
		default:
			return nil, fmt.Errorf("line %d: label must be fraud or legit, not %q", line, at.Label)
		}
		a, errs := risk.Assess(ctx, &in, cfg, rules)
		for _, e := range errs {
			if rep.RuleErrors == nil {
				rep.RuleErrors = map[string]int{}
			}
			name, _, _ := strings.Cut(e.Error(), ":")
			rep.RuleErrors[name]++
		}
		rep.Attempts++
		rep.Decisions[string(a.Decision)]++
		if at.Risk != nil && at.Risk.Decision != a.Decision {
			rep.ChangedTotal++
			if len(rep.Changed) < maxChanged {
				rep.Changed = append(rep.Changed, replayChange{PaymentID: at.PaymentID, Was: string(at.Risk.Decision), Now: string(a.Decision), Score: a.Score, Rule: a.Rule})
			}
		}
		if at.Label != "" {
			if rep.Confusion == nil {
				rep.Confusion = map[string]map[string]int{"fraud": {}, "legit": {}}
			}
			rep.Confusion[at.Label][string(a.Decision)]++
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return rep, nil
}

func (rep *replayReport) print(w io.Writer) {
	fmt.Fprintf(w, "%d attempts: %d allow, %d review, %d block\n", rep.Attempts, rep.Decisions["allow"], rep.Decisions["review"], rep.Decisions["block"])
	if rep.Note != "" {
		fmt.Fprintln(w, rep.Note)
	}
	if len(rep.Changed) > 0 {
		fmt.Fprintf(w, "\n%d decisions change", rep.ChangedTotal)
		if rep.ChangedTotal > len(rep.Changed) {
			fmt.Fprintf(w, " (the first %d listed)", len(rep.Changed))
		}
		fmt.Fprintln(w, ":")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, ch := range rep.Changed {
			by := fmt.Sprintf("score %d", ch.Score)
			if ch.Rule != "" {
				by = "rule " + ch.Rule
			}
			fmt.Fprintf(tw, "  %s\t%s → %s\t%s\n", ch.PaymentID, ch.Was, ch.Now, by)
		}
		tw.Flush()
	}
	if rep.Confusion != nil {
		fraud, legit := rep.Confusion["fraud"], rep.Confusion["legit"]
		fmt.Fprintln(w, "\nconfusion (labels × decisions):")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "\tallow\treview\tblock\t")
		for _, l := range []string{"fraud", "legit"} {
			m := rep.Confusion[l]
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t\n", l, m["allow"], m["review"], m["block"])
		}
		tw.Flush()
		// Stopped (review or block) is the positive prediction.
		tp, fn := fraud["review"]+fraud["block"], fraud["allow"]
		fp := legit["review"] + legit["block"]
		if tp+fn > 0 {
			fmt.Fprintf(w, "fraud stopped (recall): %d of %d (%.0f%%)\n", tp, tp+fn, 100*float64(tp)/float64(tp+fn))
		}
		if tp+fp > 0 {
			fmt.Fprintf(w, "stops that were fraud (precision): %d of %d (%.0f%%)\n", tp, tp+fp, 100*float64(tp)/float64(tp+fp))
		}
		if n := legit["allow"] + fp; n > 0 {
			fmt.Fprintf(w, "legit payments stopped: %d of %d\n", fp, n)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(rep.RuleErrors)) {
		fmt.Fprintf(w, "%s could not be evaluated on %d attempts (it did not match them)\n", name, rep.RuleErrors[name])
	}
}
