package bench

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paybound/paybound/cmd/paybound/internal/cmdline"
)

// acpVersion is the ACP API-Version the load speaks.
const acpVersion = "2026-04-17"

// benchACP is `paybound bench acp`: agents buying through ACP over HTTP,
// each checkout a create, a delegate_payment of the agent's card (signed)
// and a complete that captures the payment. It prints one JSON line:
// checkouts and requests per second, and latency percentiles of the
// requests and of whole checkouts.
func benchACP(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) error {
	fs := flag.NewFlagSet("paybound bench acp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cmdline.UsageFor(fs, stderr, "paybound bench acp [flags]")
	dur := fs.Duration("duration", 5*time.Second, "how long to submit")
	clients := fs.Int("clients", 64, "concurrent HTTP clients")
	agents := fs.Int("agents", 64, "agents buying, each for its own funded user")
	db := fs.String("db", "", "a postgres:// URL for the in-process server's store (default: SQLite)")
	profile := fs.String("cpuprofile", "", "write a CPU profile of this process to the file")
	process := fs.Bool("process", false, processUsage)
	if err := fs.Parse(args); err != nil {
		return err
	}
	stopProfile, err := cpuProfile(*profile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if *clients < 1 || *clients > 10_000 || *agents < 1 || *agents > 10_000 || *dur <= 0 {
		return errors.New("bench acp: need 1 <= clients <= 10000, 1 <= agents <= 10000 and a positive duration")
	}
	cfg := payLoad{dur: *dur, clients: *clients, payers: *agents, db: *db, env: env, process: *process}
	srv, stop, err := startLoadServer(ctx, cfg, 0)
	if err != nil {
		return err
	}
	defer stop()
	call := newCaller(ctx, srv.URL, *clients)
	shop, err := setupShop(call, srv.OperatorKey, *agents)
	if err != nil {
		return err
	}
	before, err := srv.Usage()
	if err != nil {
		return err
	}
	r := &acpRun{host: strings.TrimPrefix(srv.URL, "http://"), shop: shop, deadline: time.Now().Add(*dur),
		lat: make([][]time.Duration, *clients), whole: make([][]time.Duration, *clients)}
	start := time.Now()
	var wg sync.WaitGroup
	for c := range *clients {
		wg.Go(func() { r.buy(c, shop.agents[c%len(shop.agents)]) })
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if p := r.firstErr.Load(); p != nil {
		return *p
	}
	reqs, whole := slices.Concat(r.lat...), slices.Concat(r.whole...)
	if len(whole) == 0 {
		return errors.New("bench acp: no checkout completed")
	}
	slices.Sort(reqs)
	slices.Sort(whole)
	store := "sqlite"
	if cmdline.IsPostgres(*db) {
		store = "postgres"
	}
	done := r.done.Load()
	after, err := srv.Usage()
	if err != nil {
		return err
	}
	out := map[string]any{"bench": "acp", "store": store, "clients": *clients, "agents": *agents, "checkouts": done, "seconds": elapsed,
		"checkouts_per_sec": int64(float64(done) / elapsed), "requests_per_sec": int64(float64(3*done) / elapsed),
		"create_complete_per_sec": int64(float64(2*done) / elapsed),
		"request_p50_ms":          ms(reqs[len(reqs)/2]), "request_p99_ms": ms(reqs[len(reqs)*99/100]),
		"checkout_p50_ms": ms(whole[len(whole)/2]), "checkout_p99_ms": ms(whole[len(whole)*99/100])}
	after.sub(before).report(out, elapsed, done, "checkout", *db)
	emit(stdout, out)
	return nil
}

// acpShop is the load's merchant, its product and the agents that buy it.
type acpShop struct {
	merchant, product string
	agents            []acpAgent
}

// acpAgent is an agent with its bearer key, signing key and card.
type acpAgent struct {
	id, apiKey, card, expMonth, expYear string
	key                                 ed25519.PrivateKey
}

// setupShop creates a merchant selling one digital product, and agents
// each of its own funded user, under a mandate with room for the run, with
// a card.
func setupShop(call caller, opKey string, n int) (acpShop, error) {
	merchant, users, err := setupPayers(call, opKey, n)
	if err != nil {
		return acpShop{}, err
	}
	var prod struct {
		ID string `json:"id"`
	}
	if err := call("POST", "/v1/products", merchant.APIKey, map[string]any{"name": "bench tea", "price": 100, "currency": "USD",
		"fulfillment": "digital"}, 201, &prod); err != nil {
		return acpShop{}, err
	}
	shop := acpShop{merchant: merchant.ID, product: prod.ID}
	for _, u := range users {
		pub, priv, _ := ed25519.GenerateKey(nil)
		jwk := json.RawMessage(`{"kty":"OKP","crv":"Ed25519","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`)
		var ag struct {
			ID     string `json:"id"`
			APIKey string `json:"api_key"`
		}
		if err := call("POST", "/v1/agents", u.APIKey, map[string]any{"name": "bench agent", "public_key": jwk}, 201, &ag); err != nil {
			return shop, err
		}
		var m struct {
			ID string `json:"id"`
		}
		if err := call("POST", "/v1/mandates", u.APIKey, map[string]any{"agent_id": ag.ID, "description": "benchmark", "currency": "USD",
			"max_amount": 100, "budget": map[string]any{"amount": int64(1e12)}, "merchant_ids": []string{merchant.ID}}, 201, &m); err != nil {
			return shop, err
		}
		var card struct {
			Number   string `json:"number"`
			ExpMonth string `json:"exp_month"`
			ExpYear  string `json:"exp_year"`
		}
		if err := call("POST", "/v1/mandates/"+m.ID+"/card", u.APIKey, nil, 201, &card); err != nil {
			return shop, err
		}
		shop.agents = append(shop.agents, acpAgent{id: ag.ID, apiKey: ag.APIKey, card: card.Number, expMonth: card.ExpMonth, expYear: card.ExpYear, key: priv})
	}
	return shop, nil
}

// acpRun is what the clients of one ACP load share.
type acpRun struct {
	host       string
	shop       acpShop
	deadline   time.Time
	lat, whole [][]time.Duration // per client: each request's latency, each checkout's
	done       atomic.Int64
	firstErr   atomic.Pointer[error]
}

func (r *acpRun) fail(err error) { r.firstErr.CompareAndSwap(nil, &err) }

// buy is client c's load as agent a: checkouts until the deadline.
func (r *acpRun) buy(c int, a acpAgent) {
	conn, err := dialRaw(r.host)
	if err != nil {
		r.fail(err)
		return
	}
	defer conn.c.Close()
	auth := "Authorization: Bearer " + a.apiKey + "\r\nAPI-Version: " + acpVersion + "\r\n"
	sessions := "/acp/" + r.shop.merchant + "/checkout_sessions"
	create := []byte(`{"currency":"usd","line_items":[{"id":"` + r.shop.product + `"}],"capabilities":{}}`)
	for n := 0; time.Now().Before(r.deadline); n++ {
		key := "bench-acp-" + strconv.Itoa(c) + "-" + strconv.Itoa(n)
		t0 := time.Now()
		resp, err := conn.postWith(sessions, auth, key+"-c", create, 201)
		if err != nil {
			r.fail(err)
			return
		}
		id := jsonString(resp, "id")
		t1 := time.Now()
		ts := t1.UTC().Format(time.RFC3339)
		body := []byte(`{"payment_method":{"type":"card","card_number_type":"fpan","number":"` + a.card + `","exp_month":"` + a.expMonth +
			`","exp_year":"` + a.expYear + `","display_card_funding_type":"credit","metadata":{}},"allowance":{"reason":"one_time","max_amount":100,` +
			`"currency":"usd","checkout_session_id":"` + id + `","merchant_id":"` + r.shop.merchant + `","expires_at":"` +
			t1.Add(time.Hour).UTC().Format(time.RFC3339) + `"},"risk_signals":[],"metadata":{}}`)
		sig := base64.StdEncoding.EncodeToString(ed25519.Sign(a.key, append([]byte(ts+"."), body...)))
		resp, err = conn.postWith("/agentic_commerce/delegate_payment", auth+"Timestamp: "+ts+"\r\nSignature: "+sig+"\r\n", key+"-d", body, 201)
		if err != nil {
			r.fail(err)
			return
		}
		tok := jsonString(resp, "id")
		t2 := time.Now()
		complete := []byte(`{"payment_data":{"handler_id":"paybound_agent_card","instrument":{"type":"card","credential":{"type":"spt","token":"` + tok + `"}}}}`)
		resp, err = conn.postWith(sessions+"/"+id+"/complete", auth, key+"-k", complete, 200)
		if err == nil && jsonString(resp, "status") != "completed" {
			err = fmt.Errorf("complete %s: %s", id, resp)
		}
		if err != nil {
			r.fail(err)
			return
		}
		t3 := time.Now()
		r.lat[c] = append(r.lat[c], t1.Sub(t0), t2.Sub(t1), t3.Sub(t2))
		r.whole[c] = append(r.whole[c], t3.Sub(t0))
		r.done.Add(1)
	}
}
