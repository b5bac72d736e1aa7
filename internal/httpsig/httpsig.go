// Package httpsig implements HTTP Message Signatures (RFC 9421) for requests,
// as the Web Bot Auth profile uses them, and Content-Digest (RFC 9530).
//
// It is written in-house because the module proxy refuses the third-party
// Go libraries; it is proved against RFC 9421 appendix B.2.6 and the Web Bot
// Auth test vectors. It only builds and checks signatures: which keys to
// trust, how long a signature may live and which nonces were seen are the
// caller's decisions (see Signature.Check).
package httpsig

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha512"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/dunglas/httpsfv"
)

// Limits on untrusted input.
const (
	MaxHeaderBytes = 8 << 10 // Signature-Input or Signature
	MaxSignatures  = 8       // labels in one request
	MaxComponents  = 32      // covered components of one signature
)

// Errors. Each says what is wrong with the request; the API maps them to
// its own codes.
var (
	ErrMissing     = errors.New("httpsig: the request has no Signature-Input and Signature")
	ErrMalformed   = errors.New("httpsig: Signature-Input or Signature is malformed")
	ErrUnsupported = errors.New("httpsig: unsupported component or algorithm")
	ErrInvalid     = errors.New("httpsig: the signature does not verify")
	ErrExpired     = errors.New("httpsig: the signature has expired or is not yet valid")
)

// Params are a signature's parameters (RFC 9421 §2.3). Zero times and empty
// strings are absent.
type Params struct {
	// Components are the covered component identifiers, in order: derived
	// components ("@method", "@authority", "@path", "@query",
	// "@target-uri", "@scheme", "@request-target") or lower-case field
	// names ("content-digest").
	Components []string
	Created    time.Time
	Expires    time.Time
	Nonce      string
	KeyID      string
	Alg        string
	Tag        string
}

// Signature is one labelled signature found in a request.
type Signature struct {
	Label string
	Params
	Value []byte
	// ids are the covered component identifiers as received (with their
	// parameters), and params the inner list re-serialised canonically, for
	// the signature base.
	ids    []httpsfv.Item
	params string
}

// Parse returns the request's signatures in the order of its
// Signature-Input dictionary. Each label must be in both fields.
func Parse(h http.Header) ([]Signature, error) {
	in, sig := h.Values("Signature-Input"), h.Values("Signature")
	if len(in) == 0 && len(sig) == 0 {
		return nil, ErrMissing
	}
	if size(in) > MaxHeaderBytes || size(sig) > MaxHeaderBytes {
		return nil, fmt.Errorf("%w: the fields are longer than %d bytes", ErrMalformed, MaxHeaderBytes)
	}
	inputs, err := httpsfv.UnmarshalDictionary(in)
	if err != nil {
		return nil, fmt.Errorf("%w: Signature-Input: %v", ErrMalformed, err)
	}
	values, err := httpsfv.UnmarshalDictionary(sig)
	if err != nil {
		return nil, fmt.Errorf("%w: Signature: %v", ErrMalformed, err)
	}
	labels := inputs.Names()
	if len(labels) == 0 {
		return nil, ErrMissing
	}
	if len(labels) > MaxSignatures {
		return nil, fmt.Errorf("%w: more than %d signatures", ErrMalformed, MaxSignatures)
	}
	out := make([]Signature, 0, len(labels))
	for _, label := range labels {
		m, _ := inputs.Get(label)
		list, ok := m.(httpsfv.InnerList)
		if !ok {
			return nil, fmt.Errorf("%w: Signature-Input %s is not an inner list", ErrMalformed, label)
		}
		v, ok := values.Get(label)
		if !ok {
			return nil, fmt.Errorf("%w: Signature has no %s", ErrMalformed, label)
		}
		item, ok := v.(httpsfv.Item)
		b, isBytes := item.Value.([]byte)
		if !ok || !isBytes {
			return nil, fmt.Errorf("%w: Signature %s is not a byte sequence", ErrMalformed, label)
		}
		s, err := fromInnerList(label, list)
		if err != nil {
			return nil, err
		}
		s.Value = b
		out = append(out, s)
	}
	return out, nil
}

func size(vs []string) int {
	n := 0
	for _, v := range vs {
		n += len(v)
	}
	return n
}

