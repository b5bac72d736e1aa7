package signin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"time"

	pb "github.com/paybound/paybound"
)

// ChallengeTTL is how long a passkey sign-in challenge is good for.
const ChallengeTTL = 5 * time.Minute

// challengeLen is a challenge's length: its expiry (8 bytes, Unix
// seconds), 16 random bytes and 16 bytes of MAC over both.
const challengeLen = 8 + 16 + 16

func (s *Service) challengeMAC(body []byte) []byte {
	m := hmac.New(sha256.New, s.cfg.Key)
	m.Write([]byte("wallet passkey sign-in\x00"))
	m.Write(body)
	return m.Sum(nil)[:16]
}

// NewPasskeyChallenge returns a challenge for a passkey sign-in, good for
// ChallengeTTL. Nothing is stored: the challenge carries its expiry and a
// MAC under the service's key, so any process sharing the key can check
// it (UsePasskeyChallenge), and asking for challenges fills no table.
func (s *Service) NewPasskeyChallenge() []byte {
	c := binary.BigEndian.AppendUint64(make([]byte, 0, challengeLen), uint64(s.cfg.Clock.Now().Add(ChallengeTTL).Unix()))
	var r [16]byte
	rand.Read(r[:])
	c = append(c, r[:]...)
	return append(c, s.challengeMAC(c)...)
}

var errChallenge = pb.Errorf(pb.ErrPasskeyInvalid, "credential", "this sign-in has expired or was already used; try again")

// CheckPasskeyChallenge reports whether c is a challenge this service
// made that has not expired (it may have been used: see
// UsePasskeyChallenge).
func (s *Service) CheckPasskeyChallenge(c []byte) error {
	if len(c) != challengeLen || !hmac.Equal(c[24:], s.challengeMAC(c[:24])) {
		return errChallenge
	}
	if !s.cfg.Clock.Now().Before(time.Unix(int64(binary.BigEndian.Uint64(c[:8])), 0)) {
		return errChallenge
	}
	return nil
}

// UsePasskeyChallenge checks c as CheckPasskeyChallenge does and uses it
// up, in the store: a challenge signs in once, whichever process the
// assertion reaches. Call it once the assertion is verified.
func (s *Service) UsePasskeyChallenge(ctx context.Context, c []byte) error {
	if err := s.CheckPasskeyChallenge(c); err != nil {
		return err
	}
	h := sha256.Sum256(c)
	first, err := s.st.UseSignInChallenge(ctx, h[:], time.Unix(int64(binary.BigEndian.Uint64(c[:8])), 0))
	if err != nil {
		return err
	}
	if !first {
		return errChallenge
	}
	return nil
}
