package lifecycle

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"vigil/auth"
	"vigil/board"
	"vigil/metrics"
	"vigil/problem"
	"vigil/reading"
	"vigil/scoring"
	"vigil/store"
)

// API serves POST /v1/alerts/{id}/ack, /escalate, /resolve and
// /possible-sae.
type API struct {
	svc      *Service
	verifier *auth.Verifier
}

// NewAPI returns the lifecycle endpoints of svc.
func NewAPI(svc *Service, v *auth.Verifier) *API { return &API{svc: svc, verifier: v} }

// Register mounts the endpoints.
func (a *API) Register(r fiber.Router) {
	staff := board.RequireStaff(a.verifier)
	r.Post("/v1/alerts/:id/ack", staff, a.handle(actionAck))
	r.Post("/v1/alerts/:id/escalate", staff, a.handle(actionEscalate))
	r.Post("/v1/alerts/:id/resolve", staff, a.handle(actionResolve))
	r.Post("/v1/alerts/:id/possible-sae", staff, a.handle(actionPossibleSAE))
	r.Get("/v1/notifications", staff, a.notifications)
}

// notifications lists a trial's notifications, newest first: what was sent,
// what is being retried, and what was given up (status=dead), for the
// trial-wide roles who answer for delivery.
func (a *API) notifications(c *fiber.Ctx) error {
	claims := board.Claims(c)
	q := store.NotificationQuery{TrialID: strings.Clone(c.Query("trial")), Status: strings.Clone(c.Query("status")),
		AlertID: strings.Clone(c.Query("alert_id")), Limit: 100}
	if q.TrialID == "" {
		return problem.Send(c, fieldProblem(fiber.StatusBadRequest, "bad-request", "Bad request", "trial", "required"), 0)
	}
	switch q.Status {
	case "", store.NotifyPending, store.NotifySent, store.NotifyDead:
	default:
		return problem.Send(c, fieldProblem(fiber.StatusBadRequest, "bad-request", "Bad request", "status", "must be pending, sent or dead"), 0)
	}
	if !claims.CanSeeTrial(q.TrialID) {
		return problem.Send(c, problem.Forbidden("notifications are visible to the trial's safety, on-call and admin staff"), 0)
	}
	list, err := a.svc.cfg.Store.Notifications(c.UserContext(), q)
	if err != nil {
		a.svc.cfg.Logger.Error("list notifications", "trial_id", q.TrialID, "err", err)
		return problem.Send(c, problem.New(fiber.StatusServiceUnavailable, "store-unavailable", "Storage unavailable", "retry"), 2*time.Second)
	}
	if list == nil {
		list = []store.Notification{}
	}
	return c.JSON(fiber.Map{"notifications": list})
}

type action int

const (
	actionAck action = iota
	actionEscalate
	actionResolve
	// actionPossibleSAE marks the alert a possible SAE and starts the
	// investigator's 24-hour reporting clock. Any staff role that can see the
	// site may mark it: a monitor flagging a possible SAE errs on the safe
	// side, and the judgement of seriousness stays the resolver's.
	actionPossibleSAE
)

// Audit actions of the people's changes ("alert." + verb).
const (
	verbAcknowledged = "acknowledged"
	verbEscalated    = "escalated"
	verbResolved     = "resolved"
	verbPossibleSAE  = "possible_sae"
)

// MeaningPossibleSAE is what a possible-SAE mark means (21 CFR 11.50).
const MeaningPossibleSAE = "marked possible SAE: investigator aware; report to the sponsor within 24 hours"

// resolvers may resolve alerts.
var resolvers = map[string]bool{auth.RolePI: true, auth.RoleSafety: true, auth.RoleAdmin: true}

// body is what a person sends with an action.
type body struct {
	Reason  string `json:"reason"`
	Outcome string `json:"outcome,omitempty"`
}

const maxReason = 2000

func fieldProblem(status int, class, title, field, msg string) problem.Details {
	p := problem.New(status, class, title, field+": "+msg)
	p.Errors = []reading.FieldError{{Field: field, Message: msg}}
	return p
}

