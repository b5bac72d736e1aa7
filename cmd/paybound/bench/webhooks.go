package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paybound/paybound/cmd/paybound/internal/cmdline"
)

// benchWebhooks is `paybound bench webhooks`: payments to one merchant
// with endpoints subscribed to every event, each payment's two events
// (payment.authorized and payment.captured) fanned out to every endpoint,
// at a receiver on 127.0.0.1 in this process. The payments are made
// faster than their deliveries can go, so that from the first delivery to
// the last the fan-out, not the payments, sets the pace; it reports the
// deliveries per second over that window (and from the first payment),
// once every delivery arrived.
func benchWebhooks(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) error {
	fs := flag.NewFlagSet("paybound bench webhooks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cmdline.UsageFor(fs, stderr, "paybound bench webhooks [flags]")
	payments := fs.Int("payments", 3000, "payments made (two events each)")
	endpoints := fs.Int("endpoints", 16, "the merchant's endpoints, each receiving every event")
	clients := fs.Int("clients", 32, "concurrent HTTP clients making the payments")
	db := fs.String("db", "", "a postgres:// URL for the in-process server's store (default: SQLite)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up when the deliveries take longer")
	profile := fs.String("cpuprofile", "", "write a CPU profile of this process to the file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stopProfile, err := cpuProfile(*profile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if *payments < 1 || *payments > 1_000_000 || *endpoints < 1 || *endpoints > 16 || *clients < 1 || *clients > 1000 {
		return errors.New("bench webhooks: need 1 <= payments <= 1000000, 1 <= endpoints <= 16 (the most an owner may have) and 1 <= clients <= 1000")
	}
	rcv, err := startReceiver()
	if err != nil {
		return err
	}
	defer rcv.srv.Close()
	srv, stop, err := startLoadServer(ctx, payLoad{db: *db, env: env, webhooks: true}, 0)
	if err != nil {
		return err
	}
	defer stop()
	call := newCaller(ctx, srv.URL, *clients)
	merchant, users, err := setupPayers(call, srv.OperatorKey, *clients)
	if err != nil {
		return err
	}
	for i := range *endpoints {
		in := map[string]any{"url": rcv.url + "/e" + strconv.Itoa(i), "events": []string{"*"}}
		if err := call("POST", "/v1/webhook_endpoints", merchant.APIKey, in, 201, nil); err != nil {
			return err
		}
	}
	want := 2 * int64(*payments) * int64(*endpoints)
	start := time.Now()
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for c := range *clients {
		wg.Go(func() {
			for next.Add(1) <= int64(*payments) {
				body := map[string]any{"amount": 100, "currency": "USD", "merchant_id": merchant.ID}
				if err := call("POST", "/v1/payments", users[c].APIKey, body, 201, nil); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return *p
	}
	paid := time.Since(start)
	deadline := time.Now().Add(*timeout)
	for rcv.unique.Load() < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("bench webhooks: %d of %d deliveries within %v", rcv.unique.Load(), want, *timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	first, last := rcv.window()
	window := last.Sub(first).Seconds()
	emit(stdout, map[string]any{
		"bench": "webhooks", "payments": *payments, "endpoints": *endpoints, "deliveries": want,
		"requests": rcv.requests.Load(), "payments_seconds": paid.Seconds(),
		"seconds": window, "deliveries_per_sec": int64(float64(want) / window),
		"end_to_end_seconds": last.Sub(start).Seconds(), "end_to_end_deliveries_per_sec": int64(float64(want) / last.Sub(start).Seconds()),
	})
	return nil
}

// receiver is the bench's webhook endpoints: it answers 200 and counts
// each event once per endpoint path.
type receiver struct {
	srv              *http.Server
	url              string
	mu               sync.Mutex
	seen             map[string]bool
	first, last      time.Time
	unique, requests atomic.Int64
}

func startReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{url: "http://" + ln.Addr().String(), seen: map[string]bool{}}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second}
	go r.srv.Serve(ln)
	return r, nil
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, 1<<20))
	r.requests.Add(1)
	k := req.URL.Path + " " + req.Header.Get("webhook-id")
	now := time.Now()
	r.mu.Lock()
	if !r.seen[k] {
		r.seen[k] = true
		r.unique.Add(1)
		if r.first.IsZero() {
			r.first = now
		}
		r.last = now
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (r *receiver) window() (first, last time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first, r.last
}