func fromInnerList(label string, list httpsfv.InnerList) (Signature, error) {
	s := Signature{Label: label}
	if len(list.Items) > MaxComponents {
		return s, fmt.Errorf("%w: %s covers more than %d components", ErrMalformed, label, MaxComponents)
	}
	for _, it := range list.Items {
		name, ok := it.Value.(string)
		if !ok || name == "" {
			return s, fmt.Errorf("%w: %s: component identifiers must be strings", ErrMalformed, label)
		}
		if it.Params != nil {
			for _, k := range it.Params.Names() {
				v, _ := it.Params.Get(k)
				if _, isString := v.(string); k != "key" || !isString || strings.HasPrefix(name, "@") {
					return s, fmt.Errorf("%w: component %q has parameter %q; only key on a field is supported", ErrUnsupported, name, k)
				}
			}
		}
		if name != strings.ToLower(name) {
			return s, fmt.Errorf("%w: component %q is not lower case", ErrMalformed, name)
		}
		s.Components = append(s.Components, name)
		s.ids = append(s.ids, it)
	}
	if list.Params != nil {
		for _, k := range list.Params.Names() {
			v, _ := list.Params.Get(k)
			var ok bool
			switch k {
			case "created", "expires":
				var n int64
				if n, ok = v.(int64); ok {
					if k == "created" {
						s.Created = time.Unix(n, 0)
					} else {
						s.Expires = time.Unix(n, 0)
					}
				}
			case "nonce":
				s.Nonce, ok = v.(string)
			case "keyid":
				s.KeyID, ok = v.(string)
			case "alg":
				s.Alg, ok = v.(string)
			case "tag":
				s.Tag, ok = v.(string)
			default:
				ok = true // unknown parameters are covered by the base, not interpreted
			}
			if !ok {
				return s, fmt.Errorf("%w: %s: parameter %s has the wrong type", ErrMalformed, label, k)
			}
		}
	}
	d := httpsfv.NewDictionary()
	d.Add("s", list)
	ser, err := httpsfv.Marshal(d)
	if err != nil {
		return s, fmt.Errorf("%w: %s: %v", ErrMalformed, label, err)
	}
	s.params = strings.TrimPrefix(ser, "s=")
	return s, nil
}

// innerList builds the structured form of p, in RFC 9421's parameter order.
func (p *Params) innerList() httpsfv.InnerList {
	l := httpsfv.InnerList{Params: httpsfv.NewParams()}
	for _, c := range p.Components {
		l.Items = append(l.Items, httpsfv.NewItem(c))
	}
	if !p.Created.IsZero() {
		l.Params.Add("created", p.Created.Unix())
	}
	if !p.Expires.IsZero() {
		l.Params.Add("expires", p.Expires.Unix())
	}
	for _, kv := range [][2]string{{"keyid", p.KeyID}, {"alg", p.Alg}, {"nonce", p.Nonce}, {"tag", p.Tag}} {
		if kv[1] != "" {
			l.Params.Add(kv[0], kv[1])
		}
	}
	return l
}

// Message is a request as it was signed: what RFC 9421's derived
// components and covered fields are read from, and the body that
// Content-Digest covers. Whatever carried the request fills it in
// (RequestMessage does it for an *http.Request), so that checking a
// signature needs no particular transport.
type Message struct {
	Method string
	// Scheme is the request's scheme as the client saw it ("https" behind
	// a TLS proxy).
	Scheme string
	// Authority is the host, and port if one was sent, that the request
	// named (Host, or HTTP/2's :authority).
	Authority string
	// Path is the target's path as sent, escaped ("" stands for "/").
	Path string
	// Query is "?" and the target's query as sent, or "" when it has none.
	Query string
	// Header holds the request's fields, keyed as net/http keys them
	// (http.CanonicalHeaderKey).
	Header http.Header
	// Body is the request's content.
	Body []byte
}

// RequestMessage returns r as signed, with its scheme as the client saw it
// and its body (which the caller has read; r.Body is not touched).
func RequestMessage(r *http.Request, scheme string, body []byte) Message {
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	var query string
	if r.URL.ForceQuery || r.URL.RawQuery != "" {
		query = "?" + r.URL.RawQuery
	}
	return Message{Method: r.Method, Scheme: scheme, Authority: host, Path: r.URL.EscapedPath(), Query: query,
		Header: r.Header, Body: body}
}

// Base returns the signature base of r for s (RFC 9421 §2.5). scheme is the
// request's scheme as the client saw it ("https" behind a TLS proxy).
func Base(r *http.Request, scheme string, s *Signature) ([]byte, error) {
	return RequestMessage(r, scheme, nil).Base(s)
}

// Base returns the signature base of m for s (RFC 9421 §2.5).
func (m Message) Base(s *Signature) ([]byte, error) {
	var b strings.Builder
	seen := map[string]bool{}
	for _, it := range s.ids {
		id, err := httpsfv.Marshal(it)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("%w: component %s is covered twice", ErrMalformed, id)
		}
		seen[id] = true
		v, err := m.component(it.Value.(string))
		if err != nil {
			return nil, err
		}
		if it.Params != nil {
			if key, ok := it.Params.Get("key"); ok {
				if v, err = member(v, key.(string)); err != nil {
					return nil, err
				}
			}
		}
		b.WriteString(id + ": " + v + "\n")
	}
	b.WriteString(`"@signature-params": ` + s.params)
	return []byte(b.String()), nil
}

func (m Message) component(c string) (string, error) {
	switch c {
	case "@method":
		return m.Method, nil
	case "@authority":
		return m.authority(), nil
	case "@scheme":
		return m.Scheme, nil
	case "@path":
		return m.path(), nil
	case "@query":
		if m.Query == "" {
			return "?", nil
		}
		return m.Query, nil
	case "@request-target":
		return m.path() + m.Query, nil
	case "@target-uri":
		return m.Scheme + "://" + m.authority() + m.path() + m.Query, nil
	case "@signature-params", "@status", "@query-param":
		return "", fmt.Errorf("%w: component %q cannot be covered here", ErrUnsupported, c)
	}
	if strings.HasPrefix(c, "@") {
		return "", fmt.Errorf("%w: unknown derived component %q", ErrUnsupported, c)
	}
	vs, ok := m.Header[http.CanonicalHeaderKey(c)]
	if !ok {
		return "", fmt.Errorf("%w: covered field %q is not in the request", ErrMalformed, c)
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = strings.TrimSpace(v)
	}
	return strings.Join(parts, ", "), nil
}

