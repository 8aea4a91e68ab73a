package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"vigil/bus"
	"vigil/bus/redisbus"
	"vigil/config"
)

// newRedisBroker is the bus of several nodes: Redis pub/sub with history
// and gap-free offsets per room.
func newRedisBroker(ctx context.Context, cfg config.Config, rdb redis.UniversalClient, log *slog.Logger) (bus.Broker, error) {
	b, err := redisbus.New(ctx, cfg.RedisURL, redisbus.WithClient(rdb), redisbus.WithHistorySize(cfg.HistorySize), redisbus.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("server: VIGIL_REDIS_URL: %w", err)
	}
	return b, nil
}
