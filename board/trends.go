package board

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/singleflight"

	"vigil/problem"
	"vigil/store"
)

// trendTTL is how long an encoded trend reply is served again. Every board
// open on a site asks for the same series (at start and every few minutes),
// and a busy site's scan takes a few hundred milliseconds; boards add each
// live reading themselves, so a minute-old series is as good as a new one.
const trendTTL = time.Minute

// trendCache holds encoded trend replies, and lets concurrent requests for
// the same window share one store scan.
type trendCache struct {
	replies *expirable.LRU[string, []byte]
	scans   singleflight.Group
}

func newTrendCache() *trendCache {
	return &trendCache{replies: expirable.NewLRU[string, []byte](256, nil, trendTTL)}
}

// get returns the reply to q, from the cache or from one scan.
func (tc *trendCache) get(ctx context.Context, st store.Store, q store.TrendQuery) ([]byte, error) {
	key := fmt.Sprintf("%q/%q/%d/%d/%d", q.TrialID, q.SiteID, q.From.Unix(), q.Bucket, q.Buckets)
	if b, ok := tc.replies.Get(key); ok {
		return b, nil
	}
	v, err, _ := tc.scans.Do(key, func() (any, error) {
		// Not the first caller's context: its cancellation must not fail
		// the others waiting on the same scan.
		tr, err := st.Trends(context.WithoutCancel(ctx), q)
		if err != nil {
			return nil, err
		}
		b := tr.AppendJSON(make([]byte, 0, 4096+len(tr.Patients)*store.NumTrendSeries*q.Buckets*5))
		tc.replies.Add(key, b)
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

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
	body, err := a.trendCache.get(c.UserContext(), a.store, store.NewTrendQuery(trial, site, a.now(), hours, buckets))
	if err != nil {
		return a.internal(c, "trends", err)
	}
	// The reply encodes itself (a large site's holds a hundred thousand
	// numbers, and encoding/json would check the bytes again), once per
	// trendTTL for all the site's boards.
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Set(fiber.HeaderCacheControl, "private, max-age=60")
	return c.Send(body)
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
