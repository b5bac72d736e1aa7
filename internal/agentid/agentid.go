// Package agentid is the agent identity capability: an agent's Ed25519
// signing keys (added, rotated, revoked by its user) and the
// authentication of its requests signed with them (RFC 9421), each kept
// as evidence for the transparency log. It runs over the payments core
// (Core) and its own store interface, and offers its routes to the REST
// API (Routes). Registering an agent, with its first key, is the core's.
package agentid

import (
	"context"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

// Core is what agent identity needs of the payments core (service.Service).
type Core interface {
	// Run runs op in the ledger writer, under idem when set.
	Run(ctx context.Context, idem *service.Idempotency, op ledger.Op) service.Result
	// ForgetPrincipal drops what the core remembers of a principal's keys
	// (after its revocation).
	ForgetPrincipal(id string)
	// SigningKey returns the key keyid and its agent (ID and user), as of
	// the last change this process committed, or the store's
	// (service.SigningKey).
	SigningKey(ctx context.Context, keyid string) (*pb.Agent, *pb.AgentKey, error)
}

// Store is what agent identity reads: its own rows and the agents the keys
// belong to.
type Store interface {
	pb.AgentKeyStore
	Agent(ctx context.Context, id string) (*pb.Agent, error)
}

// Service is the agent identity capability. Safe for concurrent use.
type Service struct {
	core  Core
	st    Store
	clock pb.Clock
}

// New returns agent identity over core and st, with the core's clock
// (nil: the wall clock).
func New(core Core, st Store, clock pb.Clock) *Service {
	if clock == nil {
		clock = pb.SystemClock{}
	}
	return &Service{core: core, st: st, clock: clock}
}
