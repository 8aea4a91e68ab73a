package redisbus

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"vigil/bus"
)

// Defaults of the options.
const (
	DefaultHistorySize   = bus.DefaultHistorySize
	DefaultHistoryTTL    = 24 * time.Hour
	DefaultKeyPrefix     = "vigil:bus:"
	DefaultProbeInterval = time.Second
	DefaultProbeTimeout  = 3 * time.Second
	DefaultOpTimeout     = 5 * time.Second
)

const (
	// inboxSize bounds the messages read from the subscriber connection and
	// not yet delivered. When it is full the reader stops reading, Redis
	// buffers, and past its client-output-buffer-limit it drops the
	// connection, which the node handles like any other loss: reconnect and
	// re-sync from history. Memory stays bounded either way.
	inboxSize = 1024
	// maxSafeSince is the largest since handed to Lua, whose numbers are
	// doubles; anything greater is beyond any real latest offset.
	maxSafeSince = 1 << 53
	minBackoff   = 50 * time.Millisecond
	maxBackoff   = 2 * time.Second
)

type config struct {
	historySize   int
	historyTTL    time.Duration
	prefix        string
	probeInterval time.Duration
	probeTimeout  time.Duration
	opTimeout     time.Duration
	client        redis.UniversalClient
	log           *slog.Logger
}

// Option configures a Broker.
type Option func(*config)

// WithHistorySize sets how many events each room's history keeps
// (DefaultHistorySize when n <= 0).
func WithHistorySize(n int) Option { return func(c *config) { c.historySize = n } }

// WithHistoryTTL sets how long a room's history outlives its last publish
// (DefaultHistoryTTL when d < 1s).
func WithHistoryTTL(d time.Duration) Option { return func(c *config) { c.historyTTL = d } }

// WithKeyPrefix sets the prefix of every key and channel of the bus
// (DefaultKeyPrefix when empty). Nodes sharing a bus must use the same.
func WithKeyPrefix(p string) Option { return func(c *config) { c.prefix = p } }

// WithProbe sets how often the subscriber connection is probed and how long
// a probe may take before the connection is declared dead and replaced.
func WithProbe(interval, timeout time.Duration) Option {
	return func(c *config) { c.probeInterval, c.probeTimeout = interval, timeout }
}

// WithOpTimeout bounds the Redis calls the broker makes on its own (re-syncs,
// epoch checks, resubscribing), which have no caller context.
func WithOpTimeout(d time.Duration) Option { return func(c *config) { c.opTimeout = d } }

// WithClient makes the broker use c (for Cluster, or a client configured in
// code) instead of one built from the URL. The broker does not close c.
func WithClient(c redis.UniversalClient) Option { return func(cfg *config) { cfg.client = c } }

// WithLogger sets the logger (slog.Default() otherwise). Event data is never
// logged.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// Broker is a bus.Broker over Redis. Create it with New.
type Broker struct {
	client    redis.UniversalClient
	ownClient bool
	cfg       config
	log       *slog.Logger

	epochKey     string
	probeChannel string

	epoch   atomic.Pointer[string]
	handler atomic.Pointer[bus.Handler]

	// ctx is cancelled by Close and bounds everything the broker does on its
	// own; wg counts its goroutines.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	rooms   map[string]*room // by name
	byChan  map[string]*room // by channel
	ps      *redis.PubSub    // the current subscriber connection, nil while reconnecting
	gen     uint64           // generation of ps
	genAt   time.Time        // when gen was opened
	healthy bool             // gen confirmed its probe channel, and the last probe came back

	// in carries what the current reader receives to the delivery goroutine.
	in         chan item
	epochCheck chan struct{}
	probeSeen  atomic.Uint64
	probeWake  chan struct{}

	// delivEpoch is the epoch the rooms' last offsets belong to. Owned by
	// the delivery goroutine (set before it starts).
	delivEpoch string
	// generations counts subscriber connections opened, for tests and
	// metrics.
	generations atomic.Uint64
}

// room is a room the node is subscribed to.
type room struct {
	name    string
	channel string
	metaKey string
	histKey string

	confirmed   chan struct{} // closed once Redis confirmed the subscription and the room was synced
	confirmOnce sync.Once

	// dmu is held while the handler runs for the room, so that once
	// Unsubscribe has set active to false the handler is neither running nor
	// called again for it.
	dmu    sync.Mutex
	active bool
	epoch  string // the epoch last belongs to
	last   uint64 // the offset of the newest event delivered (or known to be in history when subscribing)
}

type item struct {
	gen uint64
	msg any
	err error
}

