package policy

import (
	"strings"

	"cel.dev/cel-go/common/cost"
)

// estimator gives the cost estimate the sizes the API allows, so that a
// string or map operation is bounded by real limits rather than by infinity.
type estimator struct{ sizes map[string]uint64 }

func (e estimator) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	path := n.Path()
	if len(path) == 0 {
		return nil
	}
	name := strings.Join(path, ".")
	if s, ok := e.sizes[name]; ok {
		return &cost.SizeEstimate{Min: 0, Max: s}
	}
	// Keys and values of payment.metadata.
	if strings.HasPrefix(name, "payment.metadata.") {
		return &cost.SizeEstimate{Min: 0, Max: 500}
	}
	return nil
}

func (estimator) EstimateCallCost(function, overloadID string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	return nil
}
