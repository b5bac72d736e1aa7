// Package translog is the transparency log as a service: the entries the
// payments core writes with every batch are integrated into a Merkle tree
// whose signed checkpoints (cosigned by witnesses, when a witness policy
// says so) this package publishes, with the proofs, tiles, entries, traces
// and receipts that let anyone check what the log holds (C2SP
// tlog-checkpoint, tlog-tiles, tlog-proof, tlog-witness). Writing the
// entries stays the core's: it is part of every operation's batch. It runs
// over the payments core (Core) and its own store interface (Store), signs
// checkpoints in the background (Start, Close), and offers its routes to
// the REST API (Routes).
package translog

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
	"github.com/paybound/paybound/internal/tlog"
)

// Core is what the log needs of the payments core (service.Service).
type Core interface {
	// Payment returns payment id if caller is a party to it.
	Payment(ctx context.Context, caller pb.Principal, id string) (*pb.Payment, error)
	// RiskOpening opens p's risk commitment, logged as commitment, for a
	// party that may read it (partial: an agent), or returns nil.
	RiskOpening(ctx context.Context, p *pb.Payment, commitment string, partial bool) *pb.RiskOpening
}

// Store is what the log reads: its own storage, and the payments,
// mandates and agents its entries are about (who may read an entry).
type Store interface {
	pb.LogStore
	Payment(ctx context.Context, id string) (*pb.Payment, error)
	Mandate(ctx context.Context, id string) (*pb.Mandate, error)
	Agent(ctx context.Context, id string) (*pb.Agent, error)
}

// Config configures the log. Zero values take the documented defaults.
type Config struct {
	// Key is the log's signing key (a note signer key from tlog.NewKey,
	// kept in <data>/log.key); its name is the log's origin.
	Key string
	// CheckpointInterval is how often a checkpoint is signed while the log
	// grows (default 1s).
	CheckpointInterval time.Duration
	// WitnessPolicy, when set, is a witness policy (ParseWitnessPolicy):
	// checkpoints are published only once its quorum has cosigned them,
	// asked through Witnesses.
	WitnessPolicy []byte
	// Witnesses carries the add-checkpoint requests to the policy's
	// witnesses; required when the policy names any.
	Witnesses Transport
	Logger    *slog.Logger // default: discard
	// Parties says, by a subject's ID prefix ("cs_"), who is party to the
	// subjects that other capabilities own and log about: those parties
	// read the subject's entries as a payment's parties read its entries.
	// A subject of a prefix not named here is the operator's alone.
	Parties map[string]SubjectParties
}

// SubjectParties returns the IDs of the users, agents and merchants party
// to subject, or an error coded ErrNotFound when there is no such subject.
// The command fills it from the capability that owns the subject, which
// the log does not import.
type SubjectParties func(ctx context.Context, subject string) ([]string, error)

// Service is the transparency log. Safe for concurrent use.
//
// It issues the log's signed checkpoints. Entries reach the tree with
// their batches (SQLite) or through integration (PostgreSQL); the
// checkpointer signs the tree's state at least every CheckpointInterval
// while it grows. Every process signs with the same log key, so any of
// them may answer for the log.
type Service struct {
	core     Core
	st       Store
	log      *slog.Logger
	interval time.Duration
	signer   *tlog.Signer
	vkey     string

	mu     sync.Mutex // guards latest and note
	latest tlog.Checkpoint
	note   []byte // the published checkpoint: signed, and cosigned when witnesses are configured
	// witnesses, when configured, must cosign a checkpoint before it is
	// published; only the checkpointer goroutine uses them.
	witnesses *witnesses
	parties   map[string]SubjectParties // Config.Parties

	stop chan struct{}
	wg   sync.WaitGroup
}

// New returns the log over core and st; call Start to run its
// checkpointer.
func New(core Core, st Store, cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = time.Second
	}
	signer, err := tlog.NewSigner(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("translog: Config.Key: %w", err)
	}
	s := &Service{core: core, st: st, log: cfg.Logger, interval: cfg.CheckpointInterval,
		signer: signer, vkey: signer.VerifierKey(), parties: maps.Clone(cfg.Parties), stop: make(chan struct{})}
	for prefix, f := range s.parties {
		if !strings.HasSuffix(prefix, "_") || f == nil {
			return nil, fmt.Errorf("translog: Config.Parties[%q] must be an ID prefix such as cs_ with a function", prefix)
		}
	}
	if len(cfg.WitnessPolicy) > 0 {
		g, err := ParseWitnessPolicy(cfg.WitnessPolicy)
		if err != nil {
			return nil, err
		}
		if g.N > 0 {
			if cfg.Witnesses == nil {
				return nil, fmt.Errorf("translog: Config.Witnesses is required with a witness policy")
			}
			s.witnesses = newWitnesses(g, cfg.Witnesses)
		}
	}
	return s, nil
}

