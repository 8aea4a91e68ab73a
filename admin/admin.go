// Package admin owns the trial administration API: reading and replacing a
// trial's protocol and its patients' registry records. Changes need an admin
// token for the trial; reads are open to staff who may see the trial or the
// site. Documents are decoded strictly and validated before the store, which
// audits every change, writes them; the trial caches (this node's, or every
// node's through Redis) are invalidated after each change so the next
// reading is scored with it. It imports auth, problem, reading (for
// FieldError), store and trial.
package admin

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"vigil/auth"
	"vigil/board"
	"vigil/problem"
	"vigil/reading"
	"vigil/store"
	"vigil/trial"
)

// ReasonHeader carries the "why" of a change into its audit record; the
// query parameter reason does the same for clients that cannot set headers.
const ReasonHeader = "X-Vigil-Reason"

// MaxReason bounds a reason, in characters.
const MaxReason = 500

// Audit actions and the reasons used when a request gives none.
const (
	ActionProtocolPut     = "protocol.put"
	ActionPatientPut      = "patient.put"
	DefaultProtocolReason = "protocol applied"
	DefaultPatientReason  = "registry record applied"
)

// API serves the administration endpoints.
type API struct {
	verifier *auth.Verifier
	store    store.Store
	cache    Invalidator
	log      *slog.Logger
}

// Invalidator drops changed protocols and registry records from the caches
// that serve scoring: trial.Cache on one node, cluster.Invalidations (every
// node's) on several.
type Invalidator interface {
	InvalidateProtocol(trialID string)
	InvalidatePatient(trialID, siteID, patientID string)
}

// New returns the administration API. cache may be nil (nothing to
// invalidate).
func New(verifier *auth.Verifier, st store.Store, cache Invalidator, log *slog.Logger) *API {
	if log == nil {
		log = slog.Default()
	}
	return &API{verifier: verifier, store: st, cache: cache, log: log}
}

// Register mounts the endpoints on r.
func (a *API) Register(r fiber.Router) {
	// As on the board, authentication is per route: a /v1 group's
	// middleware would answer 401 for paths that do not exist.
	staff := board.RequireStaff(a.verifier)
	r.Put("/v1/trials/:trial", staff, a.putProtocol)
	r.Get("/v1/trials/:trial", staff, a.getProtocol)
	r.Put("/v1/trials/:trial/sites/:site/patients/:patient", staff, a.putPatient)
	// "/record", because GET …/patients/:patient is left free and
	// …/patients/:patient/readings is the board's history.
	r.Get("/v1/trials/:trial/sites/:site/patients/:patient/record", staff, a.getPatient)
}

func claimsOf(c *fiber.Ctx) *auth.Claims { return board.Claims(c) }

// adminOf reports whether the token may change the trial's configuration.
func adminOf(cl *auth.Claims, trialID string) bool {
	return cl.Role == auth.RoleAdmin && cl.CanSeeTrial(trialID)
}

// canSeeTrial: trial-wide roles of the trial, or anyone with one of its sites.
func canSeeTrial(cl *auth.Claims, trialID string) bool {
	if cl.CanSeeTrial(trialID) {
		return true
	}
	for _, ts := range cl.Sites {
		if t, _, ok := strings.Cut(ts, "/"); ok && t == trialID {
			return true
		}
	}
	return false
}

func actorOf(cl *auth.Claims) store.Actor {
	return store.Actor{Sub: cl.Subject, Name: cl.Name, Role: cl.Role}
}

// param copies a path parameter: Fiber reuses the request's memory once
// the handler returns, and these strings reach the store and the logs.
func param(c *fiber.Ctx, name string) string { return strings.Clone(c.Params(name)) }

// reasonOf returns the request's reason for its audit record, or def.
func reasonOf(c *fiber.Ctx, def string) (string, error) {
	r := c.Get(ReasonHeader)
	if r == "" {
		r = c.Query("reason")
	}
	r = strings.TrimSpace(r)
	switch {
	case r == "":
		return def, nil
	case !utf8.ValidString(r) || strings.IndexFunc(r, unicode.IsControl) >= 0:
		return "", errors.New("the reason must be UTF-8 text without control characters")
	case utf8.RuneCountInString(r) > MaxReason:
		return "", fmt.Errorf("the reason must be at most %d characters", MaxReason)
	}
	return strings.Clone(r), nil
}

