package checkout

import (
	"context"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/ledger"
	"github.com/paybound/paybound/internal/service"
)

// ProductParams is a new product, or (with nil fields kept) a change to
// one; a product's currency never changes, since sessions and orders are
// priced in it.
type ProductParams struct {
	Name        *string
	SKU         *string
	Price       *int64
	Currency    string
	Fulfillment *pb.Fulfillment
}

func noProduct(id string) error {
	return pb.Errorf(pb.ErrNotFound, "id", "no such product: %s", id)
}

// check validates the fields p sets.
func (p *ProductParams) check() error {
	if p.Name != nil {
		if err := checkText(*p.Name, "name", pb.MaxProductName, true); err != nil {
			return err
		}
	}
	if p.SKU != nil {
		if err := checkText(*p.SKU, "sku", pb.MaxSKU, false); err != nil {
			return err
		}
	}
	if p.Price != nil {
		if err := pb.ValidateAmount(*p.Price, "price"); err != nil {
			return err
		}
	}
	if p.Fulfillment != nil && *p.Fulfillment != pb.FulfillmentDigital && *p.Fulfillment != pb.FulfillmentShipping {
		return pb.Errorf(pb.ErrParameterInvalid, "fulfillment", "fulfillment must be digital or shipping")
	}
	return nil
}

// CreateProduct (merchant) adds a product to the caller's catalog.
func (s *Service) CreateProduct(ctx context.Context, caller pb.Principal, idem *service.Idempotency, p ProductParams) service.Result {
	if err := service.RequireRole(caller, pb.RoleMerchant); err != nil {
		return service.Result{Err: err}
	}
	switch {
	case p.Name == nil:
		return service.Result{Err: pb.Errorf(pb.ErrParameterMissing, "name", "name is required")}
	case p.Price == nil:
		return service.Result{Err: pb.Errorf(pb.ErrParameterMissing, "price", "price is required: an integer number of the currency's minor units")}
	case p.Currency == "":
		return service.Result{Err: pb.Errorf(pb.ErrParameterMissing, "currency", "currency is required: an ISO 4217 code such as USD")}
	case p.Fulfillment == nil:
		return service.Result{Err: pb.Errorf(pb.ErrParameterMissing, "fulfillment", "fulfillment is required: digital or shipping")}
	}
	if err := p.check(); err != nil {
		return service.Result{Err: err}
	}
	if err := pb.ValidateCurrency(p.Currency, "currency"); err != nil {
		return service.Result{Err: err}
	}
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		now := tx.Now().Truncate(1e9)
		prod := pb.Product{ID: pb.NewID(pb.PrefixProduct, tx.Now()), Object: "product", MerchantID: caller.ID, Name: *p.Name,
			Price: *p.Price, Currency: p.Currency, Fulfillment: *p.Fulfillment, Active: true, CreatedAt: now, UpdatedAt: now}
		if p.SKU != nil {
			prod.SKU = *p.SKU
		}
		ledger.Add(tx, products, prod)
		return &prod, nil
	})
}

// UpdateProduct (its merchant) changes a product's name, SKU, price or
// fulfillment. Sessions already priced keep their prices until their
// lines are updated.
func (s *Service) UpdateProduct(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string, p ProductParams) service.Result {
	if err := service.RequireRole(caller, pb.RoleMerchant); err != nil {
		return service.Result{Err: err}
	}
	if p.Currency != "" {
		return service.Result{Err: pb.Errorf(pb.ErrParameterInvalid, "currency", "a product's currency cannot change; archive it and create another")}
	}
	if err := p.check(); err != nil {
		return service.Result{Err: err}
	}
	return s.changeProduct(ctx, caller, idem, id, func(prod *pb.Product) error {
		if !prod.Active {
			return pb.Errorf(pb.ErrProductArchived, "", "product %s is archived; it cannot change", prod.ID)
		}
		if p.Name != nil {
			prod.Name = *p.Name
		}
		if p.SKU != nil {
			prod.SKU = *p.SKU
		}
		if p.Price != nil {
			prod.Price = *p.Price
		}
		if p.Fulfillment != nil {
			prod.Fulfillment = *p.Fulfillment
		}
		return nil
	})
}

// ArchiveProduct (its merchant) takes a product out of the catalog: no
// new session may add it. Archiving twice is not an error.
func (s *Service) ArchiveProduct(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string) service.Result {
	if err := service.RequireRole(caller, pb.RoleMerchant); err != nil {
		return service.Result{Err: err}
	}
	return s.changeProduct(ctx, caller, idem, id, func(prod *pb.Product) error {
		prod.Active = false
		return nil
	})
}

// changeProduct applies change to the caller's product id in the writer.
func (s *Service) changeProduct(ctx context.Context, caller pb.Principal, idem *service.Idempotency, id string, change func(*pb.Product) error) service.Result {
	if !pb.HasPrefix(id, pb.PrefixProduct) {
		return service.Result{Err: noProduct(id)}
	}
	release, err := s.exclusive(ctx, id, idem)
	if err != nil {
		return service.Result{Err: err}
	}
	defer release()
	return s.core.Run(ctx, idem, func(tx *ledger.Tx) (any, error) {
		prod, err := s.productIn(tx, id)
		if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && prod.MerchantID != caller.ID) {
			return nil, noProduct(id)
		}
		if err != nil {
			return nil, err
		}
		if err := change(prod); err != nil {
			return nil, err
		}
		prod.UpdatedAt = tx.Now().Truncate(1e9)
		ledger.Add(tx, products, *prod)
		return prod, nil
	})
}

// Product returns product id: to its merchant and the operator whatever
// its state, to users and agents while it is in the catalog.
func (s *Service) Product(ctx context.Context, caller pb.Principal, id string) (*pb.Product, error) {
	if !pb.HasPrefix(id, pb.PrefixProduct) {
		return nil, noProduct(id)
	}
	p, err := s.st.Product(ctx, id)
	if pb.ErrorCode(err) == pb.ErrNotFound || (err == nil && !productVisible(p, caller)) {
		return nil, noProduct(id)
	}
	return p, err
}

func productVisible(p *pb.Product, c pb.Principal) bool {
	switch c.Role {
	case pb.RoleOperator:
		return true
	case pb.RoleMerchant:
		return p.MerchantID == c.ID
	}
	return p.Active
}

// ListProducts lists a catalog, newest first: a merchant its own (archived
// ones too when asked), users and agents the active products of
// merchantID, the operator anything.
func (s *Service) ListProducts(ctx context.Context, caller pb.Principal, merchantID string, archived bool, after string, limit int) ([]pb.Product, bool, error) {
	f := pb.ProductFilter{MerchantID: merchantID, IncludeArchived: archived, StartingAfter: after, Limit: limit}
	switch caller.Role {
	case pb.RoleOperator:
	case pb.RoleMerchant:
		if merchantID != "" && merchantID != caller.ID {
			return nil, false, pb.Errorf(pb.ErrForbidden, "merchant_id", "a merchant lists its own products")
		}
		f.MerchantID = caller.ID
	default:
		if merchantID == "" {
			return nil, false, pb.Errorf(pb.ErrParameterMissing, "merchant_id", "name the merchant whose catalog to list (?merchant_id=mch_…)")
		}
		if archived {
			return nil, false, pb.Errorf(pb.ErrForbidden, "archived", "only the merchant sees its archived products")
		}
	}
	return s.st.ListProducts(ctx, f)
}
