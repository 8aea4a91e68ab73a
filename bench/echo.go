//go:build linux

package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"vigil/reading"
)

// ServeEcho runs the baseline the Ward scenario compares Vigil with: a bare
// Fiber app whose POST /v1/readings decodes and validates the reading with
// Vigil's own decoder (reading.Decode, Reading.Validate, as ingest does) and
// answers 202 with the reading id, with no authentication, no store and no
// scoring. Its Fiber settings are the server's, and it serves /metrics with
// the same Go and process collectors, so both are measured alike. It logs
// {"msg":"echo listening","addr":…} on log when it listens, and stops with
// ctx. `vigil bench echo-server` runs it as a child process.
func ServeEcho(ctx context.Context, addr string, log io.Writer) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	app := fiber.New(fiber.Config{
		AppName:               "vigil-bench-echo",
		DisableStartupMessage: true,
		BodyLimit:             4<<20 + 1,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           2 * time.Minute,
	})
	type accepted struct {
		ReadingID string `json:"reading_id"`
		Status    string `json:"status"`
	}
	app.Post("/v1/readings", func(c *fiber.Ctx) error {
		r, err := reading.Decode(c.Body())
		if err != nil {
			return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"detail": err.Error()})
		}
		if err := r.Validate(time.Now()); err != nil {
			return c.Status(fiber.StatusUnprocessableEntity).JSON(fiber.Map{"detail": err.Error()})
		}
		return c.Status(fiber.StatusAccepted).JSON(accepted{ReadingID: r.ReadingID, Status: "accepted"})
	})
	app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	app.Get("/readyz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("echo: listen %s: %w", addr, err)
	}
	slog.New(slog.NewJSONHandler(log, nil)).Info("echo listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- app.Listener(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return app.ShutdownWithTimeout(5 * time.Second)
	}
}
