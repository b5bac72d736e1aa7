package paybound

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrorType is the coarse class of an error, as the public API reports it in
// error.type. Each Code belongs to exactly one type.
type ErrorType string

const (
	TypeInvalidRequest ErrorType = "invalid_request"
	TypeAuthentication ErrorType = "authentication_error"
	TypePermission     ErrorType = "permission_error"
	TypeNotFound       ErrorType = "not_found"
	TypeConflict       ErrorType = "conflict"
	TypeDeclined       ErrorType = "payment_declined"
	TypeRateLimited    ErrorType = "rate_limited"
	TypeInternal       ErrorType = "internal_error"
)

// Code is the precise, stable, machine-readable reason of an error. Clients
// branch on codes; messages are for people and may change.
type Code string

// Error codes. The table codeTypes below assigns each to its ErrorType; the
// HTTP adapter maps codes to statuses in one table of its own.
const (
	ErrInvalidJSON         Code = "invalid_json"
	ErrUnknownField        Code = "unknown_field"
	ErrParameterMissing    Code = "parameter_missing"
	ErrParameterInvalid    Code = "parameter_invalid"
	ErrInvalidAmount       Code = "invalid_amount"
	ErrInvalidCurrency     Code = "invalid_currency"
	ErrBodyTooLarge        Code = "body_too_large"
	ErrHeadersTooLarge     Code = "headers_too_large"
	ErrAmountTooLarge      Code = "amount_too_large"
	ErrIdempotencyRequired Code = "idempotency_key_required"
	ErrIdempotencyKey      Code = "idempotency_key_invalid"
	ErrIdempotencyConflict Code = "idempotency_conflict"
	ErrMandateNotFound     Code = "mandate_not_found"
	ErrTOTPInvalid         Code = "totp_invalid"
	ErrTOTPState           Code = "totp_state"
	ErrConfirmationLocked  Code = "confirmation_locked"
	ErrPasskeyInvalid      Code = "passkey_invalid"
	ErrPasskeyState        Code = "passkey_state"

	ErrUnauthenticated Code = "unauthenticated"
	// Refusals of signed agent requests (RFC 9421), all 401.
	ErrSignatureMissing  Code = "signature_missing"
	ErrSignatureInvalid  Code = "signature_invalid"
	ErrSignatureExpired  Code = "signature_expired"
	ErrSignatureReplayed Code = "signature_replayed"
	ErrDigestMismatch    Code = "digest_mismatch"
	ErrSignatureRequired Code = "signature_required"
	ErrKeyRevoked        Code = "key_revoked"
	ErrForbidden         Code = "forbidden"
	ErrSandboxOff        Code = "sandbox_off"

	ErrNotFound      Code = "resource_missing"
	ErrRouteNotFound Code = "route_not_found"
	ErrMethod        Code = "method_not_allowed"

	ErrPaymentState       Code = "payment_unexpected_state"
	ErrDisputeState       Code = "dispute_unexpected_state"
	ErrIdempotencyRunning Code = "idempotency_in_flight"

	DeclineInsufficientFunds Code = "insufficient_funds"
	DeclineCurrencyMismatch  Code = "currency_mismatch"
	DeclineMerchantUnknown   Code = "merchant_unknown"

	ErrRateLimited   Code = "rate_limited"
	ErrUnavailable   Code = "unavailable"
	ErrInternal      Code = "internal"
	ErrLedgerStopped Code = "ledger_stopped"

	// A request body not sent as Content-Type: application/json (HTTP 415).
	ErrUnsupportedMediaType Code = "unsupported_media_type"
)

