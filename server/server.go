// Package server owns the wiring of one Vigil node: it opens the store and the
// bus, starts the scoring pipeline, the hub and the Fiber app, serves API,
// /ws and board on one listener, scores what a crash left unscored, and shuts
// everything down in order. It imports every other package; none imports it.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"vigil/admin"
	"vigil/auth"
	"vigil/board"
	"vigil/bus"
	"vigil/cluster"
	"vigil/config"
	"vigil/hub"
	"vigil/ingest"
	"vigil/lifecycle"
	"vigil/metrics"
	"vigil/notify"
	"vigil/predictor"
	"vigil/problem"
	"vigil/scoring"
	"vigil/store"
	"vigil/store/postgres"
	"vigil/store/sqlite"
	"vigil/trial"
	"vigil/ui"
)

// Server is one running node.
type Server struct {
	metricsHTTP *http.Server // VIGIL_METRICS_ADDR's, if set
	// draining is set by Drain: /readyz answers 503 from then on.
	draining atomic.Bool
	cfg      config.Config
	log      *slog.Logger
	store    store.Store
	broker   bus.Broker
	retrier  *bus.Retrier
	// cl is what this node shares with others: Redis, leases, the
	// in-process broker's offsets when there is no Redis.
	cl       *clusterParts
	pipeline *scoring.Pipeline
	hub      *hub.Hub
	cache    *trial.Cache
	life     *lifecycle.Service
	// model is predictor-py's client, nil when none is configured.
	model *predictor.Client
	// dispatcher delivers the notification outbox; one per database.
	dispatcher *notify.Dispatcher
	app        *fiber.App
	stop       context.CancelFunc
	bg         sync.WaitGroup // the sweep and the offset saver
}

