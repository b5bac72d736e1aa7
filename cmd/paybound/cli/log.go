package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
	"github.com/paybound/paybound/cmd/paybound/internal/cmdline"
	"github.com/paybound/paybound/internal/strictjson"
	tl "github.com/paybound/paybound/internal/tlog"
)

// The transparency log from the command line: a payment's trace and
// receipt, offline verification of a receipt, and an end-to-end audit of a
// running server.

func (cl *cli) trace(args []string) error {
	c := cl.command("payments trace", "payments trace pay_…", false)
	pos, api, ctx, err := c.call(args, "PAYMENT_ID")
	if err != nil {
		return err
	}
	t, err := api.PaymentTrace(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(t, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "INDEX\tTIME\tEVENT\tBY\tDETAILS")
		for _, e := range t.Entries {
			if e.Redacted {
				fmt.Fprintf(tw, "%d\t-\t%s\t-\t%s\n", e.Index, e.Type, withheldNote(e.Reason, e.LeafHash))
				continue
			}
			var ent client.ReceiptEntry
			json.Unmarshal([]byte(e.Entry), &ent) // the server's own canonical JSON
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", e.Index, ent.Time, ent.Type, actor(ent.Actor), ent.Data)
			if e.Risk != nil {
				fmt.Fprintf(tw, "\t\t\t\t%s\n", riskNote(e.Risk))
			}
		}
		tw.Flush()
		if c, err := tl.ParseCheckpoint(noteBody(t.Checkpoint)); err == nil {
			fmt.Fprintf(w, "every entry proven in checkpoint %s size %d; keep a receipt with: paybound payments receipt %s\n", c.Origin, c.Size, t.PaymentID)
		}
	})
}

// withheldNote says what a party is told of an entry withheld from it.
func withheldNote(reason, leaf string) string {
	if leaf == "" {
		return "(withheld from you: " + reason + "; logged before entries were salted, so not proven to you)"
	}
	return "(withheld from you: " + reason + "; leaf hash " + leaf + ", proven)"
}

// riskNote shows a risk opening: "risk_sha256 opens to …".
func riskNote(o *pb.RiskOpening) string {
	s := "risk_sha256 opens to: " + string(o.Decision)
	if d := o.Detail; d != nil {
		s += fmt.Sprintf(", score %d", d.Score)
		if d.Rule != "" {
			s += ", rule " + strconv.Quote(d.Rule)
		}
	}
	if len(o.Signals) > 0 {
		s += ", signals " + strings.Join(o.Signals, ", ")
	}
	return s
}

func actor(a pb.Actor) string {
	s := string(a.Role) + " " + a.ID
	if a.Assurance != "" && a.Assurance != pb.AssuranceUser {
		s += " (" + string(a.Assurance) + ")"
	}
	return s
}

// noteBody is the text of a signed note, without its signatures.
func noteBody(note string) string {
	body, _, _ := strings.Cut(note, "\n\n")
	return body + "\n"
}

func (cl *cli) receipt(args []string) error {
	c := cl.command("payments receipt", "payments receipt pay_… [--out FILE]", false)
	out := c.fs.String("out", "", "write the receipt to FILE instead of standard output")
	pos, api, ctx, err := c.call(args, "PAYMENT_ID")
	if err != nil {
		return err
	}
	r, err := api.PaymentReceipt(ctx, pos[0])
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if *out == "" {
		_, err = cl.stdout.Write(b)
		return err
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(cl.stdout, "receipt of %s (%d entries) written to %s; check it with: paybound verify receipt %s --log-key '%s'\n",
		r.PaymentID, len(r.Proofs), *out, *out, r.LogKey)
	return nil
}

// verify runs `paybound verify receipt`.
func (cl *cli) verify(args []string) error {
	return cl.group("verify", args, map[string]func([]string) error{"receipt": cl.verifyReceipt})
}

// maxReceiptBytes bounds a receipt file.
const maxReceiptBytes = 8 << 20

func (cl *cli) verifyReceipt(args []string) error {
	c := cl.command("verify receipt", "verify receipt FILE --log-key KEY|@FILE [--seen FILE] [--url URL]", false)
	logKey := c.fs.String("log-key", "", "the log's verifier key, from a source you trust (GET /v1/log/key), or @FILE (required)")
	policyPath := c.fs.String("policy", "", "a witness policy file: also require its quorum's cosignatures on the checkpoint")
	seenPath := c.fs.String("seen", "", "file of the checkpoints seen before, one per log (default: paybound/checkpoints.json in your config directory)")
	pos, err := c.parse(args, "FILE")
	if err != nil {
		return err
	}
	vkey, err := readArg(*logKey)
	vkey = strings.TrimSpace(vkey)
	if err != nil || vkey == "" {
		return errors.New("--log-key is required: the log's verifier key (GET /v1/log/key on a server you trust), or @FILE")
	}
	b, err := cmdline.ReadFile(pos[0], maxReceiptBytes)
	if err != nil {
		return err
	}
	var r client.Receipt
	if err := (strictjson.Options{AllowUnknownFields: true}).Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s is not a receipt: %w", pos[0], err)
	}
	v, err := client.VerifyReceipt(&r, vkey)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	if *policyPath != "" {
		p, err := cmdline.ReadFile(*policyPath, 1<<20)
		if err != nil {
			return err
		}
		err = v.VerifyWitnesses(p)
		if errors.Is(err, client.ErrReceipt) {
			return fmt.Errorf("%s: %w", pos[0], err)
		}
		if err != nil {
			return err // the policy does not parse
		}
	}
	// Against the checkpoints seen before: the log must not have forked.
	if *seenPath == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return fmt.Errorf("couldn't find your config directory for --seen: %w", err)
		}
		*seenPath = filepath.Join(dir, "paybound", "checkpoints.json")
	}
	var api *client.Client
	if c.url != "" { // only when asked: verification is otherwise offline
		api, _, err = c.publicClient()
		if err != nil {
			return err
		}
	}
	note, err := checkSeen(cl.ctx, *seenPath, vkey, v.Note, api)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	return c.print(v, func(w io.Writer) { printVerified(w, v, note) })
}