func (m Message) path() string {
	if m.Path == "" {
		return "/"
	}
	return m.Path
}

// member returns the serialisation of dictionary member key of a
// Dictionary field value (RFC 9421 §2.1.2).
func member(field, key string) (string, error) {
	d, err := httpsfv.UnmarshalDictionary([]string{field})
	if err != nil {
		return "", fmt.Errorf("%w: a field covered with key is not a dictionary: %v", ErrMalformed, err)
	}
	m, ok := d.Get(key)
	if !ok {
		return "", fmt.Errorf("%w: the field has no member %q", ErrMalformed, key)
	}
	one := httpsfv.NewDictionary()
	one.Add(key, m)
	ser, err := httpsfv.Marshal(one)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(ser, key+"="), nil
}

// authority is the request's host, lower case, without the scheme's
// default port (RFC 9421 §2.2.3).
func (m Message) authority() string {
	h := strings.ToLower(m.Authority)
	if (m.Scheme == "https" && strings.HasSuffix(h, ":443")) || (m.Scheme == "http" && strings.HasSuffix(h, ":80")) {
		h = h[:strings.LastIndexByte(h, ':')]
	}
	return h
}

// Verify checks s over r with pub, as Message.Verify does; scheme is the
// request's scheme as the client saw it.
func Verify(r *http.Request, scheme string, s *Signature, pub crypto.PublicKey) error {
	return RequestMessage(r, scheme, nil).Verify(s, pub)
}

// Verify checks s over m with pub, an ed25519.PublicKey or an
// *rsa.PublicKey (RSA-PSS with SHA-512). A stated alg must match the key.
func (m Message) Verify(s *Signature, pub crypto.PublicKey) error {
	base, err := m.Base(s)
	if err != nil {
		return err
	}
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if s.Alg != "" && s.Alg != "ed25519" {
			return fmt.Errorf("%w: alg %q for an Ed25519 key", ErrUnsupported, s.Alg)
		}
		if !ed25519.Verify(k, base, s.Value) {
			return ErrInvalid
		}
	case *rsa.PublicKey:
		if s.Alg != "" && s.Alg != "rsa-pss-sha512" {
			return fmt.Errorf("%w: alg %q for an RSA key", ErrUnsupported, s.Alg)
		}
		sum := sha512.Sum512(base)
		if rsa.VerifyPSS(k, crypto.SHA512, sum[:], s.Value, &rsa.PSSOptions{SaltLength: 64}) != nil {
			return ErrInvalid
		}
	default:
		return fmt.Errorf("%w: key type %T", ErrUnsupported, pub)
	}
	return nil
}

// Check applies the time window: the signature must carry created and
// expires, be no older than maxAge, not be from more than skew in the
// future, and not have expired.
func (s *Signature) Check(now time.Time, maxAge, skew time.Duration) error {
	switch {
	case s.Created.IsZero() || s.Expires.IsZero():
		return fmt.Errorf("%w: created and expires are required", ErrExpired)
	case s.Created.After(now.Add(skew)):
		return fmt.Errorf("%w: created is in the future", ErrExpired)
	case now.Sub(s.Created) > maxAge+skew:
		return fmt.Errorf("%w: created more than %s ago", ErrExpired, maxAge)
	case !now.Before(s.Expires.Add(skew)):
		return fmt.Errorf("%w: expired at %s", ErrExpired, s.Expires.UTC().Format(time.RFC3339))
	case s.Expires.Sub(s.Created) > maxAge:
		return fmt.Errorf("%w: the window from created to expires is longer than %s", ErrExpired, maxAge)
	}
	return nil
}

// Sign signs r with key under label and sets Signature-Input and Signature
// (replacing any). Every covered field must already be set on r. p.Alg is
// sent as given ("ed25519" for Web Bot Auth; RFC 9421 lets it be absent).
func Sign(r *http.Request, scheme, label string, p Params, key ed25519.PrivateKey) error {
	list := p.innerList()
	s, err := fromInnerList(label, list)
	if err != nil {
		return err
	}
	base, err := Base(r, scheme, &s)
	if err != nil {
		return err
	}
	in, sig := httpsfv.NewDictionary(), httpsfv.NewDictionary()
	in.Add(label, list)
	sig.Add(label, httpsfv.NewItem(ed25519.Sign(key, base)))
	inS, err := httpsfv.Marshal(in)
	if err != nil {
		return err
	}
	sigS, err := httpsfv.Marshal(sig)
	if err != nil {
		return err
	}
	r.Header.Set("Signature-Input", inS)
	r.Header.Set("Signature", sigS)
	return nil
}
