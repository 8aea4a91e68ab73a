package cluster_test

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"vigil/bus/redisbus/redistest"
)

// newRedis connects to a real redis-server started for one test.
func newRedis(t *testing.T) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(redistest.Start(t).URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}
