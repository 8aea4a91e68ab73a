// Package ingest owns the readings API of ePRO apps: POST /v1/readings and
// /v1/readings/batch. It authenticates patient tokens, rate-limits, decodes
// strictly, stores each reading durably before acknowledging it, and hands it
// to the scoring pipeline. It imports auth, reading, store, scoring, problem
// and ratelimit; nothing imports it but the server.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"vigil/auth"
	"vigil/metrics"
	"vigil/problem"
	"vigil/ratelimit"
	"vigil/reading"
	"vigil/scoring"
	"vigil/store"
	"vigil/tracing"
	"vigil/trial"
)

// batchParallel bounds the readings of one batch in flight at once.
const batchParallel = 16

// Body limits of DESIGN.md.
const (
	MaxReadingBody = 64 << 10
	MaxBatchBody   = 4 << 20
)

// Scorer admits readings to the scoring pool.
type Scorer interface {
	Admit() (*scoring.Slot, error)
}

// Registry tells whether a patient is registered and enrolled; trial.Cache
// is one.
type Registry interface {
	Patient(ctx context.Context, trialID, siteID, patientID string) (trial.PatientRecord, bool, error)
}

// Config configures the readings API.
type Config struct {
	// Registry, when set, refuses readings of withdrawn patients.
	Registry   Registry
	Verifier   *auth.Verifier
	Store      store.Store
	Scorer     Scorer
	PerPatient ratelimit.Allower // nil: no limit
	PerIP      ratelimit.Allower // nil: no limit
	Logger     *slog.Logger
	Now        func() time.Time
	// StoreTimeout bounds the durable write of one request.
	StoreTimeout time.Duration
}

// API serves the readings endpoints.
type API struct{ cfg Config }

// New returns the readings API.
func New(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = 10 * time.Second
	}
	return &API{cfg: cfg}
}

// Register mounts the endpoints on r.
func (a *API) Register(r fiber.Router) {
	g := r.Group("/v1/readings", a.limitIP)
	g.Post("/", a.postOne)
	g.Post("/batch", a.postBatch)
}

// accepted is the 2xx body of DESIGN.md.
type accepted struct {
	ReadingID string `json:"reading_id"`
	Status    string `json:"status"`
}

func (a *API) limitIP(c *fiber.Ctx) error {
	if a.cfg.PerIP == nil {
		return c.Next()
	}
	// Fiber's strings point into request memory that is reused after the
	// handler; the limiter keeps its key.
	if ok, wait := a.cfg.PerIP.Allow(c.UserContext(), strings.Clone(c.IP()), 1, a.cfg.Now()); !ok {
		metrics.ReadingsRejected.WithLabelValues("rate_ip").Inc()
		return problem.Send(c, problem.New(fiber.StatusTooManyRequests, "rate-limited", "Too many requests",
			"the request rate from this address is over its limit"), wait)
	}
	return c.Next()
}

// patient authenticates the patient token.
func (a *API) patient(c *fiber.Ctx) (*auth.Claims, error) {
	claims, err := a.cfg.Verifier.Verify(auth.BearerToken(c.Get(fiber.HeaderAuthorization)))
	if err != nil {
		metrics.ReadingsRejected.WithLabelValues("unauthorized").Inc()
		return nil, problem.Send(c, problem.Unauthorized("a valid patient token is required"), 0)
	}
	if claims.Role != auth.RolePatient {
		metrics.ReadingsRejected.WithLabelValues("forbidden").Inc()
		return nil, problem.Send(c, problem.Forbidden("only patient tokens may submit readings"), 0)
	}
	return claims, nil
}

// limitPatient takes n readings from the patient's bucket. The key holds the
// issuer, trial and site as well as the subject: pseudonyms such as "P1001"
// repeat across trials and identity providers, and unrelated participants
// must not throttle each other.
// When refused, it has sent the 429 and returns false with Send's error.
func (a *API) limitPatient(c *fiber.Ctx, claims *auth.Claims, n int) (bool, error) {
	if a.cfg.PerPatient == nil {
		return true, nil
	}
	key := claims.Issuer + "|" + claims.Trial + "|" + claims.Site + "|" + claims.Subject
	if ok, wait := a.cfg.PerPatient.Allow(c.UserContext(), key, n, a.cfg.Now()); !ok {
		metrics.ReadingsRejected.WithLabelValues("rate_patient").Inc()
		return false, problem.Send(c, problem.New(fiber.StatusTooManyRequests, "rate-limited", "Too many requests",
			"this patient's submission rate is over its limit"), wait)
	}
	return true, nil
}