func (a *API) handle(act action) fiber.Handler {
	return func(c *fiber.Ctx) error {
		claims := board.Claims(c)
		var b body
		dec := json.NewDecoder(bytes.NewReader(c.Body()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil || dec.More() {
			return problem.Send(c, problem.BadRequest(`the body must be a JSON object with "reason" (and, to resolve, "outcome") and no other fields`), 0)
		}
		b.Reason = strings.TrimSpace(b.Reason)
		switch {
		case b.Reason == "":
			return problem.Send(c, fieldProblem(fiber.StatusUnprocessableEntity, "validation", "Invalid request", "reason", "required: say why"), 0)
		case utf8.RuneCountInString(b.Reason) > maxReason || !utf8.ValidString(b.Reason):
			return problem.Send(c, fieldProblem(fiber.StatusUnprocessableEntity, "validation", "Invalid request", "reason", "at most 2000 characters of text"), 0)
		case act == actionResolve && !outcomes[b.Outcome]:
			return problem.Send(c, fieldProblem(fiber.StatusUnprocessableEntity, "validation", "Invalid request", "outcome", "must be sae, ae or not_ae"), 0)
		case act != actionResolve && b.Outcome != "":
			return problem.Send(c, fieldProblem(fiber.StatusUnprocessableEntity, "validation", "Invalid request", "outcome", "only a resolution has an outcome"), 0)
		}
		ctx := c.UserContext()
		id := strings.Clone(c.Params("id"))
		cur, err := a.svc.cfg.Store.Alert(ctx, id)
		if err != nil || !claims.CanSeeSite(cur.TrialID, cur.SiteID) {
			// An alert of another site answers like a missing one.
			return problem.Send(c, problem.NotFound("no such alert"), 0)
		}
		now := a.svc.cfg.Now().UTC()
		p, _, err := a.svc.cfg.Protocols.Protocol(ctx, cur.TrialID)
		if err != nil {
			return problem.Send(c, problem.New(fiber.StatusServiceUnavailable, "unavailable", "Protocol unavailable", "retry shortly"), 2*time.Second)
		}
		if act != actionEscalate && p.RequireAuthWithin > 0 {
			window := time.Duration(p.RequireAuthWithin)
			if claims.AuthTime == nil || now.Sub(claims.AuthTime.Time) > window || claims.AuthTime.After(now.Add(time.Minute)) {
				return problem.Send(c, problem.New(fiber.StatusUnauthorized, "reauthentication-required", "Re-authentication required",
					"this trial requires signing in again (auth_time within "+window.String()+") to sign this action"), 0)
			}
		}
		if act != actionEscalate && strings.TrimSpace(claims.Name) == "" {
			// 21 CFR 11.50: a signed record shows the signer's printed name.
			return problem.Send(c, problem.Forbidden("signing needs a token with the signer's name (the name claim)"), 0)
		}
		if act == actionResolve && !resolvers[claims.Role] {
			// Seriousness is the investigator's (or the sponsor's safety
			// physician's) judgement, not a monitor's.
			return problem.Send(c, problem.Forbidden("resolving records a judgement of seriousness: investigators (pi), safety physicians and admins only"), 0)
		}
		sig := scoring.Signature{Sub: claims.Subject, Name: claims.Name, Role: claims.Role, At: now, Reason: b.Reason}
		var verb string
		switch act {
		case actionAck:
			verb, sig.Meaning = verbAcknowledged, "acknowledged: responsible for reviewing this alert"
		case actionEscalate:
			verb, sig.Meaning = verbEscalated, "escalated: asked for the next tier"
		case actionPossibleSAE:
			verb, sig.Meaning = verbPossibleSAE, MeaningPossibleSAE
		case actionResolve:
			verb, sig.Meaning = verbResolved, "resolved as "+b.Outcome+": judged the event "+map[string]string{
				scoring.OutcomeSAE: "a serious adverse event", scoring.OutcomeAE: "an adverse event, not serious",
				scoring.OutcomeNotAE: "not an adverse event"}[b.Outcome]
		}
		change := store.Change{Actor: store.Actor{Sub: claims.Subject, Name: claims.Name, Role: claims.Role},
			Action: "alert." + verb, Reason: b.Reason, Meaning: sig.Meaning, At: now}
		updated, err := a.svc.cfg.Store.UpdateAlert(ctx, id, func(cur scoring.Alert) (store.AlertChange, error) {
			var next scoring.Alert
			var err error
			switch act {
			case actionAck:
				next, err = Acknowledge(cur, sig, time.Duration(p.Escalation.AckTimeout))
			case actionEscalate:
				next, err = Escalate(cur, sig, len(p.Escalation.Tiers))
			case actionPossibleSAE:
				// No follow-ups: escalation and paging go on unchanged.
				next, err = MarkPossibleSAE(cur, sig)
				return store.AlertChange{Alert: next}, err
			default:
				next, err = Resolve(cur, sig, b.Outcome)
			}
			if err != nil || act == actionEscalate {
				return store.AlertChange{Alert: next}, err
			}
			ns, err := followUps(next, p.Escalation)
			return store.AlertChange{Alert: next, Notify: ns}, err
		}, change)
		switch {
		case errors.Is(err, ErrTransition):
			return problem.Send(c, problem.New(fiber.StatusConflict, "transition", "Not allowed now", err.Error()), 0)
		case errors.Is(err, store.ErrNotFound):
			return problem.Send(c, problem.NotFound("no such alert"), 0)
		case err != nil:
			a.svc.cfg.Logger.Error("alert action", "alert_id", id, "err", err)
			return problem.Send(c, problem.New(fiber.StatusServiceUnavailable, "store-unavailable", "Storage unavailable",
				"the action was not recorded; retry"), 2*time.Second)
		}
		if act != actionPossibleSAE {
			// A mark enters no state.
			metrics.AlertTransitions.WithLabelValues(updated.Status).Inc()
		}
		a.svc.cfg.Publisher.PublishAlert(ctx, updated)
		if act == actionEscalate {
			a.svc.Wake()
		}
		return c.JSON(updated)
	}
}
