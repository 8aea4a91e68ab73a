// Package redisbus is the Redis implementation of bus.Broker, for several
// Vigil nodes sharing one Redis (standalone, Sentinel, or Cluster).
//
// # Publishing
//
// Publish runs one Lua script that, atomically: reads (or creates, with
// SET-if-missing semantics) the broker-wide epoch key; increments the room's
// offset (a hash holding the epoch the offsets belong to and the latest
// offset); appends the data to the room's history list, trims it to the
// configured size and refreshes its TTL; and PUBLISHes "epoch:offset:data" on
// the room's channel. Offsets are therefore gap-free per room whatever the
// number of nodes, and an event is in history before any node receives it.
//
// # Keys
//
// With the default prefix "vigil:bus:":
//
//	vigil:bus:epoch          string  the epoch; no TTL
//	vigil:bus:{<room>}:m     hash    e = epoch of the offsets, o = latest offset; no TTL
//	vigil:bus:{<room>}:h     list    the room's last N event payloads; TTL refreshed on publish
//	vigil:bus:ch:<room>      channel the room's events
//	vigil:bus:probe:<node>   channel the node's liveness probe
//
// The offset hash never expires (a few dozen bytes per room, and rooms are a
// small, slowly growing set): if it expired, a room would restart at 1 under
// the same epoch and a client's old offset could be "recovered" into a
// different sequence. The history list expires when a room is abandoned; a
// missing or shortened list only makes History return ErrUnrecoverable.
// Redis must not evict keys without a TTL: use maxmemory-policy noeviction or
// a volatile-* policy.
//
// # Epoch and the reset notification
//
// The epoch key is created with a random value by whichever script finds it
// missing, so after Redis loses its data (a restart without persistence, a
// failover to an empty replica) the first script run creates a new epoch and
// every room's offsets restart at 1 under it. A room hash that carries another
// epoch than the current one is also restarted, so losing the epoch key alone
// is detected too.
//
// A node caches the epoch (Epoch). When a script or the subscriber's
// reconnection finds a different one, the node adopts it and calls the
// handler, on its delivery goroutine and before any event of the new epoch,
// with a reset notification:
//
//	bus.Reset == bus.Event{Room: "", Offset: 0, Data: nil}
//
// It means: the epoch changed and every room restarted; offsets held from the
// previous epoch are worthless, so sessions must be closed with a reconnect
// code (clients then subscribe again, get recovered:false and a snapshot).
// After it, the handler receives every subscribed room's events of the new
// epoch from offset 1 on.
//
// A room-scoped variant is delivered when the node missed events of one room
// that are no longer in its history (the subscriber was disconnected for
// longer than the history covers, or the history expired):
//
//	bus.Event{Room: room, Offset: 0, Data: nil}
//
// It means: events of this room were lost for this node; its sessions must
// be closed with a reconnect code. Delivery of the room then continues, in
// order, with the events history still holds and then live ones. Real events
// never have offset 0, so Event.IsReset (Offset == 0) tells both apart from
// events.
//
// History called with a cached epoch that turns out to be stale returns
// bus.ErrUnrecoverable (the caller's since was checked against the old
// epoch).
//
// # Subscriber
//
// Each node keeps one go-redis PubSub connection for all its rooms. Its own
// goroutine reads it with Receive (never Channel, whose buffer silently drops)
// and hands messages to a single delivery goroutine, which calls the handler
// in offset order per room. Go-redis pub/sub is at-most-once, so the node does
// not trust it:
//
//   - every live message carries its offset; a message beyond the room's
//     last delivered offset + 1 makes the node read the missing events from
//     history first, and a message at or below it is a duplicate and dropped;
//   - a probe message is PUBLISHed on the node's own channel every probe
//     interval through the ordinary connection pool, and must come back on
//     the subscriber connection within the probe timeout; if it does not (a
//     silently dead connection), or if Receive fails (killed connection,
//     Redis restart, output-buffer limit), the node closes the PubSub, opens
//     a new one, resubscribes every active room and re-syncs each from
//     history: it delivers every event after the last offset it delivered for
//     the room, so the hub misses nothing;
//   - Subscribe returns only once Redis confirmed the subscription (seen by
//     Receive) and the room was synced, so a hub that reads history after
//     Subscribe returns has no hole between history and live events.
//
// Ping, used by /readyz, fails while Redis does not answer or while the
// subscriber connection is not confirmed healthy.
//
// # Sentinel
//
// A URL with a master_name query parameter selects a Sentinel-managed master
// (redis.ParseFailoverURL / redis.NewFailoverClient):
//
//	redis://:password@sentinel1:26379?master_name=mymaster&addr=sentinel2:26379&addr=sentinel3:26379
//
// After a failover the subscriber connection breaks, the node reconnects to
// the new master and re-syncs; if the new master lost data, the epoch check
// detects it. Alternatively pass any client with WithClient.
//
// # Cluster
//
// Build a *redis.ClusterClient (redis.ParseClusterURL + redis.NewClusterClient)
// and pass it with WithClient. The bus uses classic PUBLISH/SUBSCRIBE, which
// Redis Cluster broadcasts to every shard, so the node's single subscriber
// connection may sit on any shard. Sharded pub/sub (SPUBLISH/SSUBSCRIBE) is
// not used: go-redis v9.23 opens the sharded subscriber connection to one
// shard only (go-redis#3133), so a node would miss the rooms of other shards.
//
// Every script touches the epoch key together with the room's keys, which on
// Cluster must share one hash slot. Room keys carry a {room} hash tag, but
// detecting data loss needs the epoch key and the room's offsets to be lost
// together, which only one slot guarantees; so with a ClusterClient and a
// prefix without a hash tag, New wraps the prefix in one ("{vigil:bus}:"),
// and Redis uses the first tag: all bus keys live on one shard (and its
// replicas). The bus's data is bounded (rooms x history size), and pub/sub
// traffic reaches every shard anyway, so this costs little; the other Vigil
// keys (caches, limits) still spread over the cluster.
package redisbus
