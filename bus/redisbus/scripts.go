package redisbus

import "github.com/redis/go-redis/v9"

// The scripts share a prelude that reads the epoch key, creating it with the
// caller's random candidate (ARGV[1]) when it is missing. Go generates the
// candidate because Lua's math.random is not random enough across Redis
// versions.
const epochPrelude = `
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  redis.call('SET', KEYS[1], ARGV[1])
  epoch = ARGV[1]
end
`

// epochScript returns the current epoch, creating it if missing.
//
// KEYS: epoch. ARGV: candidate epoch.
var epochScript = redis.NewScript(epochPrelude + `
return epoch
`)

// publishScript appends an event and publishes it.
//
// KEYS: epoch, room hash, room history list.
// ARGV: candidate epoch, data, history size, history TTL (seconds), channel.
// Returns {epoch, offset}.
var publishScript = redis.NewScript(epochPrelude + `
local offset
if redis.call('HGET', KEYS[2], 'e') == epoch then
  offset = redis.call('HINCRBY', KEYS[2], 'o', 1)
else
  -- A new room, or one whose offsets belong to an earlier epoch: restart it.
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[2], 'e', epoch, 'o', 1)
  offset = 1
end
redis.call('RPUSH', KEYS[3], ARGV[2])
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[3]), -1)
redis.call('EXPIRE', KEYS[3], ARGV[4])
redis.call('PUBLISH', ARGV[5], epoch .. ':' .. string.format('%d', offset) .. ':' .. ARGV[2])
return {epoch, offset}
`)

// historyScript reads the events after since. The list holds the payloads of
// offsets latest-LLEN+1 .. latest, so the n events after since are its last
// n entries.
//
// KEYS: epoch, room hash, room history list.
// ARGV: candidate epoch, since (-1: latest only), tail ("1": when the list
// does not reach back to since, return what it holds anyway).
// Returns {epoch, latest, complete (1 or 0), [payloads]}.
var historyScript = redis.NewScript(epochPrelude + `
local latest = 0
local meta = redis.call('HMGET', KEYS[2], 'e', 'o')
if meta[1] == epoch then
  latest = tonumber(meta[2])
end
local since = tonumber(ARGV[2])
if since < 0 or since > latest then
  return {epoch, latest, 0}
end
if since == latest then
  return {epoch, latest, 1}
end
local n = latest - since
if redis.call('LLEN', KEYS[3]) < n then
  if ARGV[3] == '1' then
    return {epoch, latest, 0, redis.call('LRANGE', KEYS[3], 0, -1)}
  end
  return {epoch, latest, 0}
end
return {epoch, latest, 1, redis.call('LRANGE', KEYS[3], -n, -1)}
`)
