-- The start of join.lua and sync.lua (src/broker/redis.py joins them when it loads them).
-- KEYS: counts (HASH node -> members), leases (ZSET node -> expiry, ms on Redis's clock),
-- capacity (STRING; '' for none). ARGV[1..3]: node, lease ms, channel.
-- Redis 6.2 refuses writes after TIME unless the script replicates its effects.
redis.replicate_commands()
local counts, leases, cap_key = KEYS[1], KEYS[2], KEYS[3]
local node, lease, channel = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function total()
  local sum = 0
  for _, n in ipairs(redis.call('HVALS', counts)) do sum = sum + tonumber(n) end
  return sum
end

local before = total()

local function sweep()
  for _, dead in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now)) do
    redis.call('HDEL', counts, dead)
  end
  redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
end

local function write(own)
  if own > 0 then
    redis.call('HSET', counts, node, own)
    redis.call('ZADD', leases, now + lease, node)
  else
    redis.call('HDEL', counts, node)
    redis.call('ZREM', leases, node)
  end
end

-- Expire or forget the group, announce a changed total; returns the ms until the
-- earliest lease runs out (-1: none left). The announcement is the two numbers only,
-- "<users> <capacity or ''>": the relay (src/broker/redis.py) makes the frame of them.
local function finish(users, capacity, announce)
  if users == 0 then
    redis.call('DEL', counts, leases, cap_key)
  else
    for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, 2 * lease) end
  end
  if users ~= before or announce then
    redis.call('PUBLISH', channel, users .. ' ' .. capacity)
  end
  local first = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')
  if #first == 0 then return -1 end
  return tonumber(first[2]) - now
end