var _ bus.Broker = (*Broker)(nil)

// New connects to Redis and starts the node's subscriber. redisURL is a
// redis://, rediss:// or unix:// URL (redis.ParseURL); with a master_name
// query parameter it names Sentinels (redis.ParseFailoverURL). It is ignored
// when WithClient is given. New fails if Redis does not answer.
func New(ctx context.Context, redisURL string, opts ...Option) (*Broker, error) {
	cfg := config{
		historySize:   DefaultHistorySize,
		historyTTL:    DefaultHistoryTTL,
		prefix:        DefaultKeyPrefix,
		probeInterval: DefaultProbeInterval,
		probeTimeout:  DefaultProbeTimeout,
		opTimeout:     DefaultOpTimeout,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.historySize <= 0 {
		cfg.historySize = DefaultHistorySize
	}
	if cfg.historyTTL < time.Second {
		cfg.historyTTL = DefaultHistoryTTL
	}
	if cfg.prefix == "" {
		cfg.prefix = DefaultKeyPrefix
	}
	if cfg.probeInterval <= 0 {
		cfg.probeInterval = DefaultProbeInterval
	}
	if cfg.probeTimeout <= 0 {
		cfg.probeTimeout = DefaultProbeTimeout
	}
	if cfg.opTimeout <= 0 {
		cfg.opTimeout = DefaultOpTimeout
	}
	if cfg.log == nil {
		cfg.log = slog.Default()
	}

	client, own := cfg.client, false
	if client == nil {
		c, err := NewClient(redisURL)
		if err != nil {
			return nil, err
		}
		client, own = c, true
	}
	if _, ok := client.(*redis.ClusterClient); ok && !strings.Contains(cfg.prefix, "{") {
		// One slot for every bus key: see the package documentation.
		cfg.prefix = "{" + strings.TrimSuffix(cfg.prefix, ":") + "}:"
	}

	b := &Broker{
		client:       client,
		ownClient:    own,
		cfg:          cfg,
		log:          cfg.log.With("component", "redisbus"),
		epochKey:     cfg.prefix + "epoch",
		probeChannel: cfg.prefix + "probe:" + rand.Text(),
		rooms:        make(map[string]*room),
		byChan:       make(map[string]*room),
		in:           make(chan item, inboxSize),
		epochCheck:   make(chan struct{}, 1),
		probeWake:    make(chan struct{}, 1),
	}
	epoch, err := b.fetchEpoch(ctx)
	if err != nil {
		if own {
			_ = client.Close()
		}
		return nil, err
	}
	b.epoch.Store(&epoch)
	b.delivEpoch = epoch
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.wg.Add(2)
	go b.run()
	go b.probe()
	return b, nil
}

// NewClient returns a client for a redis://, rediss:// or unix:// URL, or,
// with a master_name query parameter, for the master its Sentinels name.
// Errors never quote the URL, which may hold a password.
func NewClient(redisURL string) (redis.UniversalClient, error) {
	u, err := url.Parse(redisURL)
	if err != nil {
		// Not %w: url errors quote the URL, which may hold a password.
		return nil, errors.New("redisbus: invalid Redis URL")
	}
	if u.Query().Has("master_name") {
		fo, err := redis.ParseFailoverURL(redisURL)
		if err != nil {
			return nil, fmt.Errorf("redisbus: Sentinel URL: %w", redactURLError(err))
		}
		return redis.NewFailoverClient(fo), nil
	}
	o, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("redisbus: Redis URL: %w", redactURLError(err))
	}
	return redis.NewClient(o), nil
}

// redactURLError drops a *url.Error's URL, which may carry a password.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (b *Broker) roomKeys(name string) (meta, hist string) {
	base := b.cfg.prefix + "{" + name + "}:"
	return base + "m", base + "h"
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// fetchEpoch reads the epoch from Redis, creating it if missing.
func (b *Broker) fetchEpoch(ctx context.Context) (string, error) {
	e, err := epochScript.Run(ctx, b.client, []string{b.epochKey}, rand.Text()).Text()
	if err != nil {
		return "", fmt.Errorf("redisbus: read epoch: %w", err)
	}
	return e, nil
}

// noteEpoch records an epoch a script returned. A different one is adopted
// at once for Epoch, and the delivery goroutine is asked to confirm it with
// Redis and reset the rooms.
func (b *Broker) noteEpoch(e string) {
	if cur := b.epoch.Load(); cur != nil && *cur == e {
		return
	}
	b.epoch.Store(&e)
	select {
	case b.epochCheck <- struct{}{}:
	default:
	}
}

