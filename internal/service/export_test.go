package service

import (
	"context"

	pb "github.com/paybound/paybound"
)

// Assess runs the risk assessment CreatePayment makes for caller's params,
// alone: for the benchmark of its in-process cost.
func (s *Service) Assess(ctx context.Context, caller pb.Principal, params CreatePaymentParams) (*pb.Risk, error) {
	if err := s.validatePayment(&params); err != nil {
		return nil, err
	}
	m, err := s.Merchant(ctx, params.MerchantID)
	if err != nil || m == nil {
		return nil, err
	}
	assurance := pb.AssuranceBearer
	if caller.Signed {
		assurance = pb.AssuranceSigned
	}
	r, token, err := s.cfg.Risk.Assess(ctx, RiskAttempt{&params, m, caller.UserID, caller.ID, string(assurance)})
	s.noteRisk(caller.UserID, nil, token)
	return r, err
}

// DropRiskBooks forgets every payer's recent payments, as a restart would.
func (s *Service) DropRiskBooks() {
	s.cfg.Risk.(interface{ DropBooks() }).DropBooks()
}
