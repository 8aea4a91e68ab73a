package predictor_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"vigil/predictor"
	"vigil/predictor/predictortest"
)

// testCA makes a CA and, signed by it, a certificate for 127.0.0.1 and
// predictor.test, and writes the CA, the certificate and its key as PEM.
func testCA(t *testing.T, dir, name string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "predictor.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"predictor.test"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	caCert, _ := x509.ParseCertificate(caDER)
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	write := func(file, typ string, der []byte) string {
		p := filepath.Join(dir, name+"-"+file)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", leafDER), write("key.pem", "PRIVATE KEY", keyDER)
}

// TestTLS runs the real predictor-py with --tls-cert and --tls-key: a client
// trusting its CA gets predictions; a plaintext client, one trusting another
// CA, and one expecting another name get none.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := testCA(t, dir, "good")
	otherCA, _, _ := testCA(t, dir, "other")
	srv := predictortest.Start(t, "", "--tls-cert", cert, "--tls-key", key)
	features := map[string]float32{"respiratory_rate": 22, "spo2": 93, "systolic_bp": 104, "heart_rate": 108,
		"temperature": 38.4, "not_alert": 0, "on_oxygen": 0, "news2_total": 6, "age_band": 2}

	tests := []struct {
		name       string
		ca         string
		serverName string
		wantOK     bool
	}{
		{"trusted CA", ca, "", true},
		{"trusted CA, certificate's DNS name", ca, "predictor.test", true},
		{"plaintext", "", "", false},
		{"another CA", otherCA, "", false},
		{"another name", ca, "elsewhere.test", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tlsCfg, err := predictor.TLSConfig(tt.ca, tt.serverName)
			if err != nil {
				t.Fatal(err)
			}
			c, err := predictor.New(predictor.Config{Addr: srv.Addr, Timeout: 3 * time.Second, BatchSize: 1, TLS: tlsCfg})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			p, err := c.Predict(context.Background(), predictor.Request{PatientID: "P1", Features: features})
			if (err == nil) != tt.wantOK {
				t.Fatalf("Predict: %v (probability %v), want ok %v", err, p.Probability, tt.wantOK)
			}
			if tt.wantOK && (p.Probability <= 0 || p.Probability >= 1) {
				t.Errorf("probability %v", p.Probability)
			}
		})
	}
	// The container healthcheck speaks TLS with the CA, and fails without.
	python := filepath.Join(predictortest.Dir(), ".venv", "bin", "python")
	for _, hc := range []struct {
		args []string
		want int
	}{
		{[]string{srv.Addr, "--tls-ca", ca}, 0},
		{[]string{srv.Addr}, 1},
	} {
		cmd := exec.Command(python, append([]string{"-m", "predictor.healthcheck"}, hc.args...)...)
		cmd.Dir = predictortest.Dir()
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != hc.want {
			t.Errorf("healthcheck %v: exit %d, want %d", hc.args, code, hc.want)
		}
	}
	if _, err := predictor.TLSConfig(filepath.Join(dir, "missing.pem"), ""); err == nil {
		t.Error("TLSConfig with a missing CA file: no error")
	}
}