// Start runs the checkpointer until Close: the log's tree is signed at
// least every interval while it grows.
func (s *Service) Start() {
	s.wg.Add(1)
	go service.Every(s.stop, &s.wg, s.log, s.interval, "log checkpoint", func(ctx context.Context) error {
		_, err := s.publishCheckpoint(ctx)
		return err
	})
}

// Close stops the checkpointer. It does not close the store.
func (s *Service) Close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
}

// Checkpoint is a signed checkpoint and its parsed body.
type Checkpoint struct {
	Note []byte
	tlog.Checkpoint
}

// LogKey returns the log's verifier key, in the note verifier-key format
// (origin+hash+key).
func (s *Service) LogKey() string { return s.vkey }

// SignedCheckpoint returns the latest checkpoint. Without witnesses it
// signs one first when the tree has grown, so that it covers every entry
// committed before the call. With witnesses it returns the last checkpoint
// their quorum cosigned (published by the background checkpointer, at most
// a second or so behind), and never waits on a witness: the request paths
// that call it are public.
func (s *Service) SignedCheckpoint(ctx context.Context) (Checkpoint, error) {
	if s.witnesses != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.note == nil {
			return Checkpoint{}, &pb.Error{Code: pb.ErrUnavailable, Message: "no checkpoint is cosigned by the witness policy's quorum yet"}
		}
		return Checkpoint{Note: s.note, Checkpoint: s.latest}, nil
	}
	return s.publishCheckpoint(ctx)
}

