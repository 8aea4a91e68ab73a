package board

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"vigil/problem"
	"vigil/store"
)

// DefaultStaleAfter is how long a site may go without a new reading before
// the overview calls it stale, in a trial whose protocol sets no schedule
// (or that has no protocol).
const DefaultStaleAfter = 3 * time.Hour

// Overview is the reply of GET /v1/trials/{trial}/overview: the safety
// physician's sites × risk at a glance.
type Overview struct {
	TrialID     string    `json:"trial_id"`
	GeneratedAt time.Time `json:"generated_at"`
	// StaleAfterSeconds is the protocol's schedule.every + schedule.grace,
	// else DefaultStaleAfter.
	StaleAfterSeconds int64      `json:"stale_after_seconds"`
	Sites             []SiteView `json:"sites"`
}

// SiteView is one site of an Overview: store.SiteOverview and whether the
// site's data has stopped arriving (or never started).
type SiteView struct {
	SiteID        string            `json:"site_id"`
	Patients      int               `json:"patients"`
	Risk          store.RiskCounts  `json:"risk"`
	LastReadingAt *time.Time        `json:"last_reading_at"`
	Stale         bool              `json:"stale"`
	Alerts        store.AlertCounts `json:"alerts"`
	Ack           store.AckSummary  `json:"ack"`
}

// overview serves GET /v1/trials/{trial}/overview to any staff token that
// can see the trial or one of its sites, listing the sites it may see: the
// protocol's sites and any other with readings or alerts.
func (a *API) overview(c *fiber.Ctx) error {
	cl := claimsOf(c)
	trialID := strings.Clone(c.Params("trial"))
	if !cl.CanSeeTrial(trialID) && !hasSiteIn(cl, trialID) {
		return problem.Send(c, problem.Forbidden("this token may not see trial "+trialID), 0)
	}
	ctx := c.UserContext()
	now := a.now().UTC()
	staleAfter := DefaultStaleAfter
	var listed []string
	p, err := a.store.Protocol(ctx, trialID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return a.internal(c, "overview protocol", err)
	default:
		listed = p.Sites
		if p.Schedule.Enabled() {
			staleAfter = p.Schedule.Overdue()
		}
	}
	figures, err := a.store.TrialOverview(ctx, trialID, now)
	if err != nil {
		return a.internal(c, "trial overview", err)
	}
	sites := make([]SiteView, 0, len(figures)+len(listed))
	seen := make(map[string]bool, len(figures))
	for _, f := range figures {
		seen[f.SiteID] = true
		if cl.CanSeeSite(trialID, f.SiteID) {
			sites = append(sites, SiteView{SiteID: f.SiteID, Patients: f.Patients, Risk: f.Risk,
				LastReadingAt: f.LastReadingAt, Alerts: f.Alerts, Ack: f.Ack})
		}
	}
	for _, id := range listed {
		// A listed site without a reading is the "never started" case.
		if !seen[id] && cl.CanSeeSite(trialID, id) {
			seen[id] = true
			sites = append(sites, SiteView{SiteID: id})
		}
	}
	for i := range sites {
		last := sites[i].LastReadingAt
		sites[i].Stale = last == nil || now.Sub(*last) > staleAfter
	}
	slices.SortFunc(sites, func(x, y SiteView) int { return strings.Compare(x.SiteID, y.SiteID) })
	return c.JSON(Overview{TrialID: trialID, GeneratedAt: now,
		StaleAfterSeconds: int64(staleAfter / time.Second), Sites: sites})
}
