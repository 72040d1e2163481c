-- JOIN (after prelude.lua): admit a member unless the group is full.
-- ARGV[4]: this node's members before the join; ARGV[5]: the capacity to install when the
-- group is empty (or lost its capacity): the group's as this node knows it, else the asked.
sweep()
local mine = tonumber(ARGV[4])
local users = total() - tonumber(redis.call('HGET', counts, node) or '0') + mine
local capacity = redis.call('GET', cap_key)
if users == 0 or not capacity then
  capacity = ARGV[5]
  redis.call('SET', cap_key, capacity)
end
local admitted = 0
if capacity == '' or users < tonumber(capacity) then admitted = 1 end
write(mine + admitted)
users = users + admitted
return {admitted, users, capacity, finish(users, capacity, false)}
