package board

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"vigil/auth"
	"vigil/problem"
	"vigil/store"
)

// auditScanBudget caps how many records one request of the whole trail
// reads while skipping records the token may not see, so an admin of a small
// trial on a busy server cannot make one request read the whole file. A page
// cut short by it still carries "next".
var auditScanBudget = 10_000 // a variable only so tests can shrink it

// audit serves GET /v1/audit. With alert_id, any staff token that may see
// the alert's site gets that alert's trail. Without it, an admin token pages
// through the whole trail of its trials, optionally narrowed by entity_type
// and entity_id, after a cursor.
func (a *API) audit(c *fiber.Ctx) error {
	if id := c.Query("alert_id"); id != "" {
		if c.Query("entity_type") != "" || c.Query("entity_id") != "" {
			return badParam(c, "alert_id", "alert_id cannot be combined with entity_type or entity_id")
		}
		return a.alertAudit(c, id)
	}
	cl := claimsOf(c)
	if cl.Role != auth.RoleAdmin {
		return problem.Send(c, problem.Forbidden(
			"the whole audit trail is for admin tokens; ask for one alert's trail with alert_id"), 0)
	}
	q := store.AuditQuery{EntityType: c.Query("entity_type"), EntityID: c.Query("entity_id")}
	switch q.EntityType {
	case "", store.EntityAlert, store.EntityProtocol, store.EntityPatient:
	default:
		return badParam(c, "entity_type", "entity_type must be one of alert, protocol, patient")
	}
	if q.EntityID != "" && q.EntityType == "" {
		// An id alone could name entities of several types, each visible
		// under a different rule.
		return badParam(c, "entity_id", "entity_id needs entity_type")
	}
	if q.EntityType == store.EntityPatient && q.EntityID != "" && strings.Count(q.EntityID, "/") != 2 {
		return badParam(c, "entity_id", "a patient's entity_id is TRIAL/SITE/PATIENT")
	}
	if s := c.Query("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return badParam(c, "after", "after must be a cursor from \"next\"")
		}
		q.AfterID = n
	}
	limit, err := limitParam(c)
	if err != nil {
		return badParam(c, "limit", err.Error())
	}

	ctx := c.UserContext()
	v := &auditVisibility{api: a, claims: cl, alerts: map[string]bool{}}
	if q.EntityID != "" {
		// One entity: decide once, and refuse rather than answer an empty
		// list, so the admin knows the filter is outside its trials.
		ok, err := v.entity(ctx, q.EntityType, q.EntityID)
		switch {
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return a.internal(c, "alert", err)
		case q.EntityType == store.EntityAlert && !ok:
			// Same reply as a missing alert, so ids of other trials are not probed.
			return problem.Send(c, problem.NotFound("no such alert"), 0)
		case !ok:
			trial, _, _ := strings.Cut(q.EntityID, "/")
			return problem.Send(c, problem.Forbidden("this token may not see trial "+trial), 0)
		}
	}
	recs, next, err := v.page(ctx, q, limit)
	if err != nil {
		return a.internal(c, "audit records", err)
	}
	body := fiber.Map{"records": recs}
	if next > 0 {
		body["next"] = strconv.FormatInt(next, 10)
	}
	return c.JSON(body)
}

// alertAudit is one alert's trail for any staff token that may see its site.
func (a *API) alertAudit(c *fiber.Ctx, id string) error {
	al, err := a.store.Alert(c.UserContext(), id)
	if errors.Is(err, store.ErrNotFound) {
		return problem.Send(c, problem.NotFound("no such alert"), 0)
	}
	if err != nil {
		return a.internal(c, "alert", err)
	}
	if !claimsOf(c).CanSeeSite(al.TrialID, al.SiteID) {
		// Same reply as a missing alert, so ids of other sites are not probed.
		return problem.Send(c, problem.NotFound("no such alert"), 0)
	}
	recs, err := a.store.Audit(c.UserContext(), id)
	if err != nil {
		return a.internal(c, "audit", err)
	}
	if recs == nil {
		recs = []store.AuditRecord{}
	}
	return c.JSON(fiber.Map{"records": recs})
}

// auditVisibility decides which records an admin token may see: protocol
// and patient records of its trials, alert records of sites it may see.
// Record types it does not know are hidden, so a new kind of record is never
// shown to the wrong trial by default.
type auditVisibility struct {
	api    *API
	claims *auth.Claims
	alerts map[string]bool // alert id → visible, for this request
}

func (v *auditVisibility) entity(ctx context.Context, typ, id string) (bool, error) {
	switch typ {
	case store.EntityProtocol:
		return v.claims.CanSeeTrial(id), nil
	case store.EntityPatient:
		// "trial/site/patient"
		trial, _, ok := strings.Cut(id, "/")
		return ok && v.claims.CanSeeTrial(trial), nil
	case store.EntityAlert:
		if ok, seen := v.alerts[id]; seen {
			return ok, nil
		}
		// The alert row is the authority on where an alert belongs; its
		// trial and site never change.
		al, err := v.api.store.Alert(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			v.alerts[id] = false
			return false, err
		}
		if err != nil {
			return false, err
		}
		ok := v.claims.CanSeeSite(al.TrialID, al.SiteID)
		v.alerts[id] = ok
		return ok, nil
	}
	return false, nil
}

// page returns up to limit visible records after q.AfterID, and the cursor
// of the next page (0 when the trail is exhausted). Records the token may
// not see are skipped, up to auditScanBudget of them; a page may then be
// short, or empty, and still have a next.
func (v *auditVisibility) page(ctx context.Context, q store.AuditQuery, limit int) ([]store.AuditRecord, int64, error) {
	out := []store.AuditRecord{}
	// One more than the page tells whether another page exists.
	batch := min(limit+1, maxLimit)
	for scanned := 0; scanned < auditScanBudget; {
		q.Limit = batch
		recs, err := v.api.store.AuditRecords(ctx, q)
		if err != nil {
			return nil, 0, err
		}
		for _, r := range recs {
			ok, err := v.entity(ctx, r.EntityType, r.EntityID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, 0, err
			}
			if !ok {
				continue
			}
			if len(out) == limit {
				return out, out[limit-1].ID, nil
			}
			out = append(out, r)
		}
		if len(recs) < batch {
			return out, 0, nil
		}
		if len(out) == limit {
			// Full, and the trail goes on: whether anything after is
			// visible is the next page's question, not worth a scan now.
			return out, out[limit-1].ID, nil
		}
		scanned += len(recs)
		q.AfterID = recs[len(recs)-1].ID
		batch = maxLimit // the rest of the page is behind records of other trials
	}
	return out, q.AfterID, nil
}