func badRequest(c *fiber.Ctx, field, msg string) error {
	p := problem.BadRequest(msg)
	p.Errors = []reading.FieldError{{Field: field, Message: msg}}
	return problem.Send(c, p, 0)
}

func tooLarge(c *fiber.Ctx) error {
	return problem.Send(c, problem.New(fiber.StatusRequestEntityTooLarge, "too-large", "Request body too large",
		fmt.Sprintf("the document may be at most %d bytes", trial.MaxDocument)), 0)
}

// inputProblem is the reply to a document that does not decode (400) or
// breaks a rule (422), naming every field at fault.
func inputProblem(c *fiber.Ctx, err error, what string) error {
	var (
		de *trial.DecodeError
		ve *trial.ValidationError
	)
	switch {
	case errors.As(err, &ve):
		p := problem.New(fiber.StatusUnprocessableEntity, "validation", "Invalid "+what,
			fmt.Sprintf("the %s breaks %d rule(s); see errors", what, len(ve.Errors)))
		p.Errors = ve.Errors
		return problem.Send(c, p, 0)
	case errors.As(err, &de):
		p := problem.BadRequest("the body is not a well-formed " + what + "; see errors")
		p.Errors = de.Errors
		return problem.Send(c, p, 0)
	}
	return problem.Send(c, problem.BadRequest(err.Error()), 0)
}

// withMismatch adds an error for an id in the body that differs from the
// path, ahead of v's own errors.
func withMismatch(field string, v error) error {
	errs := []reading.FieldError{{Field: field, Message: "must match the path, or be left out"}}
	var ve *trial.ValidationError
	if errors.As(v, &ve) {
		errs = append(errs, ve.Errors...)
	}
	return &trial.ValidationError{Errors: errs}
}

func (a *API) unavailable(c *fiber.Ctx, what string, err error) error {
	a.log.Error("admin store call failed", "call", what, "err", err)
	return problem.Send(c, problem.New(fiber.StatusServiceUnavailable, "store-unavailable", "Storage unavailable",
		"the request could not be completed; nothing was changed if it was a write; retry shortly"), 2*time.Second)
}

func (a *API) putProtocol(c *fiber.Ctx) error {
	cl := claimsOf(c)
	trialID := param(c, "trial")
	if !adminOf(cl, trialID) {
		return problem.Send(c, problem.Forbidden("only an admin of trial "+trialID+" may change its protocol"), 0)
	}
	if len(c.Body()) > trial.MaxDocument {
		return tooLarge(c)
	}
	reason, err := reasonOf(c, DefaultProtocolReason)
	if err != nil {
		return badRequest(c, "reason", err.Error())
	}
	p, err := trial.DecodeProtocol(c.Body())
	if err != nil {
		return inputProblem(c, err, "protocol")
	}
	mismatch := p.TrialID != "" && p.TrialID != trialID
	p.TrialID = trialID
	if verr := p.Validate(); verr != nil || mismatch {
		if mismatch {
			verr = withMismatch("trial_id", verr)
		}
		return inputProblem(c, verr, "protocol")
	}
	stored, err := a.store.PutProtocol(c.UserContext(), p,
		store.Change{Actor: actorOf(cl), Action: ActionProtocolPut, Reason: reason})
	if err != nil {
		var ve *trial.ValidationError
		if errors.As(err, &ve) {
			return inputProblem(c, err, "protocol")
		}
		return a.unavailable(c, "put protocol", err)
	}
	if a.cache != nil {
		a.cache.InvalidateProtocol(trialID)
	}
	a.log.Info("protocol applied", "trial", trialID, "version", stored.Version, "actor", cl.Subject)
	return c.JSON(stored)
}

func (a *API) getProtocol(c *fiber.Ctx) error {
	cl := claimsOf(c)
	trialID := param(c, "trial")
	if !canSeeTrial(cl, trialID) {
		return problem.Send(c, problem.Forbidden("this token may not see trial "+trialID), 0)
	}
	// From the store, not the cache: an admin who just changed the protocol
	// on another node must read the change back.
	p, err := a.store.Protocol(c.UserContext(), trialID)
	if errors.Is(err, store.ErrNotFound) {
		return problem.Send(c, problem.NotFound("trial "+trialID+" has no protocol; defaults apply"), 0)
	}
	if err != nil {
		return a.unavailable(c, "protocol", err)
	}
	if !adminOf(cl, trialID) {
		p = redactEndpoints(p)
	}
	return c.JSON(p)
}