// New builds a node from its configuration; nothing listens until Serve.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*Server, error) {
	verifier, err := newVerifier(cfg)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	cl, err := newCluster(ctx, cfg, st, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	broker := cl.broker
	cache, err := trial.NewCache(trial.CacheConfig{Source: st,
		IsNotFound: func(err error) bool { return errors.Is(err, store.ErrNotFound) }})
	if err != nil {
		cl.close()
		st.Close()
		return nil, fmt.Errorf("server: cache: %w", err)
	}
	invalidator := admin.Invalidator(cache)
	if cl.rdb != nil {
		cl.invalidations = cluster.NewInvalidations(cl.rdb, "vigil:invalidate", cache, log)
		invalidator = cl.invalidations
	}
	pcfg := scoring.PipelineConfig{Workers: cfg.ScoringWorkers, Logger: log, Profiles: cache}
	var model *predictor.Client
	if cfg.PredictorAddr != "" {
		tlsCfg, err := predictor.TLSConfig(cfg.PredictorTLSCA, cfg.PredictorTLSServerName)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("server: %w", err)
		}
		model, err = predictor.New(predictor.Config{Addr: cfg.PredictorAddr, Timeout: cfg.PredictorTimeout,
			BatchSize: cfg.PredictorBatch, BatchWait: cfg.PredictorBatchWait, TLS: tlsCfg, Logger: log})
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("server: %w", err)
		}
		pcfg.Model, pcfg.History = model, storeHistory{st}
	}
	// Scores and alerts the bus refuses (Redis unreachable) are published
	// again once it answers, so boards get them live, late, not only from
	// their next snapshot.
	retrier := bus.NewRetrier(broker, 10_000, time.Second, log)
	pipe, err := scoring.NewPipeline(st, retrier, pcfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	dispatcher, err := newDispatcher(cfg, st, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	life := lifecycle.New(lifecycle.Config{Store: st, Protocols: cache, Publisher: pipe, Kicker: dispatcher,
		EscalationInterval: cfg.EscalationInterval, MissedInterval: cfg.MissedInterval,
		EscalationFloor: cfg.EscalationFloor, Logger: log})
	h := hub.New(broker, hub.Config{Verifier: verifier, AllowedOrigins: cfg.Origins(), Logger: log})

	s := &Server{cfg: cfg, log: log, store: st, broker: broker, retrier: retrier, cl: cl, pipeline: pipe, hub: h, cache: cache, life: life,
		dispatcher: dispatcher, model: model}
	s.app = fiber.New(fiber.Config{
		AppName:               "vigil",
		DisableStartupMessage: true,
		BodyLimit:             ingest.MaxBatchBody + 1, // the handlers give the precise 413s
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           2 * time.Minute,
		ErrorHandler:          problem.ErrorHandler,
		// Behind a trusted proxy the client IP (for the per-IP limit) is the
		// first valid address of X-Forwarded-For; otherwise the peer's.
		ProxyHeader:        proxyHeader(cfg.TrustProxy),
		EnableIPValidation: true,
	})
	// The hub serves /ws on the socket Fiber hands over and closes it itself.
	s.app.Server().KeepHijackedConns = true
	// Metrics outside recover, so that a panic is counted as the 500 it is.
	s.app.Use(httpMetrics)
	s.app.Use(recover.New())
	s.app.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	s.app.Get("/readyz", s.ready)
	if cfg.MetricsAddr == "" {
		s.app.Get("/metrics", adaptor.HTTPHandler(metricsHandler()))
	} else {
		// Served on VIGIL_METRICS_ADDR only (Serve), not to the public.
		s.app.Get("/metrics", func(c *fiber.Ctx) error {
			return problem.Send(c, problem.NotFound("metrics are served on another port"), 0)
		})
	}
	ingest.New(ingest.Config{
		Verifier:   verifier,
		Store:      st,
		Scorer:     pipe,
		PerPatient: cl.limiter("patient", cfg.RatePerPatient, 1_000_000),
		PerIP:      cl.limiter("ip", cfg.RatePerIP, 100_000),
		Logger:     log,
		Registry:   cache,
	}).Register(s.app)
	board.New(verifier, st, log).Register(s.app)
	admin.New(verifier, st, invalidator, log).Register(s.app)
	lifecycle.NewAPI(life, verifier).Register(s.app)
	s.app.All("/v1/*", func(c *fiber.Ctx) error {
		return problem.Send(c, problem.NotFound("no such endpoint: "+c.Method()+" "+c.Path()), 0)
	})
	s.app.Get("/ws", func(c *fiber.Ctx) error {
		if !strings.EqualFold(c.Get(fiber.HeaderUpgrade), "websocket") {
			return problem.Send(c, problem.New(fiber.StatusUpgradeRequired, "upgrade-required", "Upgrade required",
				"/ws speaks the WebSocket protocol only"), 0)
		}
		return hijackWS(s.hub, c)
	})
	static := adaptor.HTTPHandler(ui.Handler())
	s.app.Get("/*", static)
	return s, nil
}

func proxyHeader(trust bool) string {
	if trust {
		return fiber.HeaderXForwardedFor
	}
	return ""
}

func newVerifier(cfg config.Config) (*auth.Verifier, error) {
	vc := auth.VerifierConfig{Secret: []byte(cfg.JWTSecret), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
		Leeway: 30 * time.Second}
	if cfg.JWTPublicKeys != "" {
		keys, err := auth.LoadPublicKeys(cfg.JWTPublicKeys)
		if err != nil {
			return nil, err
		}
		vc.PublicKeys = keys
	}
	v, err := auth.NewVerifier(vc)
	if err != nil {
		return nil, fmt.Errorf("server: %w (set VIGIL_JWT_SECRET or VIGIL_JWT_PUBLIC_KEYS)", err)
	}
	return v, nil
}

func openStore(ctx context.Context, cfg config.Config) (store.Store, error) {
	if path := cfg.SQLitePath(); path != "" {
		st, err := sqlite.Open(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("server: open store: %w", err)
		}
		return st, nil
	}
	if strings.HasPrefix(cfg.DB, "postgres://") || strings.HasPrefix(cfg.DB, "postgresql://") {
		st, err := postgres.Open(ctx, cfg.DB)
		if err != nil {
			return nil, fmt.Errorf("server: open store %s: %w", RedactDSN(cfg.DB), err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("server: VIGIL_DB %q: want sqlite://PATH or postgres://…", RedactDSN(cfg.DB))
}

// RedactDSN keeps a database URL's scheme only, so passwords never reach
// logs or the terminal.
func RedactDSN(dsn string) string {
	if strings.HasPrefix(dsn, "sqlite://") {
		return dsn // a file path: nothing secret
	}
	for i := 0; i+2 < len(dsn); i++ {
		if dsn[i:i+3] == "://" {
			return dsn[:i+3] + "…"
		}
	}
	return "…"
}

// httpMetrics counts requests by route pattern and status, and times them.
// The route is known only once the handler has run.
func httpMetrics(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	code := c.Response().StatusCode()
	var fe *fiber.Error
	if errors.As(err, &fe) {
		code = fe.Code
	} else if err != nil {
		code = fiber.StatusInternalServerError
	}
	route := c.Route().Path
	if len(route) > 1 {
		route = strings.TrimSuffix(route, "/") // a group's root route ends in "/"
	}
	metrics.HTTPRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	metrics.HTTPSeconds.WithLabelValues(route).Observe(time.Since(start).Seconds())
	return err
}

// Drain makes /readyz answer 503 {"status":"draining"} from now on, so that
// load balancers and Kubernetes stop sending the node new requests and
// sessions while it goes on serving the ones it has; Shutdown follows.
func (s *Server) Drain() { s.draining.Store(true) }

func (s *Server) ready(c *fiber.Ctx) error {
	if s.draining.Load() {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "draining"})
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	checks := fiber.Map{"store": "ok", "bus": "ok"}
	ok := true
	if err := s.store.Ping(ctx); err != nil {
		checks["store"], ok = "unavailable", false
	}
	if err := s.broker.Ping(ctx); err != nil {
		checks["bus"], ok = "unavailable", false
	}
	if !ok {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "checks": checks})
	}
	// An unreachable predictor is reported but does not make the node
	// unready: scoring goes on with the rules alone (degraded), and taking
	// every node out of the load balancer because the model is down would
	// turn a degraded service into no service.
	if s.model != nil {
		if err := s.model.Check(ctx); err != nil {
			checks["predictor"] = "unavailable: scoring with rules alone (degraded)"
			return c.JSON(fiber.Map{"status": "degraded", "checks": checks})
		}
		checks["predictor"] = "ok"
	}
	return c.JSON(fiber.Map{"status": "ok", "checks": checks})
}

// newDispatcher builds the notification senders the configuration allows.
// Without an SMTP relay, email notifications are dead-lettered (visible),
// never silently dropped; the start-up log says so.
func newDispatcher(cfg config.Config, st store.Store, log *slog.Logger) (*notify.Dispatcher, error) {
	senders := map[string]notify.Sender{
		notify.KindWebhook:   notify.NewWebhook(notify.EnvSecrets),
		notify.KindPagerDuty: notify.NewPagerDuty(notify.EnvSecrets),
		notify.KindBoard:     notify.Board{},
	}
	if cfg.SMTPAddr != "" {
		email, err := notify.NewEmail(notify.SMTPConfig{Addr: cfg.SMTPAddr, From: cfg.SMTPFrom,
			Username: cfg.SMTPUsername, Password: cfg.SMTPPassword})
		if err != nil {
			return nil, fmt.Errorf("server: email notifier: %w", err)
		}
		senders[notify.KindEmail] = email
	} else {
		log.Warn("VIGIL_SMTP_ADDR is not set: email notifications will be dead-lettered")
	}
	return notify.NewDispatcher(st, senders, notify.DispatcherConfig{BaseBackoff: cfg.NotifyBackoff,
		BaseURL: cfg.PublicURL, Logger: log}), nil
}

// crashOffsetGap is how far a room's offsets jump after a crash. Offsets are
// saved every offsetSaveInterval, so a crash may lose the record of the last
// events published; jumping well past anything a room can publish in that
// interval guarantees no offset is ever reused for a different event.
const (
	crashOffsetGap     = 1 << 20
	offsetSaveInterval = time.Second
)

// newMemoryBus starts the in-process bus where the last process left its
// offsets, and marks the store's copy as no longer exact until a clean
// shutdown saves it again.
func newMemoryBus(ctx context.Context, st store.Store, historySize int) (*bus.Memory, error) {
	offsets, clean, err := st.RoomOffsets(ctx)
	if err != nil {
		return nil, fmt.Errorf("server: load bus offsets: %w", err)
	}
	def := uint64(0)
	if !clean {
		def = crashOffsetGap
		for room, off := range offsets {
			offsets[room] = off + crashOffsetGap
		}
	}
	if err := st.SaveRoomOffsets(ctx, offsets, false); err != nil {
		return nil, fmt.Errorf("server: mark bus offsets: %w", err)
	}
	return bus.NewMemory(historySize, bus.WithStartOffsets(offsets, def)), nil
}

// saveOffsets keeps the store's copy of the bus offsets recent.
func (s *Server) saveOffsets(ctx context.Context) {
	t := time.NewTicker(offsetSaveInterval)
	defer t.Stop()
	var last map[string]uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := s.cl.mem.Offsets()
		if maps.Equal(cur, last) {
			continue
		}
		if err := s.store.SaveRoomOffsets(ctx, cur, false); err != nil && ctx.Err() == nil {
			s.log.Error("save bus offsets", "err", err)
			continue
		}
		last = cur
	}
}

