package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/httpapi/rest"
	"github.com/paybound/paybound/internal/ledger"
)

// access is what the access log and the metrics learn of one request as it
// is served: the handler fills in the principal once it is known.
type access struct {
	principal string
}

type accessKey struct{}

// noteCaller records who the request's caller is, for the access log.
func noteCaller(ctx context.Context, p pb.Principal) {
	if a, ok := ctx.Value(accessKey{}).(*access); ok {
		a.principal = p.ID
	}
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// maxRequestIDLength bounds a Request-Id taken from the caller.
const maxRequestIDLength = 128

// observe wraps the API: every request gets a Request-Id (the caller's, if
// it sent a printable one, else a new one, echoed in the response), is
// counted by route pattern and status, and is logged at info as one access
// line: method, route pattern, status, latency, principal, request id.
// Never keys, bodies or query strings: those may hold secrets.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		id := r.Header.Get("Request-Id")
		if id == "" || len(id) > maxRequestIDLength || !printable(id) {
			var b [8]byte
			rand.Read(b[:])
			id = "req_" + hex.EncodeToString(b[:])
		}
		w.Header().Set("Request-Id", id)
		a := &access{}
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), accessKey{}, a))
		if headerBytes(r) > MaxHeaderBytes {
			sw.Header().Set("Connection", "close")
			writeRaw431(sw, s)
		} else {
			next.ServeHTTP(sw, r) // ServeMux sets r.Pattern
		}
		route := r.Pattern
		if route == "" || route == "/" {
			route = "unmatched"
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		took := time.Since(t0)
		s.metrics.request(route, status, took)
		if s.log.Enabled(r.Context(), slog.LevelInfo) {
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", slog.String("method", r.Method), slog.String("route", route),
				slog.Int("status", status), slog.Float64("latency_ms", float64(took.Microseconds())/1000),
				slog.String("principal", a.principal), slog.String("request_id", id))
		}
	})
}

// documentedServer is the server URL the OpenAPI document is written with.
var documentedServer = []byte(`"url": "http://127.0.0.1:8080"`)

// openAPIFor is the OpenAPI document with its server the one r reached
// (its Host, and https when it came over TLS or through a proxy that says
// so), so that tools pointed at a server on another address call that one.
func openAPIFor(r *http.Request) []byte {
	doc := bytes.TrimSpace(openAPI)
	host := r.Host
	if host == "" || !printable(host) || strings.ContainsAny(host, `"\/ `) {
		return doc
	}
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	return bytes.Replace(doc, documentedServer, []byte(`"url": "`+scheme+"://"+host+`"`), 1)
}

// MaxHeaderBytes bounds a request's header fields; past it the request is
// answered 431 in the API's error shape. The HTTP server's own limit must
// be higher, or it answers first, in plain text.
const MaxHeaderBytes = 64 << 10

// headerBytes is the size of r's header fields as sent, near enough.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// securityEvent logs a refused credential at warn, for the operator.
func (s *Server) securityEvent(r *http.Request, event string, err error) {
	s.log.LogAttrs(r.Context(), slog.LevelWarn, "security event: "+event, slog.String("event", event),
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("remote", r.RemoteAddr),
		slog.String("code", string(pb.ErrorCode(err))))
}

// metrics holds the API's counters. Safe for concurrent use.
type metrics struct {
	mu       sync.Mutex
	requests map[routeStatus]*atomic.Int64
	// latency histogram over all routes, by latencyBuckets.
	latency [len(latencyBuckets) + 1]atomic.Int64
	latSum  atomic.Int64 // microseconds
}

type routeStatus struct {
	route  string
	status int
}

var latencyBuckets = [...]time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second, 5 * time.Second}

func (m *metrics) request(route string, status int, took time.Duration) {
	k := routeStatus{route, status}
	m.mu.Lock()
	if m.requests == nil {
		m.requests = map[routeStatus]*atomic.Int64{}
	}
	n := m.requests[k]
	if n == nil {
		// Bounded: routes are the registered patterns and "unmatched", and
		// statuses the few the API answers.
		n = new(atomic.Int64)
		m.requests[k] = n
	}
	m.mu.Unlock()
	n.Add(1)
	i := len(latencyBuckets)
	for j, b := range latencyBuckets {
		if took <= b {
			i = j
			break
		}
	}
	m.latency[i].Add(1)
	m.latSum.Add(took.Microseconds())
}

// metricsRoute serves GET /metrics in the Prometheus text format (0.0.4),
// to the operator's key or to a caller on the loopback interface without
// one: counters of the API, the ledger writer and risk control. It holds
// no secret, but tells load and risk outcomes: keep it off the internet.
func (s *Server) metricsRoute(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "" || !loopback(r) {
		p, err := s.bearer(r)
		if err != nil || p.Role != pb.RoleOperator {
			if err == nil {
				err = pb.Errorf(pb.ErrForbidden, "", "/metrics is for the operator, or from the loopback interface")
			}
			s.securityEvent(r, "metrics_refused", err)
			rest.WriteError(w, s.log, err)
			return
		}
	}
	var b bytes.Buffer
	s.writeMetrics(&b)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write(b.Bytes())
}

