-- COUNT, read-only: the members of nodes whose lease still runs, and the capacity.
-- KEYS: counts, leases, capacity (as in prelude.lua).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local users = 0
local pairs_ = redis.call('HGETALL', KEYS[1])
for i = 1, #pairs_, 2 do
  local expiry = redis.call('ZSCORE', KEYS[2], pairs_[i])
  if expiry and tonumber(expiry) > now then users = users + tonumber(pairs_[i + 1]) end
end
return {users, redis.call('GET', KEYS[3]) or ''}
