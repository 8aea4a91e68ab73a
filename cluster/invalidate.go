package cluster

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cache is a node's local cache of protocols and registry records
// (trial.Cache is one).
type Cache interface {
	InvalidateProtocol(trialID string)
	InvalidatePatient(trialID, siteID, patientID string)
	InvalidateAll()
}

// invalidation is the message every node applies to its cache.
type invalidation struct {
	Trial   string `json:"trial"`
	Site    string `json:"site,omitempty"`
	Patient string `json:"patient,omitempty"`
}

// Invalidations spreads cache invalidations to every node through Redis
// pub/sub. Pub/sub is at-most-once: a node that was disconnected may have
// missed some, so each (re)subscription clears the whole cache, and the
// cache's TTL bounds what any other miss could cost.
type Invalidations struct {
	rdb     redis.UniversalClient
	channel string
	cache   Cache
	log     *slog.Logger
}

// NewInvalidations returns invalidations for cache on channel.
func NewInvalidations(rdb redis.UniversalClient, channel string, cache Cache, log *slog.Logger) *Invalidations {
	if log == nil {
		log = slog.Default()
	}
	return &Invalidations{rdb: rdb, channel: channel, cache: cache, log: log}
}

// InvalidateProtocol drops a trial's protocol here and on every node.
func (i *Invalidations) InvalidateProtocol(trialID string) {
	i.cache.InvalidateProtocol(trialID)
	i.publish(invalidation{Trial: trialID})
}

// InvalidatePatient drops a registry record here and on every node.
func (i *Invalidations) InvalidatePatient(trialID, siteID, patientID string) {
	i.cache.InvalidatePatient(trialID, siteID, patientID)
	i.publish(invalidation{Trial: trialID, Site: siteID, Patient: patientID})
}

// publish tells the other nodes; a failure leaves them on their TTL, which
// is logged: the change itself is stored and this node already sees it.
func (i *Invalidations) publish(m invalidation) {
	data, err := json.Marshal(m)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := i.rdb.Publish(ctx, i.channel, data).Err(); err != nil {
		i.log.Warn("cache invalidation not published: other nodes see the change within the cache TTL", "err", err)
	}
}

// Run applies other nodes' invalidations until ctx ends, resubscribing
// after a lost connection.
func (i *Invalidations) Run(ctx context.Context) {
	for ctx.Err() == nil {
		i.listen(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (i *Invalidations) listen(ctx context.Context) {
	ps := i.rdb.Subscribe(ctx, i.channel)
	defer ps.Close()
	// go-redis waits out a receive's timeout whatever its context says:
	// closing the subscription is what ends the wait on shutdown.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	if _, err := ps.Receive(ctx); err != nil {
		if ctx.Err() == nil {
			i.log.Warn("cache invalidations: subscribe", "err", err)
		}
		return
	}
	// Whatever was published while this node was not listening is lost.
	i.cache.InvalidateAll()
	// A quiet channel is probed: after probeEvery without a message, a PING
	// goes out on the subscription's own connection, and if no pong comes
	// back within another probeEvery the connection is taken for dead (it
	// can be while writes to it still succeed) and replaced.
	const probeEvery = 10 * time.Second
	awaiting := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, probeEvery)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !isTimeout(err) || awaiting {
				i.log.Warn("cache invalidations: connection lost; resubscribing", "err", err)
				return
			}
			if err := ps.Ping(ctx); err != nil {
				i.log.Warn("cache invalidations: connection lost; resubscribing", "err", err)
				return
			}
			awaiting = true
			continue
		}
		awaiting = false
		m, ok := msg.(*redis.Message)
		if !ok {
			continue
		}
		var inv invalidation
		if err := json.Unmarshal([]byte(m.Payload), &inv); err != nil || inv.Trial == "" {
			continue
		}
		if inv.Patient == "" {
			i.cache.InvalidateProtocol(inv.Trial)
		} else {
			i.cache.InvalidatePatient(inv.Trial, inv.Site, inv.Patient)
		}
	}
}