// redactEndpoints keeps only the scheme and host of notification URLs:
// webhook URLs often embed a token, and site staff need to know where alerts
// go, not how to post there.
func redactEndpoints(p trial.Protocol) trial.Protocol {
	tiers := make([]trial.Tier, len(p.Escalation.Tiers))
	for i, t := range p.Escalation.Tiers {
		chs := make([]trial.Channel, len(t.Channels))
		for j, ch := range t.Channels {
			if u, err := url.Parse(ch.URL); err == nil && ch.URL != "" {
				ch.URL = u.Scheme + "://" + u.Host + "/…"
			}
			chs[j] = ch
		}
		t.Channels = chs
		tiers[i] = t
	}
	p.Escalation.Tiers = tiers
	return p
}

func (a *API) putPatient(c *fiber.Ctx) error {
	cl := claimsOf(c)
	trialID, siteID, patientID := param(c, "trial"), param(c, "site"), param(c, "patient")
	if !adminOf(cl, trialID) {
		return problem.Send(c, problem.Forbidden("only an admin of trial "+trialID+" may change its registry"), 0)
	}
	if len(c.Body()) > trial.MaxDocument {
		return tooLarge(c)
	}
	reason, err := reasonOf(c, DefaultPatientReason)
	if err != nil {
		return badRequest(c, "reason", err.Error())
	}
	r, err := trial.DecodePatient(c.Body())
	if err != nil {
		return inputProblem(c, err, "patient record")
	}
	var mismatched []string
	for _, id := range []struct {
		field    string
		body     *string
		fromPath string
	}{
		{"trial_id", &r.TrialID, trialID},
		{"site_id", &r.SiteID, siteID},
		{"patient_id", &r.PatientID, patientID},
	} {
		if *id.body != "" && *id.body != id.fromPath {
			mismatched = append(mismatched, id.field)
		}
		*id.body = id.fromPath
	}

	// Checked here against the protocol as well, so that one reply lists
	// every problem; the store checks the site again in its transaction.
	p, err := a.store.Protocol(c.UserContext(), trialID)
	var verr error
	switch {
	case err == nil:
		verr = r.ValidateFor(p)
	case errors.Is(err, store.ErrNotFound):
		verr = r.Validate()
	default:
		return a.unavailable(c, "protocol", err)
	}
	for i := len(mismatched) - 1; i >= 0; i-- {
		verr = withMismatch(mismatched[i], verr)
	}
	if verr != nil {
		return inputProblem(c, verr, "patient record")
	}

	stored, err := a.store.PutPatient(c.UserContext(), r,
		store.Change{Actor: actorOf(cl), Action: ActionPatientPut, Reason: reason})
	if err != nil {
		var ve *trial.ValidationError
		if errors.As(err, &ve) {
			return inputProblem(c, err, "patient record")
		}
		return a.unavailable(c, "put patient", err)
	}
	if a.cache != nil {
		a.cache.InvalidatePatient(trialID, siteID, patientID)
	}
	// No patient id: logs name trials and sites, never participants.
	a.log.Info("registry record applied", "trial", trialID, "site", siteID,
		"version", stored.Version, "actor", cl.Subject)
	return c.JSON(stored)
}

func (a *API) getPatient(c *fiber.Ctx) error {
	cl := claimsOf(c)
	trialID, siteID, patientID := param(c, "trial"), param(c, "site"), param(c, "patient")
	if !cl.CanSeeSite(trialID, siteID) {
		return problem.Send(c, problem.Forbidden("this token may not see site "+trialID+"/"+siteID), 0)
	}
	r, err := a.store.Patient(c.UserContext(), trialID, siteID, patientID)
	if errors.Is(err, store.ErrNotFound) {
		return problem.Send(c, problem.NotFound("patient "+patientID+" has no registry record at site "+
			trialID+"/"+siteID), 0)
	}
	if err != nil {
		return a.unavailable(c, "patient", err)
	}
	return c.JSON(r)
}
