// Package board owns the staff read API behind the live board: each site's
// patients with their latest score, a patient's reading history, alerts and
// their audit trail, and a trial's overview of its sites, always filtered to
// what the caller's token may see. It imports auth, store, problem and
// scoring's types.
package board

import (
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"vigil/auth"
	"vigil/problem"
	"vigil/reading"
	"vigil/scoring"
	"vigil/store"
)

// API serves the board endpoints.
type API struct {
	verifier *auth.Verifier
	store    store.Store
	log      *slog.Logger
	now      func() time.Time
	// trendCache shares trend replies between a site's boards.
	trendCache *trendCache
}

// Option configures New.
type Option func(*API)

// WithClock sets the clock of the overview's staleness and time windows,
// for tests.
func WithClock(now func() time.Time) Option {
	return func(a *API) {
		if now != nil {
			a.now = now
		}
	}
}

// New returns the board API.
func New(v *auth.Verifier, s store.Store, log *slog.Logger, opts ...Option) *API {
	if log == nil {
		log = slog.Default()
	}
	a := &API{verifier: v, store: s, log: log, now: time.Now, trendCache: newTrendCache()}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Register mounts the endpoints on r.
func (a *API) Register(r fiber.Router) {
	// The staff check is on each route, not on a /v1 group: a group's
	// middleware would also run for every other /v1 path and answer 401/403
	// where the truth is 404.
	staff := RequireStaff(a.verifier)
	r.Get("/v1/trials/:trial/sites/:site/patients", staff, a.patients)
	r.Get("/v1/trials/:trial/sites/:site/patients/:patient/readings", staff, a.readings)
	r.Get("/v1/trials/:trial/sites/:site/trends", staff, a.trends)
	r.Get("/v1/trials/:trial/overview", staff, a.overview)
	r.Get("/v1/alerts", staff, a.alerts)
	r.Get("/v1/audit", staff, a.audit)
}

const claimsKey = "vigil.claims"

// RequireStaff is the middleware of every staff route: a valid staff token,
// whose claims the handler then reads with Claims. It is per route, never on
// a /v1 group, whose middleware would answer 401 for paths that do not exist.
func RequireStaff(v *auth.Verifier) fiber.Handler {
	return func(c *fiber.Ctx) error {
		claims, err := v.Verify(auth.BearerToken(c.Get(fiber.HeaderAuthorization)))
		if err != nil {
			return problem.Send(c, problem.Unauthorized("a valid staff token is required"), 0)
		}
		if !claims.IsStaff() {
			return problem.Send(c, problem.Forbidden("this endpoint is for staff tokens"), 0)
		}
		c.Locals(claimsKey, claims)
		return c.Next()
	}
}

// Claims returns the claims RequireStaff verified.
func Claims(c *fiber.Ctx) *auth.Claims { return c.Locals(claimsKey).(*auth.Claims) }

func claimsOf(c *fiber.Ctx) *auth.Claims { return Claims(c) }

// ReadingView is a reading as the board API lists it (DESIGN.md).
type ReadingView struct {
	ReadingID  string            `json:"reading_id"`
	PatientID  string            `json:"patient_id"`
	TrialID    string            `json:"trial_id"`
	SiteID     string            `json:"site_id"`
	MeasuredAt time.Time         `json:"measured_at"`
	ReceivedAt time.Time         `json:"received_at"`
	Vitals     reading.Vitals    `json:"vitals"`
	Symptoms   []reading.Symptom `json:"symptoms"`
	Score      *scoring.Score    `json:"score"`
}

func view(r store.Record) ReadingView {
	syms := r.Reading.Symptoms
	if syms == nil {
		syms = []reading.Symptom{}
	}
	return ReadingView{
		ReadingID: r.Reading.ReadingID, PatientID: r.Reading.PatientID,
		TrialID: r.Reading.TrialID, SiteID: r.Reading.SiteID,
		MeasuredAt: r.Reading.MeasuredAt, ReceivedAt: r.ReceivedAt,
		Vitals: r.Reading.Vitals, Symptoms: syms, Score: r.Score,
	}
}

func views(recs []store.Record) []ReadingView {
	out := make([]ReadingView, 0, len(recs))
	for _, r := range recs {
		out = append(out, view(r))
	}
	return out
}

func (a *API) siteAllowed(c *fiber.Ctx) (trial, site string, ok bool) {
	trial, site = c.Params("trial"), c.Params("site")
	return trial, site, claimsOf(c).CanSeeSite(trial, site)
}

func (a *API) patients(c *fiber.Ctx) error {
	trial, site, ok := a.siteAllowed(c)
	if !ok {
		return problem.Send(c, problem.Forbidden("this token may not see site "+trial+"/"+site), 0)
	}
	recs, err := a.store.LatestByPatient(c.UserContext(), trial, site)
	if err != nil {
		return a.internal(c, "latest by patient", err)
	}
	return c.JSON(fiber.Map{"patients": views(recs)})
}

const (
	defaultLimit = 100
	maxLimit     = 1000
)

func limitParam(c *fiber.Ctx) (int, error) {
	s := c.Query("limit")
	if s == "" {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxLimit {
		return 0, errors.New("limit must be a whole number from 1 to 1000")
	}
	return n, nil
}

func badParam(c *fiber.Ctx, field, msg string) error {
	p := problem.BadRequest(msg)
	p.Errors = []reading.FieldError{{Field: field, Message: msg}}
	return problem.Send(c, p, 0)
}

// readings lists a patient's history. since is either an RFC 3339 time
// (readings measured at or after it) or the "next" cursor of a previous page.
func (a *API) readings(c *fiber.Ctx) error {
	trial, site, ok := a.siteAllowed(c)
	if !ok {
		return problem.Send(c, problem.Forbidden("this token may not see site "+trial+"/"+site), 0)
	}
	limit, err := limitParam(c)
	if err != nil {
		return badParam(c, "limit", err.Error())
	}
	q := store.ReadingQuery{TrialID: trial, SiteID: site, PatientID: c.Params("patient"), Limit: limit + 1}
	if s := c.Query("since"); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			q.Since = t
		} else if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
			q.AfterSeq = n
		} else {
			return badParam(c, "since", "since must be an RFC 3339 time or a cursor from \"next\"")
		}
	}
	recs, err := a.store.PatientReadings(c.UserContext(), q)
	if errors.Is(err, store.ErrNotFound) {
		return badParam(c, "since", "unknown cursor: since must come from this patient's \"next\"")
	}
	if err != nil {
		return a.internal(c, "patient readings", err)
	}
	body := fiber.Map{}
	if len(recs) > limit {
		recs = recs[:limit]
		body["next"] = strconv.FormatInt(recs[len(recs)-1].Seq, 10)
	}
	body["readings"] = views(recs)
	return c.JSON(body)
}