// publishCheckpoint signs a checkpoint of the tree as it stands when it
// has grown since the last one and, with witnesses, publishes it once their
// quorum has cosigned it (network calls made without holding the lock). It
// returns the published checkpoint.
func (s *Service) publishCheckpoint(ctx context.Context) (Checkpoint, error) {
	if err := s.Integrate(ctx); err != nil {
		return Checkpoint{}, err
	}
	size, root, err := s.st.LogState(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	s.mu.Lock()
	if s.note != nil && s.latest.Size >= size {
		defer s.mu.Unlock()
		return Checkpoint{Note: s.note, Checkpoint: s.latest}, nil
	}
	note, err := s.signer.Sign(size, root)
	s.mu.Unlock()
	if err != nil {
		return Checkpoint{}, fmt.Errorf("couldn't sign a checkpoint: %w", err)
	}
	c, err := tlog.Open(note, s.vkey)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("couldn't read back a checkpoint just signed: %w", err)
	}
	if s.witnesses != nil { // only the checkpointer goroutine gets here
		if note, err = s.witnesses.cosign(ctx, s, note, c); err != nil {
			return Checkpoint{}, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.note == nil || c.Size > s.latest.Size {
		s.latest, s.note = c, note
	}
	return Checkpoint{Note: s.note, Checkpoint: s.latest}, nil
}

// Integrate places in the tree the entries pending when it is called
// (PostgreSQL; with SQLite there are none), up to integrateBatch of them.
// Another process may integrate at the same time, having read the pending
// entries before some of these committed, so it goes on until the oldest
// entry still pending came after them; entries committed meanwhile are
// left to the next call. Within a bound: then the checkpoint covers less.
func (s *Service) Integrate(ctx context.Context) error {
	target := int64(-1)
	for round := range maxIntegrateRounds {
		_, last, err := ledger.IntegrateLog(ctx, s.st, integrateBatch)
		if err != nil {
			return err
		}
		if round == 0 {
			target = last
		}
		pending, err := s.st.PendingLog(ctx, 1)
		if err != nil || len(pending) == 0 || pending[0].Seq > target {
			return err
		}
	}
	s.log.Warn("log integration did not catch up", "rounds", maxIntegrateRounds)
	return nil
}

// maxIntegrateRounds bounds integrate.
const maxIntegrateRounds = 16

// integrateBatch bounds the entries one integration places.
const integrateBatch = 8192

// InclusionProof proves that entry Index is in the tree of Size entries.
type InclusionProof struct {
	Index  int64    `json:"index"`
	Size   int64    `json:"size"`
	Hashes []string `json:"hashes"` // base64
}

// ConsistencyProof proves that the tree of Old entries is a prefix of the
// tree of New entries.
type ConsistencyProof struct {
	Old    int64    `json:"old"`
	New    int64    `json:"new"`
	Hashes []string `json:"hashes"` // base64
}

func b64(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

// treeSize checks that size is a size of the tree as it stands.
func (s *Service) treeSize(ctx context.Context, size int64, param string) error {
	have, _, err := s.st.LogState(ctx)
	if err != nil {
		return err
	}
	if size < 0 || size > have {
		return pb.Errorf(pb.ErrParameterInvalid, param, "%s must be between 0 and the tree's size, %d", param, have)
	}
	return nil
}

// InclusionProof proves entry index in the tree of size entries.
func (s *Service) InclusionProof(ctx context.Context, index, size int64) (*InclusionProof, error) {
	if err := s.treeSize(ctx, size, "size"); err != nil {
		return nil, err
	}
	if index < 0 || index >= size {
		return nil, pb.Errorf(pb.ErrParameterInvalid, "index", "index must be between 0 and size-1 (%d)", size-1)
	}
	hs, err := tlog.ProveInclusion(index, size, ledger.StoredHashes(ctx, s.st))
	if err != nil {
		return nil, fmt.Errorf("couldn't prove inclusion: %w", err)
	}
	return &InclusionProof{Index: index, Size: size, Hashes: b64(hs)}, nil
}

// ConsistencyProof proves that the tree of old entries is a prefix of the
// tree of new entries.
func (s *Service) ConsistencyProof(ctx context.Context, old, new int64) (*ConsistencyProof, error) {
	if err := s.treeSize(ctx, new, "new"); err != nil {
		return nil, err
	}
	if old < 0 || old > new {
		return nil, pb.Errorf(pb.ErrParameterInvalid, "old", "old must be between 0 and new (%d)", new)
	}
	hs, err := tlog.ProveConsistency(old, new, ledger.StoredHashes(ctx, s.st))
	if err != nil {
		return nil, fmt.Errorf("couldn't prove consistency: %w", err)
	}
	return &ConsistencyProof{Old: old, New: new, Hashes: b64(hs)}, nil
}

// LogEntry returns entry index (operator, or a party to the payment the
// entry is about): entries carry payment details, while the tree's hashes
// and checkpoints are public.
func (s *Service) LogEntry(ctx context.Context, caller pb.Principal, index int64) (*pb.LogEntry, error) {
	missing := pb.Errorf(pb.ErrNotFound, "index", "no log entry %d", index)
	if index < 0 {
		return nil, missing
	}
	es, err := s.st.LogEntries(ctx, index, 1)
	if err != nil {
		return nil, err
	}
	if len(es) == 0 || es[0].Index != index {
		return nil, missing
	}
	if err := s.mayRead(ctx, caller, es[0].Subject); err != nil {
		if pb.ErrorCode(err) == pb.ErrNotFound {
			return nil, missing
		}
		return nil, err
	}
	if pb.HasPrefix(es[0].Subject, pb.PrefixPayment) {
		if v := viewEntry(caller, es[0].Body); v.withheld != "" {
			return nil, pb.Errorf(pb.ErrForbidden, "index", "log entry %d (%s) is withheld from you (%s); the trace of %s says what you may check of it",
				index, v.typ, v.withheld, es[0].Subject)
		}
	}
	return &es[0], nil
}

// mayRead reports whether caller may read the entries about subject.
func (s *Service) mayRead(ctx context.Context, caller pb.Principal, subject string) error {
	if caller.Role == pb.RoleOperator {
		return nil
	}
	switch {
	case pb.HasPrefix(subject, pb.PrefixPayment):
		_, err := s.core.Payment(ctx, caller, subject)
		return err
	case pb.HasPrefix(subject, pb.PrefixMandate):
		m, err := s.st.Mandate(ctx, subject)
		if err == nil && (m.UserID == caller.ID || m.AgentID == caller.ID) {
			return nil
		}
	case pb.HasPrefix(subject, pb.PrefixUser):
		if subject == caller.ID {
			return nil
		}
	case pb.HasPrefix(subject, pb.PrefixAgent):
		a, err := s.st.Agent(ctx, subject)
		if err == nil && (a.UserID == caller.ID || a.ID == caller.ID) {
			return nil
		}
	default:
		for prefix, parties := range s.parties {
			if !pb.HasPrefix(subject, prefix) {
				continue
			}
			ids, err := parties(ctx, subject)
			if err != nil && pb.ErrorCode(err) != pb.ErrNotFound {
				return fmt.Errorf("couldn't find the parties to %s: %w", subject, err)
			}
			if caller.ID != "" && slices.Contains(ids, caller.ID) {
				return nil
			}
		}
	}
	return pb.Errorf(pb.ErrNotFound, "", "not found")
}

// TraceEntry is one entry of a trace: where it is in the log, its exact
// bytes, and its inclusion proof against the trace's checkpoint. An entry
// withheld from the caller (see viewEntry) has no bytes: it is Redacted,
// with its Type and the Reason, and, when the entry is salted, its
// LeafHash (hex, as a payment's next entry names it in prev) and its
// inclusion proof. Risk opens a payment.created entry's risk_sha256 for
// the parties that may read it.
type TraceEntry struct {
	Index          int64           `json:"index"`
	Entry          string          `json:"entry,omitempty"`
	InclusionProof []string        `json:"inclusion_proof,omitzero"`
	Redacted       bool            `json:"redacted,omitempty"`
	Type           string          `json:"type,omitempty"`
	Reason         string          `json:"reason,omitempty"`
	LeafHash       string          `json:"leaf_hash,omitempty"`
	Risk           *pb.RiskOpening `json:"risk,omitempty"`
	body           []byte
	proof          []tlog.Hash
	proven         bool // proof is set (it may be empty)
}

// Trace is a payment's whole history as the log holds it, as the caller
// may read it.
type Trace struct {
	Object     string       `json:"object"`
	PaymentID  string       `json:"payment_id"`
	Entries    []TraceEntry `json:"entries"`
	Checkpoint string       `json:"checkpoint"`
	checkpoint Checkpoint
}

// MaxTraceEntries bounds a trace; a payment has a handful of entries, and
// at most MaxRefunds refunds.
const MaxTraceEntries = pb.MaxLogRead

// PaymentTrace returns payment id's entries, in order, each with its
// inclusion proof against a checkpoint that covers them all (any party to
// the payment).
func (s *Service) PaymentTrace(ctx context.Context, caller pb.Principal, id string) (*Trace, error) {
	if _, err := s.core.Payment(ctx, caller, id); err != nil {
		return nil, err
	}
	var c Checkpoint
	var es []pb.LogEntry
	// A trace covers every entry of the payment, or is not given: an entry
	// committed between signing and reading is covered by signing again;
	// with witnesses, by their next cosigned checkpoint.
	for attempt := 0; ; attempt++ {
		var err error
		if c, err = s.SignedCheckpoint(ctx); err != nil {
			return nil, err
		}
		if es, err = s.st.SubjectLog(ctx, id, MaxTraceEntries); err != nil {
			return nil, err
		}
		if len(es) == 0 || es[len(es)-1].Index < c.Size {
			break
		}
		if s.witnesses != nil || attempt > 0 {
			return nil, &pb.Error{Code: pb.ErrUnavailable, Message: "the payment's latest log entries are not in a published checkpoint yet (witnesses cosign about every second); retry shortly"}
		}
	}
	tr := &Trace{Object: "trace", PaymentID: id, Checkpoint: string(c.Note), checkpoint: c, Entries: []TraceEntry{}}
	var raw *pb.Payment // the payment as stored, to open its risk commitment
	for _, e := range es {
		v := viewEntry(caller, e.Body)
		te := TraceEntry{Index: e.Index}
		if v.withheld != "" {
			te.Redacted, te.Type, te.Reason = true, v.typ, v.withheld
		}
		if v.withheld == "" || v.leaf {
			hs, err := tlog.ProveInclusion(e.Index, c.Size, ledger.StoredHashes(ctx, s.st))
			if err != nil {
				return nil, fmt.Errorf("couldn't prove entry %d: %w", e.Index, err)
			}
			te.InclusionProof, te.proof, te.proven = b64(hs), hs, true
		}
		switch {
		case v.withheld == "":
			te.Entry, te.body = string(e.Body), e.Body
		case v.leaf:
			leaf := pb.LeafHash(e.Body)
			te.LeafHash = hex.EncodeToString(leaf[:])
		}
		if v.withheld == "" && v.commitment != "" {
			if raw == nil {
				var err error
				if raw, err = s.st.Payment(ctx, id); err != nil {
					return nil, err
				}
			}
			te.Risk = s.core.RiskOpening(ctx, raw, v.commitment, v.partial)
		}
		tr.Entries = append(tr.Entries, te)
	}
	return tr, nil
}

// Receipt is what a payer or merchant keeps: every entry of the payment as
// a C2SP tlog-proof (the entry in its extra line), all against one signed
// checkpoint, verifiable offline with the log's key. The entries withheld
// from the caller are listed in Withheld; those with a leaf hash have a
// proof too, without an extra line. Risk opens the payment.created entry's
// risk_sha256 for the parties that may read it.
type Receipt struct {
	Object    string          `json:"object"`
	PaymentID string          `json:"payment_id"`
	LogKey    string          `json:"log_key"`
	Proofs    []string        `json:"proofs"`
	Withheld  []WithheldEntry `json:"withheld,omitempty"`
	Risk      *pb.RiskOpening `json:"risk,omitempty"`
}

// WithheldEntry is an entry of a receipt that its holder may not read.
type WithheldEntry = pb.WithheldEntry

// PaymentReceipt returns payment id's receipt (any party to the payment).
func (s *Service) PaymentReceipt(ctx context.Context, caller pb.Principal, id string) (*Receipt, error) {
	tr, err := s.PaymentTrace(ctx, caller, id)
	if err != nil {
		return nil, err
	}
	r := &Receipt{Object: "receipt", PaymentID: id, LogKey: s.vkey, Proofs: []string{}}
	for _, e := range tr.Entries {
		if e.Redacted {
			r.Withheld = append(r.Withheld, WithheldEntry{Index: e.Index, Type: e.Type, Reason: e.Reason, LeafHash: e.LeafHash})
		}
		if e.Risk != nil {
			r.Risk = e.Risk
		}
		if e.proven {
			r.Proofs = append(r.Proofs, tlog.FormatProof(tlog.InclusionProof{Extra: e.body, Index: e.Index, Hashes: e.proof, Checkpoint: tr.checkpoint.Note}))
		}
	}
	return r, nil
}

// Tile returns a C2SP tlog-tiles tile: for a hash tile (level >= 0) the
// concatenated hashes, public; for an entry bundle (level -1) the entries,
// each behind a big-endian uint16 length (operator only). n is the tile's
// index and width its number of leaves (256 for a full tile). A tile the
// tree does not have yet is not found.
func (s *Service) Tile(ctx context.Context, caller pb.Principal, level int, n int64, width int) ([]byte, error) {
	missing := pb.Errorf(pb.ErrNotFound, "", "the log has no such tile yet")
	if width < 1 || width > TileWidth || n < 0 || level < -1 || level > 7 {
		return nil, missing
	}
	size, _, err := s.st.LogState(ctx)
	if err != nil {
		return nil, err
	}
	// A tile at level L holds hashes of subtrees of 256^L leaves; the tree
	// has size>>8L of them (compared shifted down: no overflow).
	shift := uint(8 * max(level, 0))
	if n > (size>>shift)>>8 || n*TileWidth+int64(width) > size>>shift {
		return nil, missing
	}
	if level == -1 {
		if err := service.RequireRole(caller, pb.RoleOperator); err != nil {
			return nil, err
		}
		es, err := s.st.LogEntries(ctx, n*TileWidth, width)
		if err != nil {
			return nil, err
		}
		if len(es) != width {
			return nil, missing
		}
		var out []byte
		for _, e := range es {
			out = binary.BigEndian.AppendUint16(out, uint16(len(e.Body)))
			out = append(out, e.Body...)
		}
		return out, nil
	}
	return tlog.ReadTile(level, n, width, ledger.StoredHashes(ctx, s.st))
}

// TileWidth is the number of leaves of a full C2SP tile.
const TileWidth = 256
