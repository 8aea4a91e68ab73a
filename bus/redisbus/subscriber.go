package redisbus

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"vigil/bus"
)

// run is the delivery goroutine. It owns the subscriber connection's
// lifecycle and is the only caller of the handler, so a room's events reach
// the handler in order.
func (b *Broker) run() {
	defer b.wg.Done()
	var backoff time.Duration
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	connected := false
	for {
		if !connected {
			if backoff > 0 {
				timer.Reset(backoff)
				select {
				case <-b.ctx.Done():
					return
				case <-timer.C:
				}
			}
			if err := b.connect(); err != nil {
				if b.ctx.Err() != nil {
					return
				}
				backoff = min(max(2*backoff, minBackoff), maxBackoff)
				b.log.Warn("subscriber connection failed", "err", err, "retry_in", backoff)
				continue
			}
			connected = true
		}
		select {
		case <-b.ctx.Done():
			return
		case it := <-b.in:
			if it.err == nil {
				b.handle(it)
				continue
			}
			b.mu.Lock()
			current := it.gen == b.gen && b.ps != nil
			if current {
				b.ps, b.healthy = nil, false
				// A connection that lived a while earns an immediate retry;
				// one that keeps dying backs off.
				if time.Since(b.genAt) > 10*time.Second {
					backoff = 0
				} else {
					backoff = min(max(2*backoff, minBackoff), maxBackoff)
				}
			}
			b.mu.Unlock()
			if current && b.ctx.Err() == nil {
				b.log.Warn("subscriber connection lost; resubscribing and re-syncing rooms", "err", it.err)
				connected = false
			}
		case <-b.epochCheck:
			b.checkEpoch()
		}
	}
}

// connect opens a new subscriber connection subscribed to the probe channel
// and every room, and starts its reader. Confirmations arrive through the
// reader; each room's triggers its re-sync.
func (b *Broker) connect() error {
	ps := b.client.Subscribe(b.ctx)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		_ = ps.Close()
		return bus.ErrClosed
	}
	b.gen++
	gen := b.gen
	b.ps, b.genAt, b.healthy = ps, time.Now(), false
	channels := make([]string, 0, 1+len(b.rooms))
	channels = append(channels, b.probeChannel)
	for _, r := range b.rooms {
		channels = append(channels, r.channel)
	}
	b.mu.Unlock()
	b.generations.Add(1)

	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.opTimeout)
	err := ps.Subscribe(ctx, channels...)
	cancel()
	if err != nil {
		b.mu.Lock()
		if b.ps == ps {
			b.ps = nil
		}
		b.mu.Unlock()
		_ = ps.Close()
		return err
	}
	b.wg.Add(1)
	go b.read(gen, ps)
	return nil
}

// read receives from one subscriber connection until it fails. Probe
// replies are noted here rather than queued, so a busy delivery goroutine
// does not look like a dead connection.
func (b *Broker) read(gen uint64, ps *redis.PubSub) {
	defer b.wg.Done()
	for {
		msg, err := ps.Receive(b.ctx)
		if err != nil {
			// go-redis may have reconnected on its own, silently losing
			// messages: this connection is done either way.
			_ = ps.Close()
		} else if m, ok := msg.(*redis.Message); ok && m.Channel == b.probeChannel {
			if seq, err := strconv.ParseUint(m.Payload, 10, 64); err == nil {
				b.noteProbe(seq)
			}
			continue
		}
		select {
		case b.in <- item{gen: gen, msg: msg, err: err}:
		case <-b.ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

func (b *Broker) noteProbe(seq uint64) {
	for {
		cur := b.probeSeen.Load()
		if seq <= cur || b.probeSeen.CompareAndSwap(cur, seq) {
			break
		}
	}
	select {
	case b.probeWake <- struct{}{}:
	default:
	}
}

func (b *Broker) handle(it item) {
	switch m := it.msg.(type) {
	case *redis.Subscription:
		if m.Kind != "subscribe" {
			return
		}
		if m.Channel == b.probeChannel {
			b.mu.Lock()
			if it.gen == b.gen && b.ps != nil {
				b.healthy = true
			}
			b.mu.Unlock()
			// The connection is new: Redis may have lost its data since
			// the last one.
			b.checkEpoch()
			return
		}
		r := b.roomByChannel(m.Channel)
		if r == nil {
			return
		}
		if !b.sync(r) {
			return
		}
		r.confirmOnce.Do(func() { close(r.confirmed) })
	case *redis.Message:
		b.onMessage(m)
	}
}

func (b *Broker) roomByChannel(ch string) *room {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byChan[ch]
}

func (b *Broker) activeRooms() []*room {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*room, 0, len(b.rooms))
	for _, r := range b.rooms {
		out = append(out, r)
	}
	return out
}

// onMessage delivers a live event, filling a gap from history first and
// dropping duplicates.
func (b *Broker) onMessage(m *redis.Message) {
	r := b.roomByChannel(m.Channel)
	if r == nil {
		return
	}
	epoch, offset, data, ok := parseMessage(m.Payload)
	if !ok {
		b.log.Warn("dropping malformed message", "room", r.name)
		return
	}
	if epoch != b.delivEpoch {
		// Either Redis moved to a new epoch, or this is a stale message of
		// an older one: ask Redis which.
		b.checkEpoch()
		if epoch != b.delivEpoch {
			return
		}
	}
	r.dmu.Lock()
	if !r.active {
		r.dmu.Unlock()
		return
	}
	if r.epoch != b.delivEpoch {
		r.epoch, r.last = b.delivEpoch, 0
	}
	switch {
	case offset <= r.last:
		r.dmu.Unlock()
	case offset == r.last+1:
		b.deliver(bus.Event{Room: r.name, Offset: offset, Data: []byte(data)})
		r.last = offset
		r.dmu.Unlock()
	default:
		r.dmu.Unlock()
		// History holds the event before it is published, so it covers the
		// gap and this event.
		b.sync(r)
	}
}

// sync delivers the room's events after the last one delivered, from
// history. On a Redis error it drops the subscriber connection, whose
// replacement re-syncs every room, and reports false.
func (b *Broker) sync(r *room) bool {
	for range 3 {
		r.dmu.Lock()
		active, last := r.active, r.last
		if r.epoch != b.delivEpoch {
			last = 0
		}
		r.dmu.Unlock()
		if !active {
			return true
		}
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.opTimeout)
		events, latest, epoch, complete, err := b.history(ctx, r.name, last, true)
		cancel()
		if err != nil {
			if b.ctx.Err() == nil {
				b.log.Warn("re-sync failed; reconnecting", "room", r.name, "err", err)
				b.restartCurrent()
			}
			return false
		}
		if epoch != b.delivEpoch {
			b.reset(epoch)
			continue // reset synced the rooms; make sure of this one
		}
		r.dmu.Lock()
		if !r.active {
			r.dmu.Unlock()
			return true
		}
		if r.epoch != epoch {
			r.epoch, r.last = epoch, 0
		}
		if !complete && r.last != latest {
			// Some events this node never delivered are gone from history
			// (or the room's offsets went backwards): the room resets, and
			// delivery goes on with what history still holds.
			b.log.Warn("events missed by this node are no longer in history; resetting the room", "room", r.name,
				"last_delivered", r.last, "latest", latest)
			b.deliver(bus.Event{Room: r.name})
			r.last = latest - uint64(len(events))
		}
		for _, ev := range events {
			if ev.Offset == r.last+1 {
				b.deliver(ev)
				r.last = ev.Offset
			}
		}
		r.dmu.Unlock()
		return true
	}
	return true
}

// checkEpoch reads the epoch from Redis and resets the rooms if it changed.
func (b *Broker) checkEpoch() {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.opTimeout)
	e, err := b.fetchEpoch(ctx)
	cancel()
	if err != nil {
		if b.ctx.Err() == nil {
			b.log.Warn("epoch check failed; reconnecting", "err", err)
			b.restartCurrent()
		}
		return
	}
	if e != b.delivEpoch {
		b.reset(e)
		return
	}
	b.epoch.Store(&e)
}

