package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"vigil/bus/redisbus/redistest"
	"vigil/ratelimit"
)

// TestSharedLimitIsOneAcrossNodes: two nodes' limiters on one Redis enforce
// one limit per key, not one each; other keys are unaffected; a limiter
// whose Redis is gone allows (fails open).
func TestSharedLimitIsOneAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	client := func() *redis.Client {
		opt, err := redis.ParseURL(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(opt)
		t.Cleanup(func() { c.Close() })
		return c
	}
	a := ratelimit.NewShared(client(), "test:", 6, nil)
	b := ratelimit.NewShared(client(), "test:", 6, nil)
	ctx, now := context.Background(), time.Now()
	allowed := 0
	for i := range 10 {
		l := a
		if i%2 == 1 {
			l = b
		}
		if ok, _ := l.Allow(ctx, "P1", 1, now); ok {
			allowed++
		}
	}
	if allowed != 6 {
		t.Fatalf("%d of 10 allowed across two nodes, want the one burst of 6", allowed)
	}
	ok, wait := b.Allow(ctx, "P1", 1, now)
	if ok || wait <= 0 {
		t.Fatalf("over the limit: ok %v, retry after %v", ok, wait)
	}
	if ok, _ := a.Allow(ctx, "P2", 1, now); !ok {
		t.Fatal("another key was limited")
	}
	if ratelimit.NewShared(client(), "test:", 0, nil) != nil {
		t.Fatal("a limit of 0 must mean no limiter")
	}
	if srv.External() {
		return
	}
	srv.Stop()
	if ok, _ := a.Allow(ctx, "P1", 1, now); !ok {
		t.Fatal("with Redis gone, the limiter refused: it must fail open")
	}
}
