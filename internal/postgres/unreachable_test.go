package postgres_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/internal/postgres"
	"github.com/paybound/paybound/internal/storetest"
)

// cutProxy forwards TCP connections to a PostgreSQL server until cut: then
// it closes every connection it carries and refuses new ones (accepts and
// closes them), as a database that went away does, until resumed.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			down := p.down
			p.mu.Unlock()
			if down {
				c.Close()
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() { io.Copy(c, s); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) resume() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// TestUnreachableIsUnavailable: while the database is out of reach, reads
// and commits fail with pb.ErrUnavailable (the API's 503: retry with the
// same Idempotency-Key), not as internal errors or as answers such as "not
// found"; once it is back, the store works again by itself, without a dead
// connection left in its pool; and a refusal by the database keeps its own
// meaning.
func TestUnreachableIsUnavailable(t *testing.T) {
	u, err := url.Parse(storetest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	ctx := context.Background()
	s, err := postgres.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC().Truncate(time.Second)
	merchant := func(id string) *pb.Batch {
		return &pb.Batch{PaymentPart: pb.PaymentPart{Merchants: []pb.Merchant{{ID: id, Name: "m", CreatedAt: now}}}}
	}
	id := pb.NewID(pb.PrefixMerchant, now)
	if _, err := s.Merchant(ctx, id); pb.ErrorCode(err) != pb.ErrNotFound {
		t.Fatalf("a merchant that does not exist: %v", err)
	}

	proxy.cut()
	if _, err := s.Merchant(ctx, id); pb.ErrorCode(err) != pb.ErrUnavailable {
		t.Fatalf("a read while the database is away: %v (code %s); want unavailable", err, pb.ErrorCode(err))
	}
	if _, err := s.LookupIdempotency(ctx, []pb.IdempotencyKey{{Caller: "c", Key: "k"}}); pb.ErrorCode(err) != pb.ErrUnavailable {
		t.Fatalf("an idempotency lookup while the database is away: %v; want unavailable", err)
	}
	if err := s.Commit(ctx, merchant(id)); pb.ErrorCode(err) != pb.ErrUnavailable || errors.Is(err, pb.ErrStoreConflict) {
		t.Fatalf("a commit while the database is away: %v; want unavailable", err)
	}

	proxy.resume()
	// Connections the cut left idle in the pool fail once each and are
	// dropped: within the pool's size (16) plus one tries, the store works.
	for try := 0; ; try++ {
		err := s.Commit(ctx, merchant(id))
		if err == nil {
			break
		}
		if pb.ErrorCode(err) != pb.ErrUnavailable || try > 16 {
			t.Fatalf("commit after the database came back, try %d: %v", try, err)
		}
	}
	if m, err := s.Merchant(ctx, id); err != nil || m.ID != id {
		t.Fatalf("the merchant committed after the cut: %v %v", m, err)
	}
	// The database refusing a batch is a conflict, not unavailability.
	if err := s.Commit(ctx, merchant(id)); !errors.Is(err, pb.ErrStoreConflict) || pb.ErrorCode(err) == pb.ErrUnavailable {
		t.Fatalf("a duplicate merchant: %v; want a store conflict", err)
	}
}