// reset adopts a new epoch: the handler gets the reset notification, then
// every room's events of the new epoch from offset 1.
func (b *Broker) reset(epoch string) {
	b.log.Warn("Redis epoch changed (its data was lost); every room restarts", "epoch", epoch)
	b.delivEpoch = epoch
	b.epoch.Store(&epoch)
	b.deliver(bus.Reset)
	rooms := b.activeRooms()
	for _, r := range rooms {
		r.dmu.Lock()
		r.epoch, r.last = epoch, 0
		r.dmu.Unlock()
	}
	for _, r := range rooms {
		if b.delivEpoch != epoch {
			return // a nested reset took over
		}
		if !b.sync(r) {
			return
		}
	}
}

// restartCurrent closes the current subscriber connection; its reader then
// reports the failure and the delivery goroutine reconnects.
func (b *Broker) restartCurrent() {
	b.mu.Lock()
	gen := b.gen
	b.mu.Unlock()
	b.restart(gen)
}

// restart closes generation gen's connection, if it is still the current
// one, and reports whether it did.
func (b *Broker) restart(gen uint64) bool {
	b.mu.Lock()
	if b.gen != gen || b.ps == nil {
		b.mu.Unlock()
		return false
	}
	ps := b.ps
	b.healthy = false
	b.mu.Unlock()
	_ = ps.Close()
	return true
}

// probe checks that the subscriber connection still receives: it publishes
// a sequence number on the node's probe channel and waits for it to come
// back.
func (b *Broker) probe() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.probeInterval)
	defer t.Stop()
	var seq uint64
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		b.mu.Lock()
		gen, up, healthy, age := b.gen, b.ps != nil, b.healthy, time.Since(b.genAt)
		b.mu.Unlock()
		if !up {
			continue // reconnecting
		}
		if !healthy && age < b.cfg.probeTimeout {
			continue // the new connection's subscriptions are not confirmed yet
		}
		seq++
		ok, err := b.probeOnce(seq)
		switch {
		case b.ctx.Err() != nil:
			return
		case err != nil:
			// Redis itself does not answer: not ready, and the reader will
			// see the connection fail or a later probe will.
			b.setHealthy(gen, false)
			b.log.Debug("probe publish failed", "err", err)
		case ok:
			b.setHealthy(gen, true)
		case len(b.in) > cap(b.in)/2:
			// The delivery goroutine is behind; the reader is blocked on it,
			// not on a dead connection.
		default:
			if b.restart(gen) {
				b.log.Warn("subscriber connection failed its probe; reconnecting", "timeout", b.cfg.probeTimeout)
			}
		}
	}
}

func (b *Broker) probeOnce(seq uint64) (bool, error) {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.probeTimeout)
	defer cancel()
	if err := b.client.Publish(ctx, b.probeChannel, strconv.FormatUint(seq, 10)).Err(); err != nil {
		return false, err
	}
	for b.probeSeen.Load() < seq {
		select {
		case <-b.probeWake:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return false, nil
			}
			return false, ctx.Err()
		}
	}
	return true, nil
}

func (b *Broker) setHealthy(gen uint64, ok bool) {
	b.mu.Lock()
	if b.gen == gen && b.ps != nil {
		b.healthy = ok
	}
	b.mu.Unlock()
}
