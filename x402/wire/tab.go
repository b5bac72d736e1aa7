package wire

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SchemeBatch is x402's batch-settlement scheme, whose Paybound binding is
// the tab (docs/x402.md).
const SchemeBatch = "batch-settlement"

// ExtensionTab is the key of a tab's state in a SettlementResponse's
// extensions and a corrective PaymentRequirements' extra.
const ExtensionTab = "paybound-tab"

// Tab payload types.
const (
	TabDeposit = "deposit"
	TabVoucher = "voucher"
)

// The error reasons of tabs.
const (
	ReasonCumulativeMismatch = "invalid_paybound_tab_cumulative_amount_mismatch"
	ReasonTabExhausted       = "paybound_tab_exhausted"
	ReasonTabUnknown         = "paybound_tab_unknown"
	ReasonVoucherSignature   = "invalid_paybound_tab_voucher_signature"
	ReasonVoucherPreimage    = "invalid_paybound_tab_voucher_preimage"
)

// Voucher is a payer's cumulative commitment on a tab, as a PayWord hash
// chain: at the tab's opening the payer signs, once, a Commitment to the
// chain's anchor w0 = H^Length(seed) and the unit price; each voucher
// then reveals the preimage w_Index (H^Index(w_Index) = w0), which only
// the payer could compute, and is worth Index units: MaxClaimableAmount
// = Index × Unit atomic units. The seller checks a voucher with Index-i
// SHA-256 steps against the last one it holds (w_i), not a signature; the
// facilitator checks the claimed one against the signed anchor. H is
// SHA-256 over the 32 raw bytes.
type Voucher struct {
	ChannelID          string `json:"channelId"`
	MaxClaimableAmount string `json:"maxClaimableAmount"`
	Index              int64  `json:"index"`
	// Preimage is w_Index in hex.
	Preimage string `json:"preimage"`
	// Commitment travels with the deposit's voucher and the claim; the
	// vouchers between omit it (the seller keeps it from the deposit).
	Commitment *Commitment `json:"commitment,omitempty"`
}

// Commitment is what a payer signs once per tab: the chain's anchor (w0,
// hex), the value of one step (Unit, atomic units) and the number of
// steps (Length, at most MaxChainLength). Signature is Ed25519 (unpadded
// base64url) over CommitmentInput by the deposit's key.
type Commitment struct {
	Anchor    string `json:"anchor"`
	Unit      string `json:"unit"`
	Length    int64  `json:"length"`
	Signature string `json:"signature"`
}

// MaxChainLength bounds a tab's chain: the payer computes it at the
// opening and the facilitator hashes up to this many steps at a claim
// (about 0.3 s of SHA-256 at the worst).
const MaxChainLength = 1 << 20

// MaxSteps bounds the steps one request's voucher may move (its price over
// the chain's unit), so that checking a voucher costs a seller, and a
// deposit's first voucher the facilitator, at most this many hashes,
// whatever unit a payer committed to. The Go client commits to the
// price itself: one step.
const MaxSteps = 64

// CommitmentInput is the bytes a commitment signs.
func CommitmentInput(tab, anchor string, unit, length int64) []byte {
	return []byte("x402-paybound-paychain/1\ntab=" + tab + "\nanchor=" + anchor + "\nunit=" +
		strconv.FormatInt(unit, 10) + "\nlength=" + strconv.FormatInt(length, 10) + "\n")
}

// PayChain is a payer's hash chain: w_Length is a random seed and
// w_{j-1} = SHA-256(w_j), so w0 is the anchor. It keeps every 256th value
// and the 256-value segment in use, so revealing the next preimage costs
// about one hash. Not safe for concurrent use (a tab's vouchers are
// serialized).
type PayChain struct {
	length      int64
	checkpoints [][32]byte // checkpoints[c] = w_{min(c*chainStride, length)}
	segLo       int64      // seg[k] = w_{segLo+k}
	seg         [][32]byte
}

const chainStride = 256

// NewPayChain draws a seed and computes a chain of length steps (1 to
// MaxChainLength).
func NewPayChain(length int64) (*PayChain, error) {
	if length < 1 || length > MaxChainLength {
		return nil, fmt.Errorf("x402: a chain has 1 to %d steps, not %d", MaxChainLength, length)
	}
	var w [32]byte
	if _, err := rand.Read(w[:]); err != nil {
		return nil, err
	}
	c := &PayChain{length: length, checkpoints: make([][32]byte, (length+chainStride-1)/chainStride+1)}
	for j := length; ; j-- {
		if j%chainStride == 0 || j == length {
			c.checkpoints[(j+chainStride-1)/chainStride] = w
		}
		if j == 0 {
			break
		}
		w = sha256.Sum256(w[:])
	}
	return c, nil
}

