package paybound

import "time"

// Role is the kind of party an API key authenticates.
type Role string

const (
	RoleOperator Role = "operator"
	RoleUser     Role = "user"
	RoleMerchant Role = "merchant"
	RoleAgent    Role = "agent"
)

// Principal is an authenticated caller. For an agent, UserID is the person
// it acts for; for a user it equals ID.
type Principal struct {
	Role   Role
	ID     string // usr_, mch_, agt_, or "operator"
	UserID string
	// Signed is set when an agent proved itself with a signed request
	// rather than a bearer key.
	Signed bool
	// Evidence is the signed request itself, kept in the transparency log
	// with the payment it created (nil for bearer and user requests).
	Evidence *RequestEvidence
}

// RequestEvidence is what an agent signed: enough for anyone who holds the
// agent's public key to check later that the agent asked for exactly this
// (the signature base covers Content-Digest, which covers Body).
type RequestEvidence struct {
	Body           []byte `json:"body,omitempty"`
	KeyID          string `json:"keyid"`
	Signature      string `json:"signature"`
	SignatureBase  string `json:"signature_base"`
	SignatureInput string `json:"signature_input"`
}

// MaxEvidenceBody bounds the request body kept as evidence; a larger body
// (padding, most likely) is left out, and its Content-Digest, which the
// signature covers, still pins it.
const MaxEvidenceBody = 16 << 10

// User is a person who funds a wallet and pays, directly or through agents.
type User struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// Merchant receives payments.
type Merchant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Category  string    `json:"category"`
	CreatedAt time.Time `json:"created_at"`
}

// Agent is software that pays on behalf of UserID.
type Agent struct {
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	Name   string `json:"name"`
	// PublicKey is the agent's Ed25519 public key as a JWK, when it has one.
	PublicKey string `json:"-"`
	// KeyID is the RFC 7638 JWK thumbprint of PublicKey.
	KeyID     OptString `json:"keyid"`
	CreatedAt time.Time `json:"created_at"`
	// RevokedAt is when the agent's user revoked it: from then on its API
	// key authenticates nothing and its keys verify nothing. Nil while it
	// is in force.
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// APIKey binds the SHA-256 of a bearer secret to a principal. The secret
// itself is shown once at creation and never stored.
type APIKey struct {
	Hash      [32]byte
	Principal Principal
	CreatedAt time.Time
}

// Limits on identity fields.
const (
	MaxNameLength     = 200
	MaxCategoryLength = 100
)

// TOTPFactor is a user's one-time-code second factor (RFC 6238). Secret is
// stored sealed; LastStep is the last time step accepted, so that each code
// is used once. A factor becomes Active once the user proves they hold it.
type TOTPFactor struct {
	UserID    string
	Secret    []byte
	Active    bool
	LastStep  int64
	CreatedAt time.Time
}

// Passkey is a user's WebAuthn credential. Credential is the verifier's
// record of it (public key, sign counter, flags), opaque to the stores;
// it is replaced whole after each use, since the sign counter moves. A
// revoked passkey is kept, for the record, and never verifies again.
type Passkey struct {
	ID         []byte // the credential ID
	UserID     string
	Credential []byte
	CreatedAt  time.Time
	RevokedAt  *time.Time
}

// AgentKey is one of an agent's Ed25519 signing keys. Several may be valid
// at once while one is rotated out (NotAfter); a revoked key never signs
// again.
type AgentKey struct {
	KeyID     string     `json:"keyid"`
	AgentID   string     `json:"agent_id"`
	PublicKey string     `json:"-"` // canonical JWK
	CreatedAt time.Time  `json:"created_at"`
	NotAfter  *time.Time `json:"not_after"`
	RevokedAt *time.Time `json:"revoked_at"`
}

// ValidAt reports whether k may sign at t.
func (k *AgentKey) ValidAt(t time.Time) bool {
	return k.RevokedAt == nil && (k.NotAfter == nil || t.Before(*k.NotAfter))
}
