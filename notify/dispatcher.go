package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"vigil/metrics"
	"vigil/store"
)

// DispatcherConfig configures a Dispatcher; zero fields take the defaults.
type DispatcherConfig struct {
	// Interval is how often the outbox is polled (default 1 s). Kick polls
	// at once.
	Interval time.Duration
	// Batch is how many due notifications one poll takes (default 100).
	Batch int
	// Concurrency bounds deliveries in flight (default 8).
	Concurrency int
	// MaxAttempts is how many failed attempts dead-letter a notification
	// (default 8).
	MaxAttempts int
	// BaseBackoff and MaxBackoff shape the wait between attempts (defaults
	// 2 s and 5 min); see backoff.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// SendTimeout bounds one delivery whatever the sender (default 30 s).
	SendTimeout time.Duration
	// BaseURL is Vigil's public URL, for the link in each message; empty
	// sends no link.
	BaseURL string
	Logger  *slog.Logger
	Now     func() time.Time
}

// Dispatcher delivers the outbox: it polls for due notifications, sends each
// through the Sender of its channel kind with bounded concurrency, and
// records the outcome: sent; pending again after an exponential, fully
// jittered backoff; or dead after MaxAttempts or a permanent error.
//
// It runs in its own goroutine and only reads and writes the outbox, so a
// slow or failing receiver never holds up scoring or alerting. One
// Dispatcher should run per database: two would both send a due
// notification (harmless for receivers that use the delivery id, but noisy).
type Dispatcher struct {
	outbox  store.Outbox
	senders map[string]Sender
	cfg     DispatcherConfig
	log     *slog.Logger

	kick    chan struct{}
	sem     chan struct{}
	running atomic.Bool

	// A poll sees a notification as due until its outcome is recorded, so
	// it must skip the ones being delivered (inflight) and also the ones
	// whose delivery finished after the poll's query began: that query may
	// predate the record. finished maps an id to the poll generation during
	// which it finished; a poll of a later generation started after the
	// record was committed and sees it, so the entry can go.
	mu       sync.Mutex
	gen      uint64
	inflight map[int64]struct{}
	finished map[int64]uint64
}

// NewDispatcher returns a dispatcher over outbox that delivers each channel
// kind with senders[kind]. The board kind needs no sender (Board is used
// unless senders has one); a notification of a kind with no sender is
// dead-lettered.
func NewDispatcher(outbox store.Outbox, senders map[string]Sender, cfg DispatcherConfig) *Dispatcher {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 8
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = 2 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	if cfg.MaxBackoff < cfg.BaseBackoff {
		cfg.MaxBackoff = cfg.BaseBackoff
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ss := make(map[string]Sender, len(senders)+1)
	ss[KindBoard] = Board{}
	for k, s := range senders {
		if s != nil {
			ss[k] = s
		}
	}
	return &Dispatcher{
		outbox:   outbox,
		senders:  ss,
		cfg:      cfg,
		log:      cfg.Logger,
		kick:     make(chan struct{}, 1),
		sem:      make(chan struct{}, cfg.Concurrency),
		inflight: make(map[int64]struct{}),
		finished: make(map[int64]uint64),
	}
}

// Kick makes the dispatcher poll now instead of at its next interval; call
// it after enqueueing notifications. It never blocks.
func (d *Dispatcher) Kick() {
	select {
	case d.kick <- struct{}{}:
	default: // a poll is already requested
	}
}

// Run delivers notifications until ctx ends, then waits for the deliveries
// in flight to stop. Those are cancelled with ctx and their outcome is not
// recorded: they stay pending and go out again on the next start, since a
// duplicate is better than a missed notification. Run is meant to be called
// once; a second call while one runs returns at once, because two pollers
// would send the same notification twice.
func (d *Dispatcher) Run(ctx context.Context) {
	if !d.running.CompareAndSwap(false, true) {
		d.log.Error("notify: Dispatcher.Run called while already running")
		return
	}
	defer d.running.Store(false)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(d.cfg.Interval)
	defer tick.Stop()
	for {
		d.poll(ctx, &wg)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-d.kick:
		}
	}
}

// maxRounds bounds how many full batches one wake-up takes, so a store that
// keeps failing to record outcomes cannot turn the loop into a busy one.
const maxRounds = 10