// Length is the chain's number of steps.
func (c *PayChain) Length() int64 { return c.length }

// At returns w_j (0 ≤ j ≤ Length).
func (c *PayChain) At(j int64) [32]byte {
	if j < c.segLo || j >= c.segLo+int64(len(c.seg)) {
		top := min((j+chainStride-1)/chainStride*chainStride, c.length)
		lo := max(top-chainStride+1, 0)
		if cap(c.seg) < chainStride {
			c.seg = make([][32]byte, chainStride)
		}
		c.seg = c.seg[:top-lo+1]
		w := c.checkpoints[(top+chainStride-1)/chainStride]
		for k := top; ; k-- {
			c.seg[k-lo] = w
			if k == lo {
				break
			}
			w = sha256.Sum256(w[:])
		}
		c.segLo = lo
	}
	return c.seg[j-c.segLo]
}

// Commit signs the chain's commitment for tab at unit atomic units a step.
func (c *PayChain) Commit(priv ed25519.PrivateKey, tab string, unit int64) *Commitment {
	w0 := c.At(0)
	anchor := hex.EncodeToString(w0[:])
	return &Commitment{Anchor: anchor, Unit: strconv.FormatInt(unit, 10), Length: c.length,
		Signature: base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, CommitmentInput(tab, anchor, unit, c.length)))}
}

// Voucher is the voucher of step j on tab, at unit atomic units a step.
func (c *PayChain) Voucher(tab string, unit, j int64) Voucher {
	w := c.At(j)
	return Voucher{ChannelID: tab, MaxClaimableAmount: strconv.FormatInt(j*unit, 10), Index: j, Preimage: hex.EncodeToString(w[:])}
}

// ErrVoucherSignature is returned by Verify for a voucher whose
// commitment's signature does not verify.
var ErrVoucherSignature = errors.New("x402: the voucher's commitment signature does not verify")

// ErrVoucherPreimage is returned for a voucher whose preimage does not
// hash to the chain's anchor (Verify) or the seller's last one (Follows).
var ErrVoucherPreimage = errors.New("x402: the voucher's preimage is not on the tab's chain")

// Check verifies the commitment's signature with pub for tab and returns
// its anchor and unit.
func (cm *Commitment) Check(pub ed25519.PublicKey, tab string) (anchor [32]byte, unit int64, err error) {
	unit, err = ParseAtomic(cm.Unit)
	if err != nil || unit == 0 {
		return anchor, 0, fmt.Errorf("x402: the commitment's unit %q is not a positive amount", cm.Unit)
	}
	if cm.Length < 1 || cm.Length > MaxChainLength || unit > MaxAtomic/cm.Length {
		return anchor, 0, fmt.Errorf("x402: the commitment's length %d is out of range", cm.Length)
	}
	if len(tab) > maxFieldBytes || !strings.HasPrefix(tab, "tab_") {
		return anchor, 0, fmt.Errorf("x402: %q is not a tab", tab)
	}
	if len(cm.Anchor) != 64 || !hexTo(&anchor, cm.Anchor) {
		return anchor, 0, ErrVoucherSignature
	}
	sig, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(cm.Signature, "="))
	if err != nil || len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize ||
		!ed25519.Verify(pub, CommitmentInput(tab, cm.Anchor, unit, cm.Length), sig) {
		return anchor, 0, ErrVoucherSignature
	}
	return anchor, unit, nil
}

// Verify checks v in full with pub, the payer's key: its commitment's
// signature, and that its preimage reaches the anchor in Index steps. It
// returns its cumulative amount (Index × Unit). It costs a signature
// verification and up to MaxChainLength hashes: the facilitator's check
// of a deposit's first voucher and of a claim.
func (v *Voucher) Verify(pub ed25519.PublicKey) (int64, error) {
	if v.Commitment == nil {
		return 0, errors.New("x402: the voucher carries no commitment")
	}
	anchor, unit, err := v.Commitment.Check(pub, v.ChannelID)
	if err != nil {
		return 0, err
	}
	if v.Index < 0 || v.Index > v.Commitment.Length {
		return 0, fmt.Errorf("x402: step %d is outside the chain's %d", v.Index, v.Commitment.Length)
	}
	if v.MaxClaimableAmount != strconv.FormatInt(v.Index*unit, 10) {
		return 0, fmt.Errorf("x402: the voucher's amount %q is not %d steps of %d", v.MaxClaimableAmount, v.Index, unit)
	}
	if !Follows(v.Preimage, v.Index, anchor) {
		return 0, ErrVoucherPreimage
	}
	return v.Index * unit, nil
}

