package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"vigil/auth"
	"vigil/ingest"
	"vigil/problem"
	"vigil/scoring"
	"vigil/store"
	"vigil/store/sqlite"
)

// fullPool admits nothing, as a scoring pool with every slot taken.
type fullPool struct{}

func (fullPool) Admit() (*scoring.Slot, error) { return nil, scoring.ErrOverloaded }

// TestOverloadRefusesWithoutStoring checks the rule behind 503: a reading the
// pool cannot take is not stored, so the client's retry is the only copy.
func TestOverloadRefusesWithoutStoring(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	secret := []byte("ingest-test-secret-ingest-test-secret")
	v, err := auth.NewVerifier(auth.VerifierConfig{Secret: secret, Issuer: "vigil", Audience: "vigil"})
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New(fiber.Config{ErrorHandler: problem.ErrorHandler})
	ingest.New(ingest.Config{Verifier: v, Store: st, Scorer: fullPool{}}).Register(app)
	tok, err := auth.Issuer{Secret: secret, Issuer: "vigil", Audience: "vigil"}.Mint(auth.Claims{
		Role: auth.RolePatient, Trial: "T1", Site: "S1", RegisteredClaims: jwt.RegisteredClaims{Subject: "P1"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	body := fmt.Sprintf(`{"reading_id":%q,"patient_id":"P1","trial_id":"T1","site_id":"S1",`+
		`"measured_at":%q,"vitals":{"heart_rate":80}}`, id, time.Now().UTC().Format(time.RFC3339))

	for _, path := range []string{"/v1/readings", "/v1/readings/batch"} {
		t.Run(path, func(t *testing.T) {
			b := body
			if strings.HasSuffix(path, "batch") {
				b = `{"readings":[` + body + `]}`
			}
			req := httptest.NewRequest("POST", path, strings.NewReader(b))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := app.Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(resp.Body)
			if resp.Header.Get("Retry-After") == "" {
				t.Fatalf("no Retry-After: %d %s", resp.StatusCode, data)
			}
			switch path {
			case "/v1/readings":
				if resp.StatusCode != 503 || resp.Header.Get("Content-Type") != problem.ContentType {
					t.Fatalf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), data)
				}
			default:
				if resp.StatusCode != 200 || !strings.Contains(string(data), `"status":503`) {
					t.Fatalf("batch: %d %s", resp.StatusCode, data)
				}
			}
			if _, err := st.Reading(ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("the refused reading was stored (err %v)", err)
			}
		})
	}
}
