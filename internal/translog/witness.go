package translog

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/tlog"
	"github.com/transparency-dev/formats/witness"
	"golang.org/x/mod/sumdb/note"
)

// Witnesses (C2SP tlog-witness): with a witness policy, the log publishes
// only checkpoints that a quorum of independent witnesses has cosigned
// after checking them consistent with every checkpoint they cosigned
// before. A client that requires the same quorum cannot be shown a forked
// log unless the witnesses collude with the server.

// Transport carries add-checkpoint requests to witnesses: the one part of
// the witness client that speaks HTTP, which the log leaves to the
// command (it keeps net/http out of the capabilities). The request, its
// answer's handling and the cosignatures' checks are the log's.
type Transport interface {
	// Post sends body to url (POST, within ctx) and returns the answer's
	// status code, its status line ("409 Conflict") and at most limit
	// bytes of its body.
	Post(ctx context.Context, url string, body []byte, limit int64) (Answer, error)
}

// Answer is a witness's answer to an add-checkpoint request.
type Answer struct {
	StatusCode int
	Status     string
	Body       []byte
}

// The statuses of an add-checkpoint answer the log reads.
const (
	statusOK       = 200
	statusConflict = 409
)

// witnesses talks to the policy's witnesses. Only the checkpointer
// goroutine uses it, so its state needs no lock.
type witnesses struct {
	policy witness.Group
	tr     Transport
	// size is each witness's latest cosigned size of this log, as it last
	// said (409) or as it cosigned; a witness asks for a proof from there.
	size map[string]int64
}

func newWitnesses(policy witness.Group, tr Transport) *witnesses {
	return &witnesses{policy: policy, tr: tr, size: map[string]int64{}}
}

// WitnessTimeout bounds one add-checkpoint request.
const WitnessTimeout = 5 * time.Second

// MaxCosignatureBytes bounds a witness's answer.
const MaxCosignatureBytes = 4 << 10

// ParseWitnessPolicy reads a witness policy (the Sigsum policy format with
// C2SP cosignature/v1 witness keys: "witness NAME VKEY URL", "group NAME
// K|any|all MEMBER…", "quorum NAME|none").
func ParseWitnessPolicy(p []byte) (witness.Group, error) {
	g, err := witness.ParsePolicy(p)
	if err != nil {
		return witness.Group{}, fmt.Errorf("witness policy: %w", err)
	}
	return g, nil
}

// cosign asks every witness to cosign signed (a checkpoint of c.Size
// entries) and returns the note with the cosignatures received, or an
// error when they do not satisfy the policy.
func (w *witnesses) cosign(ctx context.Context, s *Service, signed []byte, c tlog.Checkpoint) ([]byte, error) {
	type answer struct {
		url   string
		lines []byte
		size  int64
		err   error
	}
	endpoints := w.policy.Endpoints()
	answers := make(chan answer, len(endpoints))
	var wg sync.WaitGroup
	for url, v := range endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lines, size, err := w.add(ctx, s, url, v, signed, c, w.size[url])
			answers <- answer{url, lines, size, err}
		}()
	}
	wg.Wait()
	close(answers)
	out := bytes.Clone(signed)
	var errs []error
	for a := range answers {
		w.size[a.url] = a.size
		if a.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.url, a.err))
			continue
		}
		out = append(out, a.lines...)
	}
	if !w.policy.Satisfied(out) {
		return nil, fmt.Errorf("checkpoint of size %d not published: the witness policy's quorum did not cosign it: %w", c.Size, errors.Join(errs...))
	}
	if len(errs) > 0 {
		s.log.Warn("some witnesses did not cosign the checkpoint; the quorum did", "size", c.Size, "err", errors.Join(errs...))
	}
	return out, nil
}

// add sends one add-checkpoint request, and once more from the size the
// witness names when it answers 409. It returns the cosignature lines and
// the witness's size afterwards.
func (w *witnesses) add(ctx context.Context, s *Service, url string, v note.Verifier, signed []byte, c tlog.Checkpoint, old int64) ([]byte, int64, error) {
	for attempt := 0; ; attempt++ {
		if old > c.Size {
			return nil, old, fmt.Errorf("the witness has cosigned size %d, beyond this checkpoint's %d", old, c.Size)
		}
		proof, err := tlog.ProveConsistency(old, c.Size, ledger.StoredHashes(ctx, s.st))
		if err != nil {
			return nil, old, err
		}
		var body bytes.Buffer
		fmt.Fprintf(&body, "old %d\n", old)
		for _, h := range proof {
			body.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
		}
		body.WriteString("\n")
		body.Write(signed)
		rctx, cancel := context.WithTimeout(ctx, WitnessTimeout)
		resp, err := w.tr.Post(rctx, url, body.Bytes(), MaxCosignatureBytes+1)
		cancel()
		if err != nil {
			return nil, old, err
		}
		answer := resp.Body
		switch {
		case resp.StatusCode == statusConflict && attempt == 0:
			n, err := strconv.ParseInt(strings.TrimSpace(string(answer)), 10, 64)
			if err != nil || n < 0 {
				return nil, old, fmt.Errorf("409 without a tree size: %q", answer)
			}
			old = n
			continue
		case resp.StatusCode != statusOK:
			return nil, old, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(answer)))
		case len(answer) > MaxCosignatureBytes:
			return nil, old, errors.New("the cosignature is too long")
		}
		// The answer is note signature lines. Keep only those of this
		// witness's key that verify over this checkpoint: a line naming
		// another key could block, or poison, the other's cosignature.
		var kept []byte
		for line := range strings.Lines(string(answer)) {
			line = strings.TrimSuffix(line, "\n") + "\n"
			if !strings.HasPrefix(line, "— "+v.Name()+" ") {
				continue
			}
			if _, err := note.Open(append(bytes.Clone(signed), line...), note.VerifierList(v)); err == nil {
				kept = append(kept, line...)
			}
		}
		if kept == nil {
			return nil, old, errors.New("the answer holds no cosignature of the witness's key that verifies")
		}
		return kept, c.Size, nil
	}
}
