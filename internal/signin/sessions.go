package signin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"time"

	pb "github.com/paybound/paybound"
)

// Session limits.
const (
	// DefaultSessionTTL is how long a wallet session lasts after sign-in.
	DefaultSessionTTL = 12 * time.Hour
	// DefaultMaxSessions bounds one party's live sessions: signing in
	// once more ends the oldest.
	DefaultMaxSessions = 20
	// sweepLimit bounds the expired sessions one sign-in deletes.
	sweepLimit = 100
	// maxTokenLen bounds a token read from a cookie.
	maxTokenLen = 100
)

// Session is a signed-in wallet browser: who, until when, and the token
// every state change must carry (CSRF), derived from the session's token
// rather than stored.
type Session struct {
	Principal pb.Principal
	CSRF      string
	ExpiresAt time.Time
}

// hashToken is what the store keeps of a session token.
func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// csrfOf derives a session's CSRF token from its token: only the browser
// holding the cookie, and the server, can compute it.
func (s *Service) csrfOf(tok string) string {
	m := hmac.New(sha256.New, s.cfg.Key)
	m.Write([]byte("wallet csrf\x00"))
	m.Write([]byte(tok))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// StartSession signs p in: a new random 256-bit token (the cookie's value,
// returned once), of which the store keeps only the SHA-256, good for
// SessionTTL. When p already has MaxSessions, the oldest end. Each start
// also deletes up to 100 expired sessions of anyone, so that the table
// does not keep what no one can use.
func (s *Service) StartSession(ctx context.Context, p pb.Principal) (token string, _ *Session, _ error) {
	var b [32]byte
	rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	now := s.cfg.Clock.Now()
	if _, err := s.st.DeleteExpiredWalletSessions(ctx, now, sweepLimit); err != nil {
		return "", nil, err
	}
	old, err := s.st.WalletSessions(ctx, p.ID, s.cfg.MaxSessions+sweepLimit)
	if err != nil {
		return "", nil, err
	}
	for i := s.cfg.MaxSessions - 1; i < len(old); i++ {
		if err := s.st.DeleteWalletSession(ctx, old[i].TokenHash); err != nil {
			return "", nil, err
		}
	}
	ws := pb.WalletSession{TokenHash: hashToken(tok), Role: p.Role, ID: p.ID, UserID: p.UserID,
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.SessionTTL)}
	if err := s.st.PutWalletSession(ctx, ws); err != nil {
		return "", nil, err
	}
	return tok, &Session{Principal: p, CSRF: s.csrfOf(tok), ExpiresAt: ws.ExpiresAt}, nil
}

// Session returns the live session of token, or nil when there is none:
// unknown, ended, or expired (then deleted) on the service's clock.
func (s *Service) Session(ctx context.Context, token string) (*Session, error) {
	if token == "" || len(token) > maxTokenLen {
		return nil, nil
	}
	h := hashToken(token)
	ws, err := s.st.WalletSession(ctx, h)
	if pb.ErrorCode(err) == pb.ErrNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !s.cfg.Clock.Now().Before(ws.ExpiresAt) {
		return nil, s.st.DeleteWalletSession(ctx, h)
	}
	return &Session{Principal: pb.Principal{Role: ws.Role, ID: ws.ID, UserID: ws.UserID}, CSRF: s.csrfOf(token), ExpiresAt: ws.ExpiresAt}, nil
}

// EndSession ends the session of token (signing out); an unknown token is
// no error.
func (s *Service) EndSession(ctx context.Context, token string) error {
	if token == "" || len(token) > maxTokenLen {
		return nil
	}
	return s.st.DeleteWalletSession(ctx, hashToken(token))
}

// EndSessions ends every session of the caller, in every browser and
// process, and returns how many there were.
func (s *Service) EndSessions(ctx context.Context, caller pb.Principal) (int, error) {
	n, err := s.st.DeleteWalletSessions(ctx, caller.ID)
	if err == nil {
		s.cfg.Logger.Info("wallet: every session ended", "event", "wallet_sessions_ended", "principal", caller.ID, "sessions", n)
	}
	return n, err
}

// SessionTTL is how long a session lasts.
func (s *Service) SessionTTL() time.Duration { return s.cfg.SessionTTL }
