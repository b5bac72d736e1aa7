package paylinks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"html/template"

	pb "github.com/paybound/paybound"
)

// payNotes says who may pay a link and how.
const payNotes = "Pay with a user's API key, or an agent's key (or an RFC 9421 signed agent request) together with " +
	"mandate_id naming the user's mandate that covers this payment; without a mandate the agent's payment waits for the " +
	"user's confirmation. Omit mandate_id when a user pays. The answer is the payment (201), or a decline (402) that " +
	"carries its payment_id, exactly as POST /v1/payments answers."

// Offer returns link id's public offer: anyone may read it.
func (s *Service) Offer(ctx context.Context, id string) (*pb.PayLinkOffer, error) {
	l, err := s.read(ctx, id)
	if err != nil {
		return nil, err
	}
	m, err := s.core.Merchant(ctx, l.MerchantID)
	if err != nil {
		return nil, err
	}
	o := &pb.PayLinkOffer{Object: "payment_link_offer", ID: l.ID, URL: l.URL, MerchantID: l.MerchantID, Amount: l.Amount,
		Currency: l.Currency, AmountDisplay: pb.FormatAmount(l.Amount, l.Currency), Description: l.Description,
		ExpiresAt: l.ExpiresAt, Status: "open",
		Pay: pb.PayLinkCall{Method: "POST", URL: s.cfg.PublicURL + "/v1/payment_links/" + l.ID + "/payments",
			Headers: map[string]string{"Authorization": "Bearer <user or agent API key>", "Idempotency-Key": "<a new unique key, reused on retries>",
				"Content-Type": "application/json"},
			Body:  map[string]string{"mandate_id": "<mdt_… when an agent pays under its user's mandate; omit otherwise>"},
			Notes: payNotes}}
	if m != nil {
		o.MerchantName = m.Name
	}
	if left := l.UsesLeft(); left >= 0 {
		o.UsesLeft = &left
	}
	switch l.Payable(s.cfg.Clock.Now()) {
	case pb.ErrPayLinkInactive:
		o.Status = "inactive"
	case pb.ErrPayLinkExpired:
		o.Status = "expired"
	case pb.ErrPayLinkUsedUp:
		o.Status = "used_up"
	}
	return o, nil
}

// pageStyle is the page's only style; the Content-Security-Policy allows it
// by its hash, and nothing else: no scripts, images, fonts or frames.
const pageStyle = `body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em;color:#1a1a1a}` +
	`h1{font-size:1.4em;margin:0 0 .2em}.amount{font-size:2em;font-weight:600;margin:.3em 0}.muted{color:#666}` +
	`.closed{color:#a00;font-weight:600}code,pre{background:#f3f3f3;border-radius:4px}pre{padding:.8em;overflow-x:auto;white-space:pre-wrap}`

// PageCSP is the Content-Security-Policy of a link's page.
var PageCSP = func() string {
	h := sha256.Sum256([]byte(pageStyle))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(h[:]) +
		"'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

var page = template.Must(template.New("link").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Pay {{.MerchantName}}: {{.Description}}</title>
<style>{{.Style}}</style>
</head>
<body>
<p class="muted">Payment link · Paybound</p>
<h1>{{.MerchantName}}</h1>
<p>{{.Description}}</p>
<p class="amount">{{.AmountDisplay}} {{.Currency}}</p>
{{if eq .Status "open"}}<p>{{if .ExpiresAt}}Open until {{.ExpiresAt.Format "2006-01-02 15:04 MST"}}.{{end}}
{{if .UsesLeft}}{{.UsesLeft}} payment(s) left.{{end}}</p>
<h2>How to pay</h2>
<p>This is a payment request from {{.MerchantName}} ({{.MerchantID}}). Ask your AI agent to pay it: the agent reads this
link's offer (the same address, with <code>Accept: application/json</code>) and pays under a mandate you granted, or asks
you to confirm. Or pay it yourself through the API with your Paybound key:</p>
<pre>curl -X POST {{.Pay.URL}} \
  -H "Authorization: Bearer $PAYBOUND_KEY" \
  -H "Idempotency-Key: $(uuidgen)"</pre>
{{else}}<p class="closed">{{if eq .Status "inactive"}}This link was deactivated by the merchant.{{else if eq .Status "expired"}}This link has expired.{{else}}This link has been paid as many times as it allows.{{end}}
It accepts no more payments.</p>{{end}}
</body>
</html>
`))

// Page renders o as the small self-contained HTML page a browser gets.
func Page(o *pb.PayLinkOffer) ([]byte, error) {
	var b bytes.Buffer
	err := page.Execute(&b, struct {
		*pb.PayLinkOffer
		Style    template.CSS
		UsesLeft any
	}{o, template.CSS(pageStyle), usesLeft(o)})
	return b.Bytes(), err
}

func usesLeft(o *pb.PayLinkOffer) any {
	if o.UsesLeft == nil {
		return nil
	}
	return *o.UsesLeft
}