// printVerified shows a verified receipt, entry by entry, and note, what
// was not checked.
func printVerified(w io.Writer, v *client.VerifiedReceipt, note string) {
	withheld := 0
	for _, e := range v.Entries {
		if e.Withheld != "" {
			withheld++
		}
	}
	held := ""
	if withheld > 0 {
		held = fmt.Sprintf(" (%d withheld from you)", withheld)
	}
	fmt.Fprintf(w, "OK: %d entries of %s%s, chained, in log %s at size %d, signed by its key\n",
		len(v.Entries), v.PaymentID, held, v.Checkpoint.Origin, v.Checkpoint.Size)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, e := range v.Entries {
		switch {
		case e.Withheld != "":
			fmt.Fprintf(tw, "  %d\t-\t%s\t-\t%s\n", e.Index, e.Type, withheldNote(e.Withheld, e.Leaf))
		case e.Unchained:
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s (prev not checked: the entry before it is withheld)\n", e.Index, e.Time, e.Type, actor(e.Actor), e.Data)
		default:
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", e.Index, e.Time, e.Type, actor(e.Actor), e.Data)
		}
	}
	tw.Flush()
	if v.Risk != nil {
		fmt.Fprintln(w, riskNote(v.Risk)+" (checked)")
	}
	if note != "" {
		fmt.Fprintln(w, note)
	}
}

// publicClient is a client for the log's public endpoints: no API key.
func (c *cmd) publicClient() (*client.Client, context.Context, error) {
	if c.key == "" && c.cl.getenv("PAYBOUND_KEY") == "" {
		c.key = "none" // never sent: the log's read endpoints are public
	}
	return c.client()
}

// readArg returns s, or the content of file F for s = @F.
func readArg(s string) (string, error) {
	if f, ok := strings.CutPrefix(s, "@"); ok {
		b, err := cmdline.ReadFile(f, 64<<10)
		return strings.TrimSpace(string(b)), err
	}
	return s, nil
}

// checkSeen compares a verified checkpoint with the one seen before for the
// same log (by its key), and then remembers the larger: the same size with
// another root is a fork; another size needs a consistency proof, fetched
// from api when there is one. A checkpoint that was not proven consistent
// never replaces the one remembered, so a fork stays detectable. It returns
// a note for the user when something was not checked.
func checkSeen(ctx context.Context, path, vkey string, note []byte, api *client.Client) (string, error) {
	seen := map[string]string{}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", err
	default:
		if err := strictjson.Unmarshal(b, &seen); err != nil {
			return "", fmt.Errorf("%s is not a file of seen checkpoints: %w", path, err)
		}
	}
	now, err := tl.Open(note, vkey)
	if err != nil {
		return "", err
	}
	msg := ""
	keep := note
	if old, ok := seen[vkey]; ok {
		before, err := tl.Open([]byte(old), vkey)
		if err != nil {
			return "", fmt.Errorf("the checkpoint remembered in %s does not verify: %w", path, err)
		}
		switch {
		case before.Size == now.Size:
			if err := tl.VerifyConsistency(before, now, nil); err != nil {
				return "", fmt.Errorf("%w: this receipt's checkpoint and the one seen before (%s) have size %d and different roots", err, path, now.Size)
			}
		case api == nil:
			msg = fmt.Sprintf("note: not checked against the checkpoint of size %d seen before (pass --url to fetch a consistency proof); that one stays the one remembered", before.Size)
			keep = []byte(old)
		default:
			var ce *client.ConsistencyError
			err := client.VerifyConsistency(ctx, api, vkey, []byte(old), note)
			if errors.As(err, &ce) {
				return "", fmt.Errorf("%w: the checkpoint of size %d seen before and this one of size %d", ce.Err, before.Size, now.Size)
			}
			if err != nil {
				return "", err
			}
		}
		if before.Size > now.Size {
			keep = []byte(old)
		}
	}
	seen[vkey] = string(keep)
	out, _ := json.MarshalIndent(seen, "", "  ")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return msg, err
	}
	return msg, os.WriteFile(path, append(out, '\n'), 0o600)
}