func (a *API) postOne(c *fiber.Ctx) error {
	if len(c.Body()) > MaxReadingBody {
		metrics.ReadingsRejected.WithLabelValues("too_large").Inc()
		return problem.Send(c, problem.New(fiber.StatusRequestEntityTooLarge, "too-large", "Request body too large",
			fmt.Sprintf("one reading may be at most %d bytes; use /v1/readings/batch for more", MaxReadingBody)), 0)
	}
	claims, err := a.patient(c)
	if claims == nil {
		return err
	}
	if ok, err := a.limitPatient(c, claims, 1); !ok {
		return err
	}
	ctx, span := startSpan(c, "ingest.reading")
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, a.cfg.StoreTimeout)
	defer cancel()
	out := a.accept(ctx, claims, c.Body())
	span.SetAttributes(attribute.Int("http.response.status_code", out.status))
	return out.send(c)
}

// startSpan starts the span of a request, a child of the trace context the
// client sent (traceparent), if any.
func startSpan(c *fiber.Ctx, name string) (context.Context, trace.Span) {
	ctx := tracing.Extract(c.UserContext(), func(k string) string { return c.Get(k) })
	return tracing.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer))
}

// outcome is the result for one reading: a 2xx body or a problem.
type outcome struct {
	status     int
	body       *accepted
	problem    *problem.Details
	retryAfter time.Duration
}

func (o outcome) send(c *fiber.Ctx) error {
	if o.problem != nil {
		return problem.Send(c, *o.problem, o.retryAfter)
	}
	return c.Status(o.status).JSON(o.body)
}

func fail(p problem.Details, retryAfter time.Duration, reason string) outcome {
	metrics.ReadingsRejected.WithLabelValues(reason).Inc()
	return outcome{status: p.Status, problem: &p, retryAfter: retryAfter}
}

// accept runs one reading from bytes to a stored, admitted reading.
func (a *API) accept(ctx context.Context, claims *auth.Claims, body []byte) outcome {
	r, err := reading.Decode(body)
	if err != nil {
		return fail(inputProblem(err, "the body is not a valid reading"), 0, "malformed")
	}
	now := a.cfg.Now()
	if err := r.Validate(now); err != nil {
		return fail(inputProblem(err, "one or more values are impossible or missing"), 0, "invalid")
	}
	if r.PatientID != claims.Subject || r.TrialID != claims.Trial || r.SiteID != claims.Site {
		return fail(problem.Forbidden("this token may only submit readings for its own patient, trial and site"), 0, "forbidden")
	}
	if a.cfg.Registry != nil {
		// A patient without a record is never refused (the token proves
		// enrolment; the registry may lag), but a withdrawn one is.
		rec, registered, err := a.cfg.Registry.Patient(ctx, r.TrialID, r.SiteID, r.PatientID)
		if err != nil {
			a.cfg.Logger.Error("registry lookup", "reading_id", r.ReadingID, "err", err)
			return fail(problem.New(fiber.StatusServiceUnavailable, "registry-unavailable", "Registry unavailable",
				"the reading was not stored; retry after the indicated delay"), 2*time.Second, "registry_error")
		}
		if registered && rec.Status == trial.Withdrawn {
			return fail(problem.Forbidden("this patient is withdrawn from the trial; the reading was not stored"), 0, "withdrawn")
		}
	}
	slot, err := a.cfg.Scorer.Admit()
	if err != nil {
		return fail(problem.New(fiber.StatusServiceUnavailable, "overloaded", "Scoring queue full",
			"the reading was not stored; retry after the indicated delay"), time.Second, "overloaded")
	}
	// The original bytes are kept (ALCOA: original); Fiber reuses the request
	// buffer, so copy.
	payload := append([]byte(nil), body...)
	sctx, span := tracing.Start(ctx, "store.insert_reading")
	res, err := a.cfg.Store.InsertReading(sctx, store.NewReading{
		Reading: r, ReceivedAt: now.UTC(), Payload: payload, ContentHash: reading.ContentHash(r),
	})
	if err != nil {
		span.SetStatus(codes.Error, "store failed")
	}
	span.End()
	trc := trace.SpanContextFromContext(ctx)
	if err != nil {
		slot.Release()
		a.cfg.Logger.ErrorContext(ctx, "store reading", "reading_id", r.ReadingID, "err", err)
		return fail(problem.New(fiber.StatusServiceUnavailable, "store-unavailable", "Storage unavailable",
			"the reading was not stored; retry after the indicated delay"), 2*time.Second, "store_error")
	}
	switch res.Status {
	case store.Inserted:
		slot.Score(scoring.Input{Reading: r, ReceivedAt: res.ReceivedAt, Trace: trc})
		metrics.ReadingsAccepted.WithLabelValues("new").Inc()
		return outcome{status: fiber.StatusAccepted, body: &accepted{ReadingID: r.ReadingID, Status: "accepted"}}
	case store.Duplicate:
		if res.Scored {
			slot.Release()
		} else {
			// A retry of a reading whose scoring failed or is under way:
			// scoring again is safe (the first stored score wins).
			slot.Score(scoring.Input{Reading: r, ReceivedAt: res.ReceivedAt, Retry: true, Trace: trc})
		}
		metrics.ReadingsAccepted.WithLabelValues("duplicate").Inc()
		return outcome{status: fiber.StatusOK, body: &accepted{ReadingID: r.ReadingID, Status: "accepted"}}
	default:
		slot.Release()
		return fail(problem.New(fiber.StatusConflict, "conflict", "Reading id already used",
			"a different reading was already stored under this reading_id"), 0, "conflict")
	}
}

