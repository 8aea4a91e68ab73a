package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"vigil/bus"
	"vigil/bus/redisbus"
	"vigil/cluster"
	"vigil/config"
	"vigil/ratelimit"
	"vigil/store"
	"vigil/store/postgres"
)

// clusterParts is what depends on whether this node is alone (in-process
// bus, local limits and caches, every lease held) or one of several sharing
// Redis.
type clusterParts struct {
	broker bus.Broker
	// mem is the in-process broker, whose offsets the store keeps; nil with
	// Redis.
	mem           *bus.Memory
	rdb           redis.UniversalClient
	leases        cluster.Leaser
	invalidations *cluster.Invalidations
	log           *slog.Logger
}

func newCluster(ctx context.Context, cfg config.Config, st store.Store, log *slog.Logger) (*clusterParts, error) {
	if cfg.RedisURL == "" {
		mem, err := newMemoryBus(ctx, st, cfg.HistorySize)
		if err != nil {
			return nil, err
		}
		return &clusterParts{broker: mem, mem: mem, leases: leasesFor(st, log), log: log}, nil
	}
	rdb, err := redisbus.NewClient(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("server: VIGIL_REDIS_URL: %w", err)
	}
	broker, err := newRedisBroker(ctx, cfg, rdb, log)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return &clusterParts{broker: broker, rdb: rdb, leases: leasesFor(st, log), log: log}, nil
}

// leasesFor returns the leases of nodes sharing st: PostgreSQL session
// locks, so that once-per-cluster work depends on nothing but the database
// it works on. A SQLite database has one node, which holds every lease.
func leasesFor(st store.Store, log *slog.Logger) cluster.Leaser {
	if pg, ok := st.(*postgres.Store); ok {
		return pg.Leases(time.Second, log)
	}
	return cluster.Solo{}
}

// limiter is a per-key limit of perMinute: shared by every node through
// Redis, or this node's own.
func (c *clusterParts) limiter(name string, perMinute, maxKeys int) ratelimit.Allower {
	if c.rdb != nil {
		return ratelimit.NewShared(c.rdb, "vigil:rate:"+name+":", perMinute, c.log)
	}
	return ratelimit.New(perMinute, maxKeys)
}

func (c *clusterParts) close() {
	if c.rdb != nil {
		_ = c.rdb.Close()
	}
}
