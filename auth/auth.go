// Package auth owns tokens: verifying patient and staff JWTs with pinned
// algorithms and required iss/aud/exp, minting development tokens, and deciding
// from a token's claims which rooms and sites its holder may see. It imports
// nothing of Vigil's.
package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Roles.
const (
	RolePatient = "patient"
	RolePI      = "pi"
	RoleCRA     = "cra"
	RoleSafety  = "safety"
	RoleOnCall  = "oncall"
	RoleAdmin   = "admin"
)

var staffRoles = []string{RolePI, RoleCRA, RoleSafety, RoleOnCall, RoleAdmin}

// Claims are Vigil's token claims: a patient token carries Trial and Site, a
// staff token Trials and Sites ("T008/S01").
type Claims struct {
	Role   string   `json:"role"`
	Name   string   `json:"name,omitempty"`
	Trial  string   `json:"trial,omitempty"`
	Site   string   `json:"site,omitempty"`
	Trials []string `json:"trials,omitempty"`
	Sites  []string `json:"sites,omitempty"`
	// AuthTime is when the identity provider last authenticated the user
	// (OpenID Connect auth_time); protocols may require it to be recent for
	// signed actions (21 CFR 11.200).
	AuthTime *jwt.NumericDate `json:"auth_time,omitempty"`
	jwt.RegisteredClaims
}

// IsStaff reports whether the claims are a staff role's.
func (c *Claims) IsStaff() bool { return slices.Contains(staffRoles, c.Role) }

// trialWide reports whether the role sees every site of its trials.
func (c *Claims) trialWide() bool {
	return c.Role == RoleSafety || c.Role == RoleOnCall || c.Role == RoleAdmin
}

// CanSeeSite reports whether a staff token may see a site's patients and alerts.
func (c *Claims) CanSeeSite(trial, site string) bool {
	if !c.IsStaff() {
		return false
	}
	if slices.Contains(c.Sites, trial+"/"+site) {
		return true
	}
	return c.trialWide() && slices.Contains(c.Trials, trial)
}

// CanSeeTrial reports whether a staff token may see a whole trial.
func (c *Claims) CanSeeTrial(trial string) bool {
	return c.IsStaff() && c.trialWide() && slices.Contains(c.Trials, trial)
}

// CanJoin reports whether the token may subscribe to a room of DESIGN.md:
// "site:{trial}:{site}" or "trial:{trial}".
func (c *Claims) CanJoin(room string) bool {
	parts := strings.Split(room, ":")
	switch {
	case len(parts) == 3 && parts[0] == "site" && parts[1] != "" && parts[2] != "":
		return c.CanSeeSite(parts[1], parts[2])
	case len(parts) == 2 && parts[0] == "trial" && parts[1] != "":
		return c.CanSeeTrial(parts[1])
	}
	return false
}

// MinSecretLen is the shortest HS256 secret accepted.
const MinSecretLen = 32

// Verifier checks tokens. It accepts only the algorithms it has keys for:
// HS256 with the shared secret, and RS256/ES256/EdDSA with configured public
// keys. "none" and algorithm confusion (an HS256 token signed with a public
// key) are rejected because the key is chosen by algorithm family, never by
// what the token asks for.
type Verifier struct {
	secret   []byte
	pubKeys  []crypto.PublicKey
	issuer   string
	audience string
	leeway   time.Duration
	now      func() time.Time
	// parser and the keys by algorithm family are made once: Verify runs
	// for every reading posted.
	parser                            *jwt.Parser
	hmacKeys, rsaKeys, ecKeys, edKeys []jwt.VerificationKey
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	Secret     []byte
	PublicKeys []crypto.PublicKey
	Issuer     string
	Audience   string
	// Leeway tolerates clock skew on exp/nbf/iat.
	Leeway time.Duration
	// Now overrides the clock in tests.
	Now func() time.Time
}

// Errors a Verifier returns, wrapped.
var (
	ErrNoToken = errors.New("auth: no token")
	ErrInvalid = errors.New("auth: invalid token")
)

