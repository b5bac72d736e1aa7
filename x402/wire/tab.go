package wire

import (
	"crypto/ed25519"
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
)

// Voucher is a payer's cumulative commitment on a tab: the seller may
// claim up to MaxClaimableAmount atomic units in all. Signature is Ed25519
// (unpadded base64url) over VoucherInput.
type Voucher struct {
	ChannelID          string `json:"channelId"`
	MaxClaimableAmount string `json:"maxClaimableAmount"`
	Signature          string `json:"signature"`
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

// VoucherInput is the bytes a voucher signs.
func VoucherInput(tab string, cumulative int64) []byte {
	return []byte("x402-paybound-voucher/1\ntab=" + tab + "\ncumulative=" + strconv.FormatInt(cumulative, 10) + "\n")
}

// SignVoucher signs a voucher for cumulative atomic units on tab.
func SignVoucher(priv ed25519.PrivateKey, tab string, cumulative int64) Voucher {
	return Voucher{ChannelID: tab, MaxClaimableAmount: strconv.FormatInt(cumulative, 10),
		Signature: base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, VoucherInput(tab, cumulative)))}
}

// ErrVoucherSignature is returned by Verify for a voucher whose signature
// does not verify.
var ErrVoucherSignature = errors.New("x402: the voucher's signature does not verify")

// Verify checks v's signature with pub and returns its cumulative amount.
func (v *Voucher) Verify(pub ed25519.PublicKey) (int64, error) {
	n, err := ParseAtomic(v.MaxClaimableAmount)
	if err != nil {
		return 0, err
	}
	if len(v.ChannelID) > maxFieldBytes || !strings.HasPrefix(v.ChannelID, "tab_") {
		return 0, fmt.Errorf("x402: %q is not a tab", v.ChannelID)
	}
	sig, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(v.Signature, "="))
	if err != nil || len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, VoucherInput(v.ChannelID, n), sig) {
		return 0, ErrVoucherSignature
	}
	return n, nil
}

// ChainStart is the hash chain of tab's vouchers before the first.
func ChainStart(tab string) string {
	sum := sha256.Sum256([]byte("x402-paybound-tab-chain/1\n" + tab))
	return hex.EncodeToString(sum[:])
}

// ChainNext is the chain after head with one more accepted voucher
// (its cumulative amount and signature): the payer and the seller each
// compute it, and the claim states the seller's, so the payer can check
// that it was charged for exactly the vouchers it saw answered.
func ChainNext(head string, cumulative int64, signature string) string {
	sum := sha256.Sum256([]byte(head + "\n" + strconv.FormatInt(cumulative, 10) + "\n" + signature))
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
