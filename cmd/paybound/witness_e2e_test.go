package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	mtlog "golang.org/x/mod/sumdb/tlog"

	tl "github.com/paybound/paybound/internal/tlog"
	"github.com/paybound/paybound/internal/translog"
)

// testWitness is a C2SP tlog-witness: add-checkpoint verifies the log's
// signature and the consistency proof from the size it cosigned last, and
// cosigns with a cosignature/v1 key (transparency-dev/formats' signer). It
// shares no code with the server's witness client.
type testWitness struct {
	t      *testing.T
	logKey note.Verifier
	signer note.Signer
	vkey   string
	down   atomic.Bool

	mu   sync.Mutex
	size int64
	root mtlog.Hash
	srv  *httptest.Server
}

func newTestWitness(t *testing.T, name, logVKey string) *testWitness {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	lv, err := note.NewVerifier(logVKey)
	if err != nil {
		t.Fatal(err)
	}
	w := &testWitness{t: t, logKey: lv, signer: s, vkey: vkey}
	w.srv = httptest.NewServer(http.HandlerFunc(w.addCheckpoint))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *testWitness) addCheckpoint(rw http.ResponseWriter, r *http.Request) {
	if w.down.Load() {
		http.Error(rw, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if r.URL.Path != "/add-checkpoint" || r.Method != http.MethodPost {
		http.NotFound(rw, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	head, signed, ok := bytes.Cut(body, []byte("\n\n"))
	sc := bufio.NewScanner(bytes.NewReader(head))
	if !ok || !sc.Scan() || !strings.HasPrefix(sc.Text(), "old ") {
		http.Error(rw, "malformed request", http.StatusBadRequest)
		return
	}
	old, err := strconv.ParseInt(strings.TrimPrefix(sc.Text(), "old "), 10, 64)
	if err != nil {
		http.Error(rw, "malformed old size", http.StatusBadRequest)
		return
	}
	var proof mtlog.TreeProof
	for sc.Scan() {
		h, err := base64.StdEncoding.DecodeString(sc.Text())
		if err != nil || len(h) != 32 {
			http.Error(rw, "malformed proof", http.StatusBadRequest)
			return
		}
		proof = append(proof, mtlog.Hash(h))
	}
	n, err := note.Open(signed, note.VerifierList(w.logKey))
	if err != nil {
		http.Error(rw, "not signed by the log", http.StatusForbidden)
		return
	}
	lines := strings.Split(n.Text, "\n")
	size, _ := strconv.ParseInt(lines[1], 10, 64)
	rootB, _ := base64.StdEncoding.DecodeString(lines[2])
	root := mtlog.Hash(rootB)
	w.mu.Lock()
	defer w.mu.Unlock()
	if old != w.size {
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", w.size)
		return
	}
	if size < w.size || (size == w.size && root != w.root) ||
		(w.size > 0 && size > w.size && mtlog.CheckTree(proof, size, root, w.size, w.root) != nil) {
		http.Error(rw, "inconsistent with what I cosigned", http.StatusUnprocessableEntity)
		return
	}
	w.size, w.root = size, root
	cosigned, err := note.Sign(&note.Note{Text: n.Text}, w.signer)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	// The answer is this witness's signature line alone.
	all := strings.Split(strings.TrimSuffix(string(cosigned), "\n"), "\n")
	fmt.Fprintln(rw, all[len(all)-1])
}

// TestWitnessedCheckpoints runs the server with a 2-of-3 witness policy:
// checkpoints carry the witnesses' cosignatures and satisfy the policy; with
// one witness down the quorum still cosigns; with two down the server keeps
// publishing the last cosigned checkpoint, and catches up once a witness
// returns. A receipt verifies against the policy.
func TestWitnessedCheckpoints(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	skey, vkey, err := tl.NewKey("paybound.test/witnessed")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "log.key"), []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var ws []*testWitness
	var policy strings.Builder
	for i := range 3 {
		w := newTestWitness(t, fmt.Sprintf("witness%d.test", i), vkey)
		ws = append(ws, w)
		fmt.Fprintf(&policy, "witness w%d %s %s\n", i, w.vkey, w.srv.URL)
	}
	policy.WriteString("group two 2 w0 w1 w2\nquorum two\n")
	policyFile := filepath.Join(t.TempDir(), "policy.txt")
	os.WriteFile(policyFile, []byte(policy.String()), 0o644)

	m := startMain(t, dir, func(m *Main) { m.Config.WitnessPolicy = policyFile })
	w := &world{api: &api{t: t, base: m.URL()}, m: m, op: m.OperatorKey}
	u := w.ok(201, w.call("POST", "/v1/users", w.op, "", map[string]any{"name": "Ada"}))
	w.userKey = u.str("api_key")
	mc := w.ok(201, w.call("POST", "/v1/merchants", w.op, "", map[string]any{"name": "Cafe"}))
	w.merch = mc.str("id")
	w.ok(201, w.call("POST", "/v1/topups", w.userKey, "", map[string]any{"amount": 10000, "currency": "USD"}))
	pay := func() string {
		return w.ok(201, w.call("POST", "/v1/payments", w.userKey, "", map[string]any{"amount": 100, "currency": "USD", "merchant_id": w.merch})).str("id")
	}
	// checkpoint returns the published checkpoint once it has more than
	// after entries, or the last one published within 4s.
	checkpoint := func(after int64) (tl.Checkpoint, []byte) {
		t.Helper()
		deadline := time.Now().Add(4 * time.Second)
		for {
			r := w.call("GET", "/v1/log/checkpoint", "", "", nil)
			if r.status == 200 {
				c, err := tl.Open(r.raw, vkey)
				if err != nil {
					t.Fatalf("checkpoint: %v\n%s", err, r.raw)
				}
				if c.Size > after || time.Now().After(deadline) {
					return c, r.raw
				}
			} else if r.status != 503 || time.Now().After(deadline) {
				t.Fatalf("GET /v1/log/checkpoint: %d %s", r.status, r.raw)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	g, err := parsePolicy(policy.String())
	if err != nil {
		t.Fatal(err)
	}
	id := pay()
	c1, raw := checkpoint(0)
	if !g.Satisfied(raw) || bytes.Count(raw, []byte("\n— ")) < 3 {
		t.Fatalf("a checkpoint without its quorum:\n%s", raw)
	}
	ws[0].down.Store(true) // one down: the other two still make the quorum
	pay()
	c2, raw := checkpoint(c1.Size)
	if c2.Size <= c1.Size || !g.Satisfied(raw) {
		t.Fatalf("with one witness down: size %d after %d\n%s", c2.Size, c1.Size, raw)
	}
	ws[1].down.Store(true) // two down: nothing new is published
	late := pay()
	if c3, _ := checkpoint(c2.Size); c3.Size != c2.Size {
		t.Fatalf("published size %d without a quorum (last cosigned %d)", c3.Size, c2.Size)
	}
	// A receipt needs every entry in a published checkpoint: not yet.
	if r := w.call("GET", "/v1/payments/"+late+"/receipt", w.userKey, "", nil); r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Fatalf("a receipt beyond the published checkpoint: %d %s", r.status, r.raw)
	}
	ws[0].down.Store(false) // back, two sizes behind: it asks for a proof from its own size
	pay()
	c4, raw := checkpoint(c2.Size)
	if c4.Size <= c2.Size || !g.Satisfied(raw) {
		t.Fatalf("after a witness returned: size %d (before %d)\n%s", c4.Size, c2.Size, raw)
	}
	// A restarted server knows nothing of the witnesses' sizes: they answer
	// 409 with theirs, and it proves consistency from there.
	m.Close()
	m = startMain(t, dir, func(m *Main) { m.Config.WitnessPolicy = policyFile })
	w.api = &api{t: t, base: m.URL()}
	pay()
	c5, raw := checkpoint(c4.Size)
	if c5.Size <= c4.Size || !g.Satisfied(raw) {
		t.Fatalf("after a restart: size %d (before %d)\n%s", c5.Size, c4.Size, raw)
	}
	// A receipt's checkpoint carries the cosignatures; verify checks the policy.
	file := filepath.Join(t.TempDir(), "receipt.json")
	if _, e, err := w.cli(w.userKey, "payments", "receipt", id, "--out", file); err != nil {
		t.Fatal(e)
	}
	seen := filepath.Join(t.TempDir(), "seen.json")
	if out, e, err := w.cli("", "verify", "receipt", file, "--log-key", vkey, "--policy", policyFile, "--seen", seen); err != nil {
		t.Fatalf("verify with the policy: %v\n%s%s", err, out, e)
	}
	strict := filepath.Join(t.TempDir(), "strict.txt")
	os.WriteFile(strict, []byte(strings.Replace(policy.String(), "group two 2", "group two all", 1)), 0o644)
	if _, e, err := w.cli("", "verify", "receipt", file, "--log-key", vkey, "--policy", strict, "--seen", seen); err == nil || !strings.Contains(e, "witness policy") {
		t.Fatalf("a policy the checkpoint does not meet: %v %s", err, e)
	}
}

func parsePolicy(p string) (interface{ Satisfied([]byte) bool }, error) {
	return translog.ParseWitnessPolicy([]byte(p))
}