func visibility(cl *auth.Claims) store.Visibility {
	var v store.Visibility
	for _, t := range cl.Trials {
		if cl.CanSeeTrial(t) {
			v.Trials = append(v.Trials, t)
		}
	}
	for _, ts := range cl.Sites {
		for i := 0; i < len(ts); i++ {
			if ts[i] == '/' {
				v.Sites = append(v.Sites, [2]string{ts[:i], ts[i+1:]})
				break
			}
		}
	}
	return v
}

var alertStatuses = map[string]bool{"": true, scoring.StatusOpen: true, scoring.StatusAcknowledged: true,
	scoring.StatusEscalated: true, scoring.StatusResolved: true}

func (a *API) alerts(c *fiber.Ctx) error {
	cl := claimsOf(c)
	q := store.AlertQuery{TrialID: c.Query("trial"), SiteID: c.Query("site"), PatientID: c.Query("patient"),
		Status: c.Query("status"), Visible: visibility(cl), AfterID: c.Query("after")}
	if !alertStatuses[q.Status] {
		return badParam(c, "status", "status must be one of open, acknowledged, escalated, resolved")
	}
	if q.SiteID != "" && q.TrialID == "" {
		return badParam(c, "site", "site needs trial")
	}
	if q.PatientID != "" && (q.TrialID == "" || q.SiteID == "") {
		// A patient id is a pseudonym unique only within its trial and site.
		return badParam(c, "patient", "patient needs trial and site")
	}
	switch {
	case q.SiteID != "" && !cl.CanSeeSite(q.TrialID, q.SiteID):
		return problem.Send(c, problem.Forbidden("this token may not see site "+q.TrialID+"/"+q.SiteID), 0)
	case q.SiteID == "" && q.TrialID != "" && !cl.CanSeeTrial(q.TrialID) && !hasSiteIn(cl, q.TrialID):
		return problem.Send(c, problem.Forbidden("this token may not see trial "+q.TrialID), 0)
	}
	limit, err := limitParam(c)
	if err != nil {
		return badParam(c, "limit", err.Error())
	}
	q.Limit = limit + 1
	list, err := a.store.Alerts(c.UserContext(), q)
	if errors.Is(err, store.ErrNotFound) {
		return badParam(c, "after", "unknown cursor: after must come from \"next\"")
	}
	if err != nil {
		return a.internal(c, "alerts", err)
	}
	body := fiber.Map{}
	if len(list) > limit {
		list = list[:limit]
		body["next"] = list[len(list)-1].AlertID
	}
	if list == nil {
		list = []scoring.Alert{}
	}
	body["alerts"] = list
	return c.JSON(body)
}

func hasSiteIn(cl *auth.Claims, trial string) bool {
	for _, s := range visibility(cl).Sites {
		if s[0] == trial {
			return true
		}
	}
	return false
}

func (a *API) internal(c *fiber.Ctx, what string, err error) error {
	a.log.Error("board query failed", "query", what, "err", err)
	return problem.Send(c, problem.New(fiber.StatusServiceUnavailable, "store-unavailable", "Storage unavailable",
		"the query could not be answered; retry shortly"), 2*time.Second)
}
