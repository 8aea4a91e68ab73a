package server

import (
	"context"
	"errors"
	"log/slog"

	"vigil/bus"
	"vigil/config"
)

// newRedisBroker is the Redis bus; it arrives with bus/redisbus.
func newRedisBroker(context.Context, config.Config, *slog.Logger) (bus.Broker, error) {
	return nil, errors.New("server: VIGIL_REDIS_URL: the Redis bus is not available in this version; leave it empty for the in-process bus")
}
