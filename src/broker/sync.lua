-- SYNC (after prelude.lua): write this node's absolute count, renew its lease.
-- ARGV[4]: this node's members; ARGV[5]: the group's capacity as this node knows it;
-- ARGV[6]: '1' to announce even an unchanged total.
sweep()
local mine = tonumber(ARGV[4])
write(mine)
local users = total()
local capacity = redis.call('GET', cap_key)
if not capacity then
  capacity = ARGV[5]
  if mine > 0 then redis.call('SET', cap_key, capacity) end
end
return {users, capacity, finish(users, capacity, ARGV[6] == '1')}