// poll starts deliveries for due notifications, waiting for a free slot when
// all are busy; it takes further batches while they come back full.
func (d *Dispatcher) poll(ctx context.Context, wg *sync.WaitGroup) {
	for range maxRounds {
		if ctx.Err() != nil {
			return
		}
		d.mu.Lock()
		d.gen++
		gen := d.gen
		for id, g := range d.finished {
			if g < gen {
				delete(d.finished, id)
			}
		}
		busy := len(d.inflight) + len(d.finished)
		d.mu.Unlock()
		// Ask for enough to find a full batch beyond those already in flight.
		limit := d.cfg.Batch + busy
		due, err := d.outbox.DueNotifications(ctx, d.cfg.Now(), limit)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Error("notify: reading the outbox failed", "error", err)
			}
			return
		}
		started := 0
		for _, n := range due {
			d.mu.Lock()
			_, running := d.inflight[n.ID]
			_, done := d.finished[n.ID]
			d.mu.Unlock()
			if running || done {
				continue
			}
			select {
			case d.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			d.mu.Lock()
			d.inflight[n.ID] = struct{}{}
			d.mu.Unlock()
			started++
			wg.Go(func() {
				defer func() {
					d.mu.Lock()
					delete(d.inflight, n.ID)
					d.finished[n.ID] = d.gen
					d.mu.Unlock()
					<-d.sem
				}()
				d.deliver(ctx, n)
			})
		}
		if len(due) < limit || started == 0 {
			return
		}
	}
}

// deliver makes one attempt at n and records its outcome.
func (d *Dispatcher) deliver(ctx context.Context, n store.Notification) {
	kind := n.Channel.Kind
	attempt := n.Attempts + 1
	log := d.log.With("notification_id", n.ID, "alert_id", n.AlertID, "kind", kind, "attempt", attempt)

	err := d.send(ctx, n)
	if err != nil && ctx.Err() != nil {
		// Shutting down: not this receiver's failure, and not an attempt.
		return
	}

	var (
		status = store.NotifySent
		next   time.Time
		errMsg string
	)
	switch {
	case err == nil:
	case IsPermanent(err) || attempt >= d.cfg.MaxAttempts:
		status, errMsg = store.NotifyDead, err.Error()
	default:
		wait := max(backoff(attempt, d.cfg.BaseBackoff, d.cfg.MaxBackoff), min(retryAfter(err), d.cfg.MaxBackoff))
		status, errMsg, next = store.NotifyPending, err.Error(), d.cfg.Now().Add(wait)
	}

	// Recorded even when ctx has just ended: the receiver has the message
	// (or refused it), and saying so prevents a needless repeat.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if rerr := d.outbox.RecordAttempt(rctx, n.ID, status, next, errMsg); rerr != nil {
		// It stays pending and due, so it will be sent again: a duplicate
		// rather than a loss.
		log.Error("notify: recording the outcome failed", "status", status, "error", rerr)
	}

	label := metricKind(kind)
	switch status {
	case store.NotifySent:
		metrics.NotificationsSent.WithLabelValues(label).Inc()
		log.Info("notify: delivered")
	case store.NotifyPending:
		metrics.NotificationsFailed.WithLabelValues(label).Inc()
		log.Warn("notify: delivery failed, will retry", "error", errMsg, "next_attempt_at", next)
	case store.NotifyDead:
		metrics.NotificationsFailed.WithLabelValues(label).Inc()
		metrics.NotificationsDead.WithLabelValues(label).Inc()
		log.Error("notify: delivery failed, dead-lettered", "error", errMsg, "permanent", IsPermanent(err))
	}
}

// send builds n's message and hands it to its channel's sender, bounded by
// SendTimeout. A sender that panics costs an attempt, not the process.
func (d *Dispatcher) send(ctx context.Context, n store.Notification) (err error) {
	msg, err := NewMessage(n, d.cfg.BaseURL)
	if err != nil {
		return err
	}
	s, ok := d.senders[n.Channel.Kind]
	if !ok {
		return Permanent(fmt.Errorf("no sender for channel kind %q", n.Channel.Kind))
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.SendTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("sender panicked")
			d.log.Error("notify: sender panicked", "notification_id", n.ID, "alert_id", n.AlertID, "panic", fmt.Sprint(r))
		}
	}()
	return s.Send(ctx, n, msg)
}

// metricKind keeps the metric's label set to the known kinds, whatever a
// protocol says.
func metricKind(kind string) string {
	switch kind {
	case KindWebhook, KindPagerDuty, KindEmail, KindBoard:
		return kind
	}
	return "other"
}

// backoff is the wait after the attempt-th failed attempt (1-based): "full
// jitter" (M. Brooker, "Exponential Backoff And Jitter", AWS Architecture
// Blog, 2015), uniform in [0, min(maxWait, base·2^(attempt−1))]. Spreading
// retries over the whole window keeps the notifications that failed together
// in a receiver's outage from retrying in lockstep when it comes back. The
// state is only the attempt count the outbox already keeps, which is why a
// stateful backoff object (cenkalti/backoff and the like) does not fit.
func backoff(attempt int, base, maxWait time.Duration) time.Duration {
	if base <= 0 || maxWait <= 0 {
		return 0
	}
	ceil := base
	for i := 1; i < attempt && ceil < maxWait; i++ {
		ceil *= 2 // stops at maxWait, long before overflowing
	}
	ceil = min(ceil, maxWait)
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}
