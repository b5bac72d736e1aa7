package main

import (
	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
)

// observeX402 is the x402 facilitator's ledger observer (a tab's deposit
// captured, released or expired marks the tab), once it is built.
func (m *Main) observeX402(tx *ledger.Tx, ev pb.LogEvent) error {
	if f := m.x402.Load(); f != nil {
		return f.Observe(tx, ev)
	}
	return nil
}