// Publish appends data to the room's history under the next offset and
// publishes it, in one script. Delivery to subscribed nodes, this one
// included, is asynchronous. Data is copied.
func (b *Broker) Publish(ctx context.Context, room string, data []byte) (bus.Event, error) {
	if b.isClosed() {
		return bus.Event{}, bus.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return bus.Event{}, err
	}
	meta, hist := b.roomKeys(room)
	res, err := publishScript.Run(ctx, b.client, []string{b.epochKey, meta, hist},
		rand.Text(), data, b.cfg.historySize, int64(b.cfg.historyTTL/time.Second), b.cfg.prefix+"ch:"+room).Slice()
	if err != nil {
		return bus.Event{}, fmt.Errorf("redisbus: publish to %s: %w", room, err)
	}
	if len(res) != 2 {
		return bus.Event{}, fmt.Errorf("redisbus: publish to %s: unexpected reply of %d elements", room, len(res))
	}
	epoch, _ := res[0].(string)
	offset, _ := res[1].(int64)
	if epoch == "" || offset <= 0 {
		return bus.Event{}, fmt.Errorf("redisbus: publish to %s: malformed reply", room)
	}
	b.noteEpoch(epoch)
	return bus.Event{Room: room, Offset: uint64(offset), Data: bytes.Clone(data)}, nil
}

// History returns the events after since, like the in-process broker: since
// equal to latest is a complete, empty answer; since beyond latest, or older
// than the history holds, is ErrUnrecoverable. It is ErrUnrecoverable too
// when Redis turns out to be in another epoch than the one Epoch returned
// when the call started.
func (b *Broker) History(ctx context.Context, room string, since uint64) ([]bus.Event, uint64, error) {
	if b.isClosed() {
		return nil, 0, bus.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	start := b.Epoch()
	events, latest, epoch, complete, err := b.history(ctx, room, since, false)
	if err != nil {
		return nil, 0, err
	}
	b.noteEpoch(epoch)
	if epoch != start || !complete {
		return nil, latest, bus.ErrUnrecoverable
	}
	return events, latest, nil
}

// history runs historyScript. With tail, an incomplete answer still carries
// the events history holds.
func (b *Broker) history(ctx context.Context, room string, since uint64, tail bool) (events []bus.Event, latest uint64, epoch string, complete bool, err error) {
	arg := int64(-1)
	if since <= maxSafeSince {
		arg = int64(since)
	}
	meta, hist := b.roomKeys(room)
	wantTail := "0"
	if tail {
		wantTail = "1"
	}
	res, err := historyScript.Run(ctx, b.client, []string{b.epochKey, meta, hist}, rand.Text(), arg, wantTail).Slice()
	if err != nil {
		return nil, 0, "", false, fmt.Errorf("redisbus: history of %s: %w", room, err)
	}
	malformed := fmt.Errorf("redisbus: history of %s: malformed reply", room)
	if len(res) < 3 {
		return nil, 0, "", false, malformed
	}
	epoch, _ = res[0].(string)
	l, ok1 := res[1].(int64)
	c, ok2 := res[2].(int64)
	if epoch == "" || !ok1 || !ok2 || l < 0 {
		return nil, 0, "", false, malformed
	}
	latest, complete = uint64(l), c == 1
	if len(res) < 4 {
		return nil, latest, epoch, complete, nil
	}
	payloads, ok := res[3].([]any)
	if !ok || uint64(len(payloads)) > latest || complete && uint64(len(payloads)) != latest-since {
		return nil, 0, "", false, malformed
	}
	// The list holds the last len(payloads) offsets up to latest.
	first := latest - uint64(len(payloads)) + 1
	events = make([]bus.Event, len(payloads))
	for i, p := range payloads {
		s, _ := p.(string)
		events[i] = bus.Event{Room: room, Offset: first + uint64(i), Data: []byte(s)}
	}
	return events, latest, epoch, complete, nil
}

// Epoch is the epoch of Redis's offsets as this node last saw it.
func (b *Broker) Epoch() string { return *b.epoch.Load() }

// SetHandler installs the delivery handler. It also receives the reset
// notifications described in the package documentation.
func (b *Broker) SetHandler(h bus.Handler) {
	if h == nil {
		b.handler.Store(nil)
		return
	}
	b.handler.Store(&h)
}

func (b *Broker) deliver(ev bus.Event) {
	if h := b.handler.Load(); h != nil {
		(*h)(ev)
	}
}

// Subscribe makes the node receive the room's events. It returns once Redis
// has confirmed the subscription, so that every event not yet in the room's
// history when Subscribe returns reaches the handler. It is idempotent.
func (b *Broker) Subscribe(ctx context.Context, name string) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return bus.ErrClosed
	}
	r := b.rooms[name]
	b.mu.Unlock()

	if r == nil {
		// Live delivery continues after the latest offset as of now; what
		// comes before is the caller's to read from history.
		_, latest, epoch, _, err := b.history(ctx, name, maxSafeSince+1, false)
		if err != nil {
			return fmt.Errorf("redisbus: subscribe %s: %w", name, err)
		}
		b.noteEpoch(epoch)
		meta, hist := b.roomKeys(name)
		nr := &room{name: name, channel: b.cfg.prefix + "ch:" + name, metaKey: meta, histKey: hist,
			confirmed: make(chan struct{}), active: true, epoch: epoch, last: latest}

		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return bus.ErrClosed
		}
		var ps *redis.PubSub
		if r = b.rooms[name]; r == nil {
			r = nr
			b.rooms[name] = r
			b.byChan[r.channel] = r
			ps = b.ps
		}
		b.mu.Unlock()
		if ps != nil {
			// On failure the connection is going down: the delivery goroutine
			// subscribes every room when it reconnects, so keep waiting.
			if err := ps.Subscribe(ctx, r.channel); err != nil {
				b.log.Debug("subscribe command failed; waiting for reconnection", "room", name, "err", err)
			}
		}
	}

	select {
	case <-r.confirmed:
		return nil
	case <-ctx.Done():
		b.drop(r)
		return fmt.Errorf("redisbus: subscribe %s: %w", name, ctx.Err())
	case <-b.ctx.Done():
		return bus.ErrClosed
	}
}

