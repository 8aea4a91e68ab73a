package auth_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"vigil/auth"
)

var secret = []byte("unit-test-secret-unit-test-secret")

func claims(mod func(*auth.Claims)) auth.Claims {
	now := time.Now()
	c := auth.Claims{Role: auth.RolePI, Trials: []string{"T1"}, Sites: []string{"T1/S1"},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "u1", Issuer: "vigil", Audience: jwt.ClaimStrings{"vigil"},
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now)}}
	if mod != nil {
		mod(&c)
	}
	return c
}

func sign(t *testing.T, m jwt.SigningMethod, c auth.Claims, key any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pemFile(t *testing.T, keys ...crypto.PublicKey) string {
	t.Helper()
	var out []byte
	for _, k := range keys {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	path := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestVerify(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	keys, err := auth.LoadPublicKeys(pemFile(t, &rsaKey.PublicKey, &ecKey.PublicKey, edPub))
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Secret: secret, PublicKeys: keys, Issuer: "vigil", Audience: "vigil"})
	if err != nil {
		t.Fatal(err)
	}
	hsOnly, err := auth.NewVerifier(auth.VerifierConfig{Secret: secret, Issuer: "vigil", Audience: "vigil"})
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	enc := base64.RawURLEncoding.EncodeToString
	payload, _ := json.Marshal(claims(nil))

	cases := []struct {
		name  string
		v     *auth.Verifier
		token string
		ok    bool
	}{
		{"HS256", v, sign(t, jwt.SigningMethodHS256, claims(nil), secret), true},
		{"RS256", v, sign(t, jwt.SigningMethodRS256, claims(nil), rsaKey), true},
		{"ES256", v, sign(t, jwt.SigningMethodES256, claims(nil), ecKey), true},
		{"EdDSA", v, sign(t, jwt.SigningMethodEdDSA, claims(nil), edPriv), true},
		{"RS256 unknown key", v, sign(t, jwt.SigningMethodRS256, claims(nil), otherRSA), false},
		{"RS256 without public keys", hsOnly, sign(t, jwt.SigningMethodRS256, claims(nil), rsaKey), false},
		{"HS384 not pinned", v, sign(t, jwt.SigningMethodHS384, claims(nil), secret), false},
		{"alg none", v, enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(payload) + ".", false},
		{"confusion: HS256 keyed with the RSA public key", v, sign(t, jwt.SigningMethodHS256, claims(nil), rsaPEM), false},
		{"wrong secret", v, sign(t, jwt.SigningMethodHS256, claims(nil), []byte("another-secret-another-secret-xx")), false},
		{"expired", v, sign(t, jwt.SigningMethodHS256, claims(func(c *auth.Claims) {
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
		}), secret), false},
		{"no exp", v, sign(t, jwt.SigningMethodHS256, claims(func(c *auth.Claims) { c.ExpiresAt = nil }), secret), false},
		{"not yet valid", v, sign(t, jwt.SigningMethodHS256, claims(func(c *auth.Claims) {
			c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour))
		}), secret), false},
		{"wrong issuer", v, sign(t, jwt.SigningMethodHS256, claims(func(c *auth.Claims) { c.Issuer = "evil" }), secret), false},
		{"wrong audience", v, sign(t, jwt.SigningMethodHS256, claims(func(c *auth.Claims) {
			c.Audience = jwt.ClaimStrings{"other"}
		}), secret), false},
		{"no subject", v, sign(t, jwt.SigningMethodHS256, claims(func(c *auth.Claims) { c.Subject = "" }), secret), false},
		{"no role", v, sign(t, jwt.SigningMethodHS256, claims(func(c *auth.Claims) { c.Role = "" }), secret), false},
		{"garbage", v, "not.a.token", false},
		{"empty", v, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.v.Verify(tc.token)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if c.Subject != "u1" || c.Role != auth.RolePI {
					t.Fatalf("claims %+v", c)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted a token that must be refused")
			}
			if !errors.Is(err, auth.ErrInvalid) && !errors.Is(err, auth.ErrNoToken) {
				t.Fatalf("error %v is neither ErrInvalid nor ErrNoToken", err)
			}
		})
	}
}