var codeTypes = map[Code]ErrorType{
	ErrInvalidJSON: TypeInvalidRequest, ErrUnknownField: TypeInvalidRequest,
	ErrParameterMissing: TypeInvalidRequest, ErrParameterInvalid: TypeInvalidRequest,
	ErrInvalidAmount: TypeInvalidRequest, ErrInvalidCurrency: TypeInvalidRequest,
	ErrBodyTooLarge: TypeInvalidRequest, ErrHeadersTooLarge: TypeInvalidRequest, ErrAmountTooLarge: TypeInvalidRequest,
	ErrIdempotencyRequired: TypeInvalidRequest, ErrIdempotencyKey: TypeInvalidRequest,
	ErrIdempotencyConflict: TypeInvalidRequest, ErrMandateNotFound: TypeDeclined,
	ErrSandboxOff:  TypePermission,
	ErrTOTPInvalid: TypeInvalidRequest, ErrTOTPState: TypeConflict, ErrConfirmationLocked: TypePermission,
	ErrPasskeyInvalid: TypeInvalidRequest, ErrPasskeyState: TypeConflict,
	ErrUnauthenticated: TypeAuthentication, ErrForbidden: TypePermission,
	ErrSignatureMissing: TypeAuthentication, ErrSignatureInvalid: TypeAuthentication,
	ErrSignatureExpired: TypeAuthentication, ErrSignatureReplayed: TypeAuthentication,
	ErrDigestMismatch: TypeAuthentication, ErrSignatureRequired: TypeAuthentication, ErrKeyRevoked: TypeAuthentication,
	ErrNotFound: TypeNotFound, ErrRouteNotFound: TypeNotFound, ErrMethod: TypeInvalidRequest,
	ErrPaymentState: TypeConflict, ErrIdempotencyRunning: TypeConflict, ErrDisputeState: TypeConflict,
	DeclineInsufficientFunds: TypeDeclined, DeclineCurrencyMismatch: TypeDeclined,
	DeclineMerchantUnknown:    TypeDeclined,
	DeclineMandateNotForAgent: TypeDeclined, DeclineMandateRevoked: TypeDeclined,
	DeclineMandateExpired: TypeDeclined, DeclineMandateNotYetValid: TypeDeclined,
	DeclineMandateCurrencyMismatch: TypeDeclined, DeclineMandateAmountExceeded: TypeDeclined,
	DeclineMandateBudgetExhausted: TypeDeclined, DeclineMandateMerchant: TypeDeclined,
	DeclineMandateSchedule: TypeDeclined, DeclineMandateMaxPayments: TypeDeclined,
	DeclineMandateCondition: TypeDeclined, DeclineRiskBlocked: TypeDeclined,
	ErrRateLimited: TypeRateLimited, ErrUnavailable: TypeInternal,
	ErrInternal: TypeInternal, ErrLedgerStopped: TypeInternal,
	ErrUnsupportedMediaType: TypeInvalidRequest,
}

// Type returns the class of c; unknown codes are internal errors.
func (c Code) Type() ErrorType {
	if t, ok := codeTypes[c]; ok {
		return t
	}
	return TypeInternal
}

// Error is an application error: something the caller can act on. Anything
// else that reaches the API boundary is an internal error, logged and never
// shown.
type Error struct {
	Code    Code
	Message string
	// Param names the request field at fault, when there is one.
	Param string
	// PaymentID is set on declines: a declined payment is still recorded.
	PaymentID string
	// RetryAfter, on a rate_limited error, is how long the caller must
	// wait (the Retry-After header); it is not part of the body.
	RetryAfter time.Duration
}

// Errorf returns an *Error with a formatted message.
func Errorf(code Code, param, format string, args ...any) *Error {
	return &Error{Code: code, Param: param, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Param != "" {
		return fmt.Sprintf("%s (%s): %s", e.Code, e.Param, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// errorBody is the wire form of an Error inside {"error": …}.
type errorBody struct {
	Type      ErrorType `json:"type"`
	Code      Code      `json:"code"`
	Message   string    `json:"message"`
	Param     string    `json:"param,omitempty"`
	PaymentID string    `json:"payment_id,omitempty"`
}

// MarshalJSON renders the public error object (without the {"error":…}
// envelope).
func (e *Error) MarshalJSON() ([]byte, error) {
	return json.Marshal(errorBody{e.Code.Type(), e.Code, e.Message, e.Param, e.PaymentID})
}

// UnmarshalJSON reads the public error object.
func (e *Error) UnmarshalJSON(b []byte) error {
	var w errorBody
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*e = Error{Code: w.Code, Message: w.Message, Param: w.Param, PaymentID: w.PaymentID}
	return nil
}

// ErrorCode returns the code of the first *Error in err's chain, or
// ErrInternal when there is none (and "" for a nil err).
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ErrInternal
}