// drop forgets r and stops its delivery. It reports whether r was still
// registered.
func (b *Broker) drop(r *room) bool {
	b.mu.Lock()
	registered := b.rooms[r.name] == r
	if registered {
		delete(b.rooms, r.name)
		delete(b.byChan, r.channel)
	}
	ps := b.ps
	b.mu.Unlock()

	r.dmu.Lock()
	r.active = false
	r.dmu.Unlock()
	if registered && ps != nil {
		ctx, cancel := context.WithTimeout(b.ctxOrBackground(), b.cfg.opTimeout)
		defer cancel()
		if err := ps.Unsubscribe(ctx, r.channel); err != nil {
			b.log.Debug("unsubscribe command failed", "room", r.name, "err", err)
		}
	}
	return registered
}

func (b *Broker) ctxOrBackground() context.Context {
	if b.ctx != nil {
		return b.ctx
	}
	return context.Background()
}

// Unsubscribe stops delivery of the room's events. Once it returns, the
// handler is not running for the room and will not be called for it again.
// Telling Redis is best effort: a connection that fails is replaced without
// the room.
func (b *Broker) Unsubscribe(ctx context.Context, name string) error {
	b.mu.Lock()
	r := b.rooms[name]
	b.mu.Unlock()
	if r == nil {
		return nil
	}
	b.drop(r)
	return nil
}

// Ping fails while Redis does not answer, and while the subscriber
// connection is down or failed its last probe.
func (b *Broker) Ping(ctx context.Context) error {
	if b.isClosed() {
		return bus.ErrClosed
	}
	if err := b.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisbus: ping: %w", err)
	}
	b.mu.Lock()
	healthy := b.healthy
	b.mu.Unlock()
	if !healthy {
		return errors.New("redisbus: subscriber connection is not healthy")
	}
	return nil
}

// Close stops the subscriber and the probe, waits for them, and closes the
// Redis client if New created it. Later calls return nil; Publish,
// Subscribe, History and Ping then return bus.ErrClosed.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	ps := b.ps
	b.ps, b.healthy = nil, false
	b.mu.Unlock()

	b.cancel()
	if ps != nil {
		_ = ps.Close()
	}
	b.wg.Wait()
	if b.ownClient {
		if err := b.client.Close(); err != nil {
			return fmt.Errorf("redisbus: close: %w", err)
		}
	}
	return nil
}

// parseMessage splits a published payload "epoch:offset:data".
func parseMessage(payload string) (epoch string, offset uint64, data string, ok bool) {
	epoch, rest, ok1 := strings.Cut(payload, ":")
	off, data, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || epoch == "" {
		return "", 0, "", false
	}
	offset, err := strconv.ParseUint(off, 10, 64)
	if err != nil || offset == 0 {
		return "", 0, "", false
	}
	return epoch, offset, data, true
}
