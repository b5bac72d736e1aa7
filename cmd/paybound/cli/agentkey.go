package cli

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	pb "github.com/paybound/paybound"
	"github.com/paybound/paybound/client"
	"github.com/paybound/paybound/internal/strictjson"
)

// agentKeyFile is an agent's private key as a JWK (RFC 8037), as keygen
// writes it.
type agentKeyFile struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	D   string `json:"d"`
}

// loadAgentKey reads an agent key file and returns its keyid (the RFC 7638
// thumbprint of the public key) and private key. A file others can read is
// refused.
func loadAgentKey(path string) (string, ed25519.PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", nil, fmt.Errorf("couldn't read the agent key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", nil, fmt.Errorf("%s is readable by others (mode %v); run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("couldn't read the agent key: %w", err)
	}
	// Members other tools add (kid, use) are skipped; "D" for "d" is not.
	var k agentKeyFile
	if err := (strictjson.Options{AllowUnknownFields: true}).Unmarshal(b, &k); err != nil || k.Kty != "OKP" || k.Crv != "Ed25519" {
		return "", nil, fmt.Errorf("%s is not an Ed25519 JWK private key (make one with paybound agent keygen)", path)
	}
	seed, err := base64.RawURLEncoding.DecodeString(k.D)
	if err != nil || len(seed) != ed25519.SeedSize {
		return "", nil, fmt.Errorf("%s has no valid private part (d)", path)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	_, keyID, err := pb.ParseEd25519JWK(publicJWK(priv))
	if err != nil {
		return "", nil, err
	}
	return keyID, priv, nil
}

func publicJWK(priv ed25519.PrivateKey) []byte {
	b, _ := json.Marshal(map[string]string{"kty": "OKP", "crv": "Ed25519",
		"x": base64.RawURLEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))})
	return b
}

// keygen writes a new agent key: the private JWK to --out (mode 0600) and
// the public one beside it (.pub).
func (cl *cli) keygen(args []string) error {
	c := cl.command("agent keygen", "agent keygen [--out agent.key]", false)
	out := c.fs.String("out", "agent.key", "where to write the private key (the public key goes to FILE.pub)")
	if _, err := c.parse(args); err != nil {
		return err
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("%s exists; remove it or choose another --out", *out)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	pub := publicJWK(priv)
	k := agentKeyFile{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)),
		D: base64.RawURLEncoding.EncodeToString(priv.Seed())}
	b, _ := json.MarshalIndent(k, "", "  ")
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(*out+".pub", append(pub, '\n'), 0o644); err != nil {
		return err
	}
	_, keyID, _ := pb.ParseEd25519JWK(pub)
	return c.print(map[string]string{"keyid": keyID, "private_key_file": *out, "public_key_file": *out + ".pub"}, func(w io.Writer) {
		fmt.Fprintf(w, "keyid %s\nprivate key %s (mode 0600), public key %s\n", keyID, *out, *out+".pub")
		fmt.Fprintf(w, "register it:  paybound agents create --name NAME --public-key @%s.pub\n", *out)
		fmt.Fprintf(w, "then sign:    export PAYBOUND_AGENT_KEY=%s\n", *out)
	})
}

// readJWK reads a --public-key value: a JWK, or @FILE to read it from FILE.
func readJWK(v string) (json.RawMessage, error) {
	file, ok := strings.CutPrefix(v, "@")
	if !ok {
		return json.RawMessage(v), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("couldn't read --public-key: %w", err)
	}
	return b, nil
}

// agentKeys dispatches `paybound agents keys add|list|revoke`.
func (cl *cli) agentKeys(args []string) error {
	return cl.group("agents keys", args, map[string]func([]string) error{
		"add": cl.addAgentKey, "list": cl.listAgentKeys, "revoke": cl.revokeAgentKey})
}

