//go:build linux

package bench

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"vigil/auth"
)

// cohort is the trial a scenario simulates: its sites, its patients with
// their pre-minted tokens, and which patients may receive critical readings.
type cohort struct {
	trial string
	sites []string
	// patients' ids, sites (index in sites), tokens ("Bearer …") and
	// baselines, by patient index.
	ids      []string
	siteOf   []int32
	bearer   [][]byte
	baseline []baseline
	// normal lists the patients who only ever send ordinary readings;
	// reserved, in random order, those kept for critical readings. Each
	// reserved patient gets one critical reading and nothing else, so that
	// every critical reading opens a new alert (a second critical reading of
	// a patient with an open alert changes nothing, and an ordinary reading
	// after it re-publishes the alert with its own reading id).
	normal   []int32
	reserved []int32
	nextRes  atomic.Int64
}

// newCohort builds a trial of nSites sites and nPatients patients spread
// evenly over them, and mints the patients' tokens. A quarter of every site's
// patients (every fourth round of the cohort) is reserved for critical
// readings when reserve is set.
func newCohort(iss auth.Issuer, tag uint32, trial string, nSites, nPatients int, reserve bool, ttl time.Duration) (*cohort, error) {
	if nSites < 1 || nPatients < nSites {
		return nil, fmt.Errorf("bench: need at least one patient per site (%d sites, %d patients)", nSites, nPatients)
	}
	c := &cohort{trial: trial, sites: make([]string, nSites), ids: make([]string, nPatients),
		siteOf: make([]int32, nPatients), bearer: make([][]byte, nPatients), baseline: make([]baseline, nPatients)}
	for i := range c.sites {
		c.sites[i] = fmt.Sprintf("S%04d", i+1)
	}
	rng := rand.New(rand.NewPCG(uint64(tag), 0x5eed))
	t := tagString(tag)
	for i := range nPatients {
		site := i % nSites
		c.ids[i] = fmt.Sprintf("P%05d-%s", i+1, t)
		c.siteOf[i] = int32(site)
		c.baseline[i] = newBaseline(rng)
		tok, err := iss.Mint(auth.Claims{Role: auth.RolePatient, Trial: trial, Site: c.sites[site],
			RegisteredClaims: jwt.RegisteredClaims{Subject: c.ids[i]}}, ttl)
		if err != nil {
			return nil, fmt.Errorf("bench: mint patient token: %w", err)
		}
		c.bearer[i] = []byte("Bearer " + tok)
		if reserve && (i/nSites)%4 == 3 {
			c.reserved = append(c.reserved, int32(i))
		} else {
			c.normal = append(c.normal, int32(i))
		}
	}
	if len(c.normal) == 0 {
		return nil, fmt.Errorf("bench: no patients left for ordinary readings")
	}
	rng.Shuffle(len(c.reserved), func(i, j int) { c.reserved[i], c.reserved[j] = c.reserved[j], c.reserved[i] })
	return c, nil
}

// takeReserved returns a patient who has not had a critical reading in this
// run, or false when none is left.
func (c *cohort) takeReserved() (int32, bool) {
	i := c.nextRes.Add(1) - 1
	if i >= int64(len(c.reserved)) {
		return 0, false
	}
	return c.reserved[i], true
}

// room returns the site room of site index s.
func (c *cohort) room(s int) string { return "site:" + c.trial + ":" + c.sites[s] }

// trialRoom returns the trial's room.
func (c *cohort) trialRoom() string { return "trial:" + c.trial }

// staffToken mints the token of a staff session: a PI or CRA of one site, or
// a safety physician or on-call clinician for the whole trial (nil site).
func (c *cohort) staffToken(iss auth.Issuer, n int, site int, ttl time.Duration) (string, error) {
	claims := auth.Claims{Trials: []string{c.trial}, RegisteredClaims: jwt.RegisteredClaims{Subject: fmt.Sprintf("u%05d", n)}}
	switch {
	case site < 0 && n%2 == 0:
		claims.Role = auth.RoleSafety
	case site < 0:
		claims.Role = auth.RoleOnCall
	case n%2 == 0:
		claims.Role, claims.Sites = auth.RolePI, []string{c.trial + "/" + c.sites[site]}
	default:
		claims.Role, claims.Sites = auth.RoleCRA, []string{c.trial + "/" + c.sites[site]}
	}
	tok, err := iss.Mint(claims, ttl)
	if err != nil {
		return "", fmt.Errorf("bench: mint staff token: %w", err)
	}
	return tok, nil
}