func TestShortSecretRefused(t *testing.T) {
	if _, err := auth.NewVerifier(auth.VerifierConfig{Secret: []byte("short"), Issuer: "vigil", Audience: "vigil"}); err == nil {
		t.Fatal("accepted a 5-byte HS256 secret")
	}
}

func TestMintRoundTrip(t *testing.T) {
	iss := auth.Issuer{Secret: secret, Issuer: "vigil", Audience: "vigil"}
	tok, err := iss.Mint(auth.Claims{Role: auth.RolePatient, Trial: "T1", Site: "S1",
		RegisteredClaims: jwt.RegisteredClaims{Subject: "P1"}}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := auth.NewVerifier(auth.VerifierConfig{Secret: secret, Issuer: "vigil", Audience: "vigil"})
	c, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "P1" || c.Trial != "T1" || c.Site != "S1" || c.IsStaff() {
		t.Fatalf("claims %+v", c)
	}
}

func TestRoomPermissions(t *testing.T) {
	pi := &auth.Claims{Role: auth.RolePI, Trials: []string{"T1"}, Sites: []string{"T1/S1"}}
	cra := &auth.Claims{Role: auth.RoleCRA, Trials: []string{"T1", "T2"}, Sites: []string{"T1/S1", "T2/S9"}}
	safety := &auth.Claims{Role: auth.RoleSafety, Trials: []string{"T1"}}
	oncall := &auth.Claims{Role: auth.RoleOnCall, Trials: []string{"T2"}}
	admin := &auth.Claims{Role: auth.RoleAdmin, Trials: []string{"T1"}}
	patient := &auth.Claims{Role: auth.RolePatient, Trial: "T1", Site: "S1", Trials: []string{"T1"}, Sites: []string{"T1/S1"}}
	piNoTrials := &auth.Claims{Role: auth.RolePI, Sites: []string{"T1/S1"}}
	cases := []struct {
		name string
		c    *auth.Claims
		room string
		ok   bool
	}{
		{"pi own site", pi, "site:T1:S1", true},
		{"pi other site", pi, "site:T1:S2", false},
		{"pi trial room", pi, "trial:T1", false},
		{"pi site listed without trial claim", piNoTrials, "site:T1:S1", true},
		{"cra second trial site", cra, "site:T2:S9", true},
		{"cra trial room", cra, "trial:T2", false},
		{"safety any site of its trial", safety, "site:T1:S7", true},
		{"safety trial room", safety, "trial:T1", true},
		{"safety other trial", safety, "trial:T2", false},
		{"oncall trial room", oncall, "trial:T2", true},
		{"oncall site of other trial", oncall, "site:T1:S1", false},
		{"admin trial", admin, "trial:T1", true},
		{"patient never", patient, "site:T1:S1", false},
		{"malformed room", safety, "site:T1", false},
		{"empty parts", safety, "site::S1", false},
		{"extra parts", safety, "site:T1:S1:x", false},
		{"unknown kind", safety, "patient:T1:P1", false},
		{"empty trial", safety, "trial:", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.CanJoin(tc.room); got != tc.ok {
				t.Fatalf("CanJoin(%q) = %v, want %v", tc.room, got, tc.ok)
			}
		})
	}
}

func TestBearerToken(t *testing.T) {
	for in, want := range map[string]string{
		"Bearer abc": "abc", "bearer  abc ": "abc", "Basic abc": "", "Bearer": "", "": "", "Bearerabc": "",
	} {
		if got := auth.BearerToken(in); got != want {
			t.Errorf("BearerToken(%q) = %q, want %q", in, got, want)
		}
	}
}
