package board

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"vigil/problem"
	"vigil/store"
)

// trends serves GET /v1/trials/{trial}/sites/{site}/trends?hours=&buckets=:
// every patient's series of the site's key vitals and NEWS2, averaged per
// bucket, in one reply (docs/api.md), so a board draws a whole site's
// sparklines from one request instead of one per patient.
func (a *API) trends(c *fiber.Ctx) error {
	trial, site, ok := a.siteAllowed(c)
	if !ok {
		return problem.Send(c, problem.Forbidden("this token may not see site "+trial+"/"+site), 0)
	}
	hours, ok := rangeParam(c, "hours", 24, store.MinTrendHours, store.MaxTrendHours)
	if !ok {
		return badParam(c, "hours", "hours must be a whole number from 1 to 168")
	}
	buckets, ok := rangeParam(c, "buckets", 48, store.MinTrendBuckets, store.MaxTrendBuckets)
	if !ok {
		return badParam(c, "buckets", "buckets must be a whole number from 4 to 96")
	}
	tr, err := a.store.Trends(c.UserContext(), store.NewTrendQuery(trial, site, a.now(), hours, buckets))
	if err != nil {
		return a.internal(c, "trends", err)
	}
	// The reply encodes itself: a large site's holds a hundred thousand
	// numbers, and encoding/json would check the bytes again.
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(tr.AppendJSON(make([]byte, 0, 4096+len(tr.Patients)*store.NumTrendSeries*buckets*5)))
}

// rangeParam reads an optional whole-number query parameter in [lo, hi].
func rangeParam(c *fiber.Ctx, name string, def, lo, hi int) (int, bool) {
	s := c.Query(name)
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, false
	}
	return n, true
}