// inputProblem is the reply to a decoding error (400) or a validation error
// (422), naming the fields at fault.
func inputProblem(err error, detail string) problem.Details {
	var (
		de *reading.DecodeError
		ve *reading.ValidationError
	)
	switch {
	case errors.As(err, &ve):
		p := problem.New(fiber.StatusUnprocessableEntity, "validation", "Invalid reading", detail)
		p.Errors = ve.Errors
		return p
	case errors.As(err, &de):
		p := problem.BadRequest(de.Error())
		if de.Field != "" {
			p.Errors = []reading.FieldError{{Field: de.Field, Message: de.Message}}
		}
		return p
	}
	return problem.BadRequest(detail)
}

// batchItem is one reading's result in a batch reply.
type batchItem struct {
	Index     int              `json:"index"`
	ReadingID string           `json:"reading_id,omitempty"`
	Status    int              `json:"status"`
	Result    string           `json:"result"` // accepted | rejected
	Problem   *problem.Details `json:"problem,omitempty"`
}

func (a *API) postBatch(c *fiber.Ctx) error {
	if len(c.Body()) > MaxBatchBody {
		metrics.ReadingsRejected.WithLabelValues("too_large").Inc()
		return problem.Send(c, problem.New(fiber.StatusRequestEntityTooLarge, "too-large", "Request body too large",
			fmt.Sprintf("a batch may be at most %d bytes", MaxBatchBody)), 0)
	}
	claims, err := a.patient(c)
	if claims == nil {
		return err
	}
	raws, err := reading.DecodeBatch(c.Body())
	if err != nil {
		return problem.Send(c, inputProblem(err, "the body is not a valid batch"), 0)
	}
	// A batch takes one token per reading (at most a full bucket), so the
	// limit stays "readings per minute" while an app coming back online can
	// still send a full bucket's worth at once.
	if ok, err := a.limitPatient(c, claims, len(raws)); !ok {
		return err
	}
	ctx, span := startSpan(c, "ingest.batch")
	defer span.End()
	span.SetAttributes(attribute.Int("vigil.batch.readings", len(raws)))
	ctx, cancel := context.WithTimeout(ctx, a.cfg.StoreTimeout)
	defer cancel()
	// Readings are stored a few at a time so group commit puts the batch in
	// few transactions, without one batch taking most of the scoring slots
	// that live readings need; results keep the request's order.
	items := make([]batchItem, len(raws))
	var g errgroup.Group
	g.SetLimit(batchParallel)
	for i, raw := range raws {
		g.Go(func() error {
			out := a.accept(ctx, claims, raw)
			items[i] = batchItem{Index: i, Status: out.status, Result: "accepted"}
			if out.body != nil {
				items[i].ReadingID = out.body.ReadingID
			}
			if out.problem != nil {
				items[i].Result = "rejected"
				items[i].Problem = out.problem
			}
			return nil
		})
	}
	_ = g.Wait()
	var retry time.Duration
	for _, it := range items {
		if it.Status == fiber.StatusServiceUnavailable {
			retry = time.Second
		}
	}
	if retry > 0 {
		c.Set(fiber.HeaderRetryAfter, "1")
	}
	return c.Status(fiber.StatusOK).JSON(fiber.Map{"results": items})
}