func (cl *cli) addAgentKey(args []string) error {
	c := cl.command("agents keys add", "agents keys add agt_… --public-key JWK|@FILE [--rotate-after 24h]", true)
	pub := c.fs.String("public-key", "", "the new Ed25519 public key as a JWK, or @FILE (paybound agent keygen writes FILE.pub) (required)")
	rotate := c.fs.Duration("rotate-after", 0, "retire the agent's other keys after this grace period, at most 720h (default: keep them)")
	pos, err := c.parse(args, "agt_…")
	if err != nil {
		return err
	}
	if *pub == "" {
		return errors.New("--public-key is required")
	}
	jwk, err := readJWK(*pub)
	if err != nil {
		return err
	}
	api, ctx, err := c.client()
	if err != nil {
		return err
	}
	k, err := api.AddAgentKey(ctx, pos[0], jwk, rotate.Truncate(time.Second))
	if err != nil {
		return err
	}
	return c.print(k, func(w io.Writer) {
		fmt.Fprintf(w, "key %s added to %s\n", k.KeyID, k.AgentID)
		if *rotate > 0 {
			fmt.Fprintf(w, "the agent's other keys stop signing in %s\n", rotate.Truncate(time.Second))
		}
	})
}

func (cl *cli) listAgentKeys(args []string) error {
	c := cl.command("agents keys list", "agents keys list agt_…", true)
	pos, api, ctx, err := c.call(args, "agt_…")
	if err != nil {
		return err
	}
	keys, err := api.ListAgentKeys(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(keys, func(w io.Writer) {
		for _, k := range keys {
			state := "active"
			switch {
			case k.RevokedAt != nil:
				state = "revoked " + stamp(*k.RevokedAt)
			case !k.Active:
				state = "expired " + stamp(*k.NotAfter)
			case k.NotAfter != nil:
				state = "active until " + stamp(*k.NotAfter)
			}
			fmt.Fprintf(w, "%s  created %s  %s\n", k.KeyID, stamp(k.CreatedAt), state)
		}
	})
}

func (cl *cli) revokeAgentKey(args []string) error {
	c := cl.command("agents keys revoke", "agents keys revoke agt_… KEYID", true)
	pos, api, ctx, err := c.call(args, "agt_…", "KEYID")
	if err != nil {
		return err
	}
	k, err := api.RevokeAgentKey(ctx, pos[0], pos[1])
	if err != nil {
		return err
	}
	return c.print(k, func(w io.Writer) {
		fmt.Fprintf(w, "key %s of %s revoked at %s\n", k.KeyID, k.AgentID, stamp(*k.RevokedAt))
	})
}

// revokeAgent is `paybound agents revoke`.
func (cl *cli) revokeAgent(args []string) error {
	c := cl.command("agents revoke", "agents revoke agt_…", true)
	pos, api, ctx, err := c.call(args, "agt_…")
	if err != nil {
		return err
	}
	a, err := api.RevokeAgent(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(a, func(w io.Writer) {
		fmt.Fprintf(w, "agent %s revoked at %s: its API key and signing keys no longer work\n", a.ID, stamp(*a.RevokedAt))
	})
}

// listAgents is `paybound agents list`: the user's agents, with their
// keys in force and assurance.
func (cl *cli) listAgents(args []string) error {
	c := cl.command("agents list", "agents list [--limit N] [--starting-after agt_…]", false)
	limit := c.fs.Int("limit", 0, fmt.Sprintf("page size, 1 to %d (default 10)", pb.MaxListLimit))
	after := c.fs.String("starting-after", "", "the last agent ID of the previous page")
	_, api, ctx, err := c.call(args)
	if err != nil {
		return err
	}
	page, err := api.ListAgents(ctx, client.ListParams{Limit: *limit, StartingAfter: *after})
	if err != nil {
		return err
	}
	return c.print(page, func(w io.Writer) {
		if len(page.Data) == 0 {
			fmt.Fprintln(w, "no agents")
			return
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tASSURANCE\tKEYS IN FORCE\tCREATED\tREVOKED")
		for _, a := range page.Data {
			n := 0
			for _, k := range a.Keys {
				if k.Active {
					n++
				}
			}
			revoked := "-"
			if a.RevokedAt != nil {
				revoked = stamp(*a.RevokedAt)
			}
			fmt.Fprintf(tw, "%s\t%q\t%s\t%d\t%s\t%s\n", a.ID, a.Name, a.Assurance, n, stamp(a.CreatedAt), revoked)
		}
		tw.Flush()
	})
}