// loopback reports whether r came from this machine, not through a proxy.
func loopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil || r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != "" {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) writeMetrics(b *bytes.Buffer) {
	m := &s.metrics
	m.mu.Lock()
	keys := make([]routeStatus, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	m.mu.Unlock()
	slices.SortFunc(keys, func(a, c routeStatus) int {
		if x := strings.Compare(a.route, c.route); x != 0 {
			return x
		}
		return a.status - c.status
	})
	b.WriteString("# HELP paybound_http_requests_total API requests served, by route pattern and status.\n# TYPE paybound_http_requests_total counter\n")
	for _, k := range keys {
		m.mu.Lock()
		n := m.requests[k].Load()
		m.mu.Unlock()
		fmt.Fprintf(b, "paybound_http_requests_total{route=%q,status=\"%d\"} %d\n", k.route, k.status, n)
	}
	b.WriteString("# HELP paybound_http_request_duration_seconds API request latency.\n# TYPE paybound_http_request_duration_seconds histogram\n")
	var cum, total int64
	for i := range m.latency {
		total += m.latency[i].Load()
	}
	for i, bound := range latencyBuckets {
		cum += m.latency[i].Load()
		fmt.Fprintf(b, "paybound_http_request_duration_seconds_bucket{le=\"%g\"} %d\n", bound.Seconds(), cum)
	}
	fmt.Fprintf(b, "paybound_http_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", total)
	fmt.Fprintf(b, "paybound_http_request_duration_seconds_sum %g\n", float64(m.latSum.Load())/1e6)
	fmt.Fprintf(b, "paybound_http_request_duration_seconds_count %d\n", total)

	led := s.svc.Ledger()
	st := led.Stats()
	fmt.Fprintf(b, "# HELP paybound_ledger_batches_total Ledger batches committed.\n# TYPE paybound_ledger_batches_total counter\npaybound_ledger_batches_total %d\n", st.Batches)
	fmt.Fprintf(b, "# HELP paybound_ledger_operations_total Ledger operations committed.\n# TYPE paybound_ledger_operations_total counter\npaybound_ledger_operations_total %d\n", st.Ops)
	fmt.Fprintf(b, "# HELP paybound_ledger_transfers_total Ledger transfers committed.\n# TYPE paybound_ledger_transfers_total counter\npaybound_ledger_transfers_total %d\n", st.Transfers)
	fmt.Fprintf(b, "# HELP paybound_ledger_queue_depth Operations waiting for the ledger writer.\n# TYPE paybound_ledger_queue_depth gauge\npaybound_ledger_queue_depth %d\n", led.QueueDepth())
	up := 1
	if led.Err() != nil {
		up = 0
	}
	fmt.Fprintf(b, "# HELP paybound_ledger_writer_up 1 while the ledger writer serves, 0 once it stopped.\n# TYPE paybound_ledger_writer_up gauge\npaybound_ledger_writer_up %d\n", up)
	b.WriteString("# HELP paybound_ledger_commit_duration_seconds Time to commit one batch.\n# TYPE paybound_ledger_commit_duration_seconds histogram\n")
	histogram(b, "paybound_ledger_commit_duration_seconds", st.CommitHist[:], func(i int) string {
		return fmt.Sprintf("%g", ledger.CommitBuckets[i].Seconds())
	}, st.CommitTime.Seconds())
	b.WriteString("# HELP paybound_ledger_batch_operations Operations per committed batch.\n# TYPE paybound_ledger_batch_operations histogram\n")
	histogram(b, "paybound_ledger_batch_operations", st.BatchHist[:], func(i int) string {
		return fmt.Sprintf("%d", ledger.BatchBuckets[i])
	}, float64(st.Ops))
	b.WriteString("# HELP paybound_risk_decisions_total Payments assessed by risk control, by decision.\n# TYPE paybound_risk_decisions_total counter\n")
	d := s.svc.RiskDecisions()
	for _, dec := range []pb.RiskDecision{pb.RiskAllow, pb.RiskReview, pb.RiskBlock} {
		fmt.Fprintf(b, "paybound_risk_decisions_total{decision=%q} %d\n", dec, d[dec])
	}
}

// histogram writes counts (per bucket, the last over every bound) as a
// cumulative Prometheus histogram.
func histogram(b *bytes.Buffer, name string, counts []int64, le func(int) string, sum float64) {
	var cum int64
	for i := range len(counts) - 1 {
		cum += counts[i]
		fmt.Fprintf(b, "%s_bucket{le=\"%s\"} %d\n", name, le(i), cum)
	}
	cum += counts[len(counts)-1]
	fmt.Fprintf(b, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", name, cum, name, sum, name, cum)
}

func writeRaw431(w http.ResponseWriter, s *Server) {
	status, body := rest.ErrorJSON(s.log, pb.Errorf(pb.ErrHeadersTooLarge, "", "the request's header fields are larger than %d bytes", MaxHeaderBytes))
	rest.WriteRaw(w, status, body)
}
