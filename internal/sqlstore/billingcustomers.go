package sqlstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	pb "github.com/paybound/paybound"
)

// CustomerProviders reads the pairs through billing_objects_customer
// (customer_id, provider_id), migration 0017.
func (r Reads) CustomerProviders(ctx context.Context, customerIDs []string, limit int) ([]pb.CustomerProvider, error) {
	if len(customerIDs) == 0 {
		return []pb.CustomerProvider{}, nil
	}
	if len(customerIDs) > pb.MaxListLimit {
		return nil, pb.Errorf(pb.ErrParameterInvalid, "customers", "at most %d customers at once", pb.MaxListLimit)
	}
	ps := make([]string, len(customerIDs))
	args := make([]any, 0, len(customerIDs)+1)
	for i, id := range customerIDs {
		ps[i] = "$" + strconv.Itoa(i+1)
		args = append(args, id)
	}
	args = append(args, int64(limit))
	out, err := collect(ctx, r.DB, []pb.CustomerProvider{}, func(row Scanner) (*pb.CustomerProvider, error) {
		var c pb.CustomerProvider
		return &c, row.Scan(&c.CustomerID, &c.ProviderID)
	}, `SELECT DISTINCT customer_id, provider_id FROM billing_objects WHERE customer_id IN (`+strings.Join(ps, ", ")+`)
		ORDER BY customer_id, provider_id LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the providers of %d customers: %w", len(customerIDs), err)
	}
	return out, nil
}