func metricsHandler() http.Handler {
	return promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{})
}

// Serve serves on ln until Shutdown; it returns nil after a clean shutdown.
// With VIGIL_METRICS_ADDR it also serves /metrics there.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", s.cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("server: metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metricsHandler())
		s.metricsHTTP = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		s.log.Info("metrics listening", "addr", mln.Addr().String())
		go func() {
			if err := s.metricsHTTP.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("metrics listener stopped", "err", err)
			}
		}()
	}
	bg, stop := context.WithCancel(context.Background())
	s.stop = stop
	// Work that must happen once per cluster runs under a lease (always
	// held by a lone node); a node that dies hands it over within the TTL.
	s.bg.Go(func() { s.cl.leases.Run(bg, "sweep", s.sweep) })
	s.bg.Go(func() { s.cl.leases.Run(bg, "escalations", s.life.RunEscalations) })
	s.bg.Go(func() { s.cl.leases.Run(bg, "missed-readings", s.life.RunMissedReadings) })
	s.bg.Go(func() { s.cl.leases.Run(bg, "dispatcher", s.dispatcher.Run) })
	if s.cl.mem != nil {
		s.bg.Go(func() { s.saveOffsets(bg) })
	}
	if s.cl.invalidations != nil {
		s.bg.Go(func() { s.cl.invalidations.Run(bg) })
	}
	s.bg.Go(func() { s.retrier.Run(bg) })
	err := s.app.Listener(ln)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("server: serve: %w", err)
	}
	return nil
}