// Follows reports whether preimage (hex) hashes to held in exactly steps
// SHA-256 steps: the seller's check of a voucher (steps = the units it
// pays) against the last preimage it holds.
func Follows(preimage string, steps int64, held [32]byte) bool {
	var w [32]byte
	if steps < 0 || len(preimage) != 64 || !hexTo(&w, preimage) {
		return false
	}
	for range steps {
		w = sha256.Sum256(w[:])
	}
	return w == held
}

// Preimage reads a voucher's preimage (hex), or reports false.
func Preimage(s string) (w [32]byte, ok bool) {
	return w, len(s) == 64 && hexTo(&w, s)
}

func hexTo(dst *[32]byte, s string) bool {
	n, err := hex.Decode(dst[:], []byte(s))
	return err == nil && n == 32
}

// TabPayload is a batch-settlement PaymentPayload's payload: a deposit
// (the signed authorization of the tab's hold, whose Value is the deposit)
// with the first voucher, or a voucher alone.
type TabPayload struct {
	Type    string               `json:"type"`
	Deposit *SignedAuthorization `json:"deposit,omitempty"`
	Voucher Voucher              `json:"voucher"`
}

// TabState is a tab as a seller tells its payer: in a paid answer's
// PAYMENT-RESPONSE extensions, and in a corrective 402's extra, so a
// client whose count differs starts again from the seller's.
type TabState struct {
	ChannelID               string `json:"channelId"`
	ChargedCumulativeAmount string `json:"chargedCumulativeAmount"`
	Balance                 string `json:"balance"`
	PayerKey                string `json:"payerKey,omitempty"`
	ExpiresAt               int64  `json:"expiresAt,omitempty"`
	ChainHead               string `json:"chainHead,omitempty"`
}

// TabID is the ID of the tab a deposit authorization opens: derived from
// the paying key and the deposit's nonce, so the payer can sign its first
// voucher before the tab exists. Like every Paybound ID, it is its prefix
// and 26 characters of Crockford's base32 (130 bits of the hash).
func TabID(keyid, nonce string) string {
	const crockford = "0123456789abcdefghjkmnpqrstvwxyz"
	sum := sha256.Sum256([]byte("x402-paybound-tab/1\n" + keyid + "\n" + nonce))
	var b strings.Builder
	b.WriteString("tab_")
	for i := range 26 { // 5 bits at a time
		bit := i * 5
		v := (uint(sum[bit/8])<<8 | uint(sum[bit/8+1])) >> (11 - bit%8) & 31
		b.WriteByte(crockford[v])
	}
	return b.String()
}

// ChainStart is the hash chain of tab's vouchers before the first.
func ChainStart(tab string) string {
	sum := sha256.Sum256([]byte("x402-paybound-tab-chain/1\n" + tab))
	return hex.EncodeToString(sum[:])
}

// ChainNext is the chain after head with one more accepted voucher
// (its cumulative amount and preimage): the payer and the seller each
// compute it, and the claim states the seller's, so the payer can check
// that it was charged for exactly the vouchers it saw answered.
func ChainNext(head string, cumulative int64, preimage string) string {
	sum := sha256.Sum256([]byte(head + "\n" + strconv.FormatInt(cumulative, 10) + "\n" + preimage))
	return hex.EncodeToString(sum[:])
}

// ParseTabPayload reads a batch-settlement payload.
func ParseTabPayload(raw json.RawMessage) (*TabPayload, error) {
	var p TabPayload
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("x402: the payload is not a Paybound tab payload: %w", err)
	}
	switch p.Type {
	case TabDeposit:
		if p.Deposit == nil {
			return nil, errors.New("x402: a deposit carries its signed authorization")
		}
		if err := p.Deposit.Authorization.check(); err != nil {
			return nil, err
		}
	case TabVoucher:
	default:
		return nil, fmt.Errorf("x402: tab payload type %q is not deposit or voucher", p.Type)
	}
	return &p, nil
}

// PublicKeyOf reads an Ed25519 public key in unpadded base64url.
func PublicKeyOf(x string) (ed25519.PublicKey, error) {
	b, err := base64.RawURLEncoding.DecodeString(x)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("x402: not an Ed25519 public key")
	}
	return b, nil
}
