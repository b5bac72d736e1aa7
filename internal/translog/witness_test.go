package translog

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/sqlite"
	"github.com/paybound/paybound/internal/tlog"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// fakeTransport answers add-checkpoint requests as answer says, and
// records them.
type fakeTransport struct {
	answer func(n int, body []byte) (Answer, error)
	bodies [][]byte
}

func (f *fakeTransport) Post(ctx context.Context, url string, body []byte, limit int64) (Answer, error) {
	f.bodies = append(f.bodies, body)
	a, err := f.answer(len(f.bodies), body)
	if int64(len(a.Body)) > limit {
		a.Body = a.Body[:limit]
	}
	return a, err
}

// TestWitnessesThroughTheTransport: the log's witness client speaks
// tlog-witness through the Transport it is given: a 409 names the size to
// prove from, a cosignature of the witness's key is kept and another line
// is not, and a refusal is reported with the witness's status line.
func TestWitnessesThroughTheTransport(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "log.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logKey, _, err := tlog.NewKey("paybound.test/log")
	if err != nil {
		t.Fatal(err)
	}
	wkey, wvkey, err := note.GenerateKey(rand.Reader, "witness.test")
	if err != nil {
		t.Fatal(err)
	}
	cosigner, err := fnote.NewSignerForCosignatureV1(wkey)
	if err != nil {
		t.Fatal(err)
	}
	okey, _, _ := note.GenerateKey(rand.Reader, "other.test")
	other, _ := note.NewSigner(okey)
	policy := []byte(fmt.Sprintf("witness w %s https://witness.test\nquorum w\n", wvkey))
	if _, err := New(nil, st, Config{Key: logKey, WitnessPolicy: policy}); err == nil {
		t.Fatal("a witness policy without a transport was accepted")
	}

	sigLine := func(s note.Signer, signed []byte) string {
		n, err := note.Open(signed, note.VerifierList(mustVerifier(t, logKey)))
		if err != nil {
			t.Fatal(err)
		}
		b, err := note.Sign(&note.Note{Text: n.Text}, s)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		return lines[len(lines)-1] + "\n"
	}
	tr := &fakeTransport{answer: func(n int, body []byte) (Answer, error) {
		_, signed, _ := bytes.Cut(body, []byte("\n\n"))
		if n == 1 {
			return Answer{StatusCode: 409, Status: "409 Conflict", Body: []byte("0\n")}, nil
		}
		return Answer{StatusCode: 200, Status: "200 OK", Body: []byte(sigLine(other, signed) + sigLine(cosigner, signed))}, nil
	}}
	l, err := New(nil, st, Config{Key: logKey, WitnessPolicy: policy, Witnesses: tr})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.SignedCheckpoint(ctx); pb.ErrorCode(err) != pb.ErrUnavailable {
		t.Fatalf("before the quorum cosigned: %v", err)
	}
	c, err := l.publishCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.bodies) != 2 || !bytes.HasPrefix(tr.bodies[1], []byte("old 0\n\n")) {
		t.Fatalf("requests: %q", tr.bodies)
	}
	if !l.witnesses.policy.Satisfied(c.Note) || strings.Contains(string(c.Note), "other.test") {
		t.Fatalf("the published checkpoint:\n%s", c.Note)
	}
	if got, err := l.SignedCheckpoint(ctx); err != nil || !bytes.Equal(got.Note, c.Note) {
		t.Fatalf("the published checkpoint, read: %v\n%s", err, got.Note)
	}

	// A witness that refuses: nothing new is published, and the error
	// carries its status line.
	tr.answer = func(int, []byte) (Answer, error) {
		return Answer{StatusCode: 500, Status: "500 Internal Server Error", Body: []byte("boom\n")}, nil
	}
	l2, _ := New(nil, st, Config{Key: logKey, WitnessPolicy: policy, Witnesses: tr})
	if _, err := l2.publishCheckpoint(ctx); err == nil || !strings.Contains(err.Error(), "https://witness.test/add-checkpoint: 500 Internal Server Error: boom") {
		t.Fatalf("a refusal: %v", err)
	}
}

func mustVerifier(t *testing.T, skey string) note.Verifier {
	s, err := tlog.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return v
}