// NewVerifier returns a Verifier. It needs a secret or at least one public key.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if len(cfg.Secret) == 0 && len(cfg.PublicKeys) == 0 {
		return nil, errors.New("auth: no JWT secret or public keys configured")
	}
	// RFC 7518 §3.2: an HS256 key must be at least as long as the hash. A
	// short secret can be brute-forced from any token an app leaks.
	if len(cfg.Secret) > 0 && len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("auth: the HS256 secret must be at least %d bytes", MinSecretLen)
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("auth: issuer and audience are required")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	v := &Verifier{secret: cfg.Secret, pubKeys: cfg.PublicKeys, issuer: cfg.Issuer,
		audience: cfg.Audience, leeway: cfg.Leeway, now: now}
	if len(v.secret) > 0 {
		v.hmacKeys = []jwt.VerificationKey{v.secret}
	}
	v.rsaKeys = keysOf[*rsa.PublicKey](v.pubKeys)
	v.ecKeys = keysOf[*ecdsa.PublicKey](v.pubKeys)
	v.edKeys = keysOf[ed25519.PublicKey](v.pubKeys)
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(v.algorithms()),
		jwt.WithIssuer(v.issuer),
		jwt.WithAudience(v.audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(v.now),
	)
	return v, nil
}

func (v *Verifier) algorithms() []string {
	var algs []string
	if len(v.secret) > 0 {
		algs = append(algs, "HS256")
	}
	for _, k := range v.pubKeys {
		switch k.(type) {
		case *rsa.PublicKey:
			algs = append(algs, "RS256")
		case *ecdsa.PublicKey:
			algs = append(algs, "ES256")
		case ed25519.PublicKey:
			algs = append(algs, "EdDSA")
		}
	}
	return algs
}

// Verify parses and checks a token: signature with a pinned algorithm, iss,
// aud, exp (required), nbf and iat.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, ErrNoToken
	}
	claims := &Claims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.keyFunc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if claims.Subject == "" || claims.Role == "" {
		return nil, fmt.Errorf("%w: sub and role are required", ErrInvalid)
	}
	return claims, nil
}

// keyFunc picks the candidate keys by the token's algorithm family (the
// parser has already refused any algorithm not in the pinned list); the
// parser tries each until one verifies the signature.
func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	var keys []jwt.VerificationKey
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		keys = v.hmacKeys
	case *jwt.SigningMethodRSA:
		keys = v.rsaKeys
	case *jwt.SigningMethodECDSA:
		keys = v.ecKeys
	case *jwt.SigningMethodEd25519:
		keys = v.edKeys
	}
	switch len(keys) {
	case 0:
		return nil, errors.New("no key for the token's algorithm")
	case 1:
		return keys[0], nil
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

func keysOf[K any](keys []crypto.PublicKey) []jwt.VerificationKey {
	var out []jwt.VerificationKey
	for _, k := range keys {
		if kk, ok := k.(K); ok {
			out = append(out, kk)
		}
	}
	return out
}

// LoadPublicKeys reads PEM-encoded public keys (RSA, ECDSA P-256, Ed25519).
func LoadPublicKeys(path string) ([]crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read public keys: %w", err)
	}
	var keys []crypto.PublicKey
	for rest := data; ; {
		var blockKey crypto.PublicKey
		blockKey, rest, err = nextPEMKey(rest)
		if err != nil {
			return nil, fmt.Errorf("auth: %s: %w", path, err)
		}
		if blockKey == nil {
			break
		}
		keys = append(keys, blockKey)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("auth: %s: no public keys", path)
	}
	return keys, nil
}

// Issuer mints HS256 tokens for development and tests (`vigil token`, demo).
type Issuer struct {
	Secret   []byte
	Issuer   string
	Audience string
	Now      func() time.Time
}

// Mint signs claims, filling iss, aud, iat and exp (now + ttl).
func (i Issuer) Mint(c Claims, ttl time.Duration) (string, error) {
	now := time.Now
	if i.Now != nil {
		now = i.Now
	}
	t := now()
	c.Issuer = i.Issuer
	c.Audience = jwt.ClaimStrings{i.Audience}
	c.IssuedAt = jwt.NewNumericDate(t)
	c.ExpiresAt = jwt.NewNumericDate(t.Add(ttl))
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(i.Secret)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return s, nil
}

// BearerToken extracts the token of an "Authorization: Bearer …" header.
func BearerToken(header string) string {
	const prefix = "bearer "
	if len(header) > len(prefix) && strings.EqualFold(header[:len(prefix)], prefix) {
		return strings.TrimSpace(header[len(prefix):])
	}
	return ""
}