// sweep scores readings that a crash or a failed scoring left unscored: all
// of them at start, then every SweepInterval those older than it.
func (s *Server) sweep(ctx context.Context) {
	// A lone node scores everything left unscored at once: nobody else is
	// scoring. A node taking the sweep over from another leaves the readings
	// of the last interval alone, which the other nodes may be scoring now.
	cutoff := time.Now()
	if _, solo := s.cl.leases.(cluster.Solo); !solo {
		cutoff = cutoff.Add(-s.cfg.SweepInterval)
	}
	s.rescore(ctx, cutoff)
	if s.cfg.SweepInterval <= 0 {
		// Hold the lease all the same: returning would release it, and the
		// next taker would sweep again.
		<-ctx.Done()
		return
	}
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.rescore(ctx, now.Add(-s.cfg.SweepInterval))
		}
	}
}

// rescoreParallel bounds the sweep's concurrency: enough to keep the store's
// group commit busy after a crash left a backlog, without starving live
// readings of the writer.
const rescoreParallel = 16

func (s *Server) rescore(ctx context.Context, before time.Time) {
	total := 0
	for ctx.Err() == nil {
		recs, err := s.store.Unscored(ctx, before, 500)
		if err != nil {
			s.log.Error("find unscored readings", "err", err)
			return
		}
		var (
			g      errgroup.Group
			failed atomic.Int64
		)
		g.SetLimit(rescoreParallel)
		for _, r := range recs {
			g.Go(func() error {
				in := scoring.Input{Reading: r.Reading, ReceivedAt: r.ReceivedAt, Retry: true}
				if err := s.pipeline.Process(ctx, in); err != nil {
					failed.Add(1)
					s.log.Error("rescore", "reading_id", r.Reading.ReadingID, "err", err)
				}
				return nil
			})
		}
		_ = g.Wait()
		total += len(recs) - int(failed.Load())
		if len(recs) < 500 || int(failed.Load()) == len(recs) {
			break
		}
	}
	if total > 0 {
		s.log.Info("scored readings left unscored", "count", total)
	}
}

// Shutdown stops taking requests, closes WebSocket sessions, lets admitted
// readings finish scoring, and closes the store.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	if err := s.app.ShutdownWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("fiber: %w", err))
	}
	if s.stop != nil {
		s.stop()
		s.bg.Wait()
	}
	// Scoring first, with the most of the deadline: it is what makes every
	// acknowledged reading scored. Its events still reach the sessions,
	// which are closed only then; whatever the bus refused is tried once
	// more before the bus goes.
	if err := s.pipeline.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	s.retrier.Flush(ctx)
	if err := s.hub.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("hub: %w", err))
	}
	if s.metricsHTTP != nil {
		_ = s.metricsHTTP.Shutdown(ctx)
	}
	if s.model != nil {
		if err := s.model.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.broker.Close(); err != nil {
		errs = append(errs, err)
	}
	if s.cl.mem != nil {
		// Nothing publishes now: the offsets are exact, and the next start
		// continues them without a gap.
		if err := s.store.SaveRoomOffsets(context.WithoutCancel(ctx), s.cl.mem.Offsets(), true); err != nil {
			errs = append(errs, err)
		}
	}
	s.cl.close()
	s.cache.Close()
	if err := s.store.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
