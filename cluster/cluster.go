// Package cluster owns what several Vigil nodes coordinate besides events
// and the database: the Leaser contract for work that must happen once per
// cluster (escalation timers, missed-reading checks, the notification
// dispatcher, the rescoring sweep; store/postgres implements it with session
// advisory locks, so paging depends on nothing but the database), and cache
// invalidations through Redis, so that a protocol or registry change made on
// one node reaches every node's cache within a second. A lone node holds
// every lease and keeps invalidations local. It imports nothing of Vigil's.
package cluster

import "context"

// Leaser runs work while this node holds the right to.
type Leaser interface {
	// Run calls fn while this node holds the lease named name, with a
	// context cancelled when the lease is lost or ctx ends; it returns when
	// ctx ends.
	Run(ctx context.Context, name string, fn func(context.Context))
}

// Solo is the Leaser of a lone node: the lease is always held.
type Solo struct{}

// Run calls fn at once.
func (Solo) Run(ctx context.Context, _ string, fn func(context.Context)) { fn(ctx) }
