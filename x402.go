package paybound

// x402 (internal/x402pay, the public package x402): agents pay for HTTP
// resources with x402 v2 authorizations signed with their keys; the
// facilitator settles each as a payment under the agent's mandate.

// MetadataX402Nonce is the payment metadata key that names the x402
// authorization (its nonce) a payment settled.
const MetadataX402Nonce = "x402_nonce"

// Errors of settling an x402 authorization. Nothing is changed.
const (
	// ErrX402AuthorizationUsed: the authorization was settled before (under
	// another payment identifier); it pays once.
	ErrX402AuthorizationUsed Code = "x402_authorization_used"
	// ErrX402ConfirmationRequired: the payment would wait for the user's
	// confirmation, and no one is there to give it during an HTTP request.
	ErrX402ConfirmationRequired Code = "x402_confirmation_required"
)

func init() {
	codeTypes[ErrX402AuthorizationUsed] = TypeConflict
	codeTypes[ErrX402ConfirmationRequired] = TypeDeclined
}
