-- The holder's process has more threads waiting for the lock but has handed
-- it on locally for as long as its fairness bound allows. If other clients
-- wait for the lock (they subscribe to its release channel), release it and
-- tell them; otherwise keep it, restart the lease and reserve a new block of
-- fences for further local hand-offs.
-- KEYS[1] lock key, KEYS[2] fencing counter.
-- ARGV[1] token, ARGV[2] lease in milliseconds, ARGV[3] fence block size,
-- ARGV[4] (optional) how many subscribers the caller counted itself: in a
-- Redis Cluster waiters may listen on any node, and NUMSUB only counts this
-- node's, so the cluster store sums NUMSUB over all nodes and passes it here.
-- Returns {0} if not ours, {1} if released, {2, fence} if kept.
if not owns(redis.call('GET', KEYS[1]), ARGV[1]) then
  return {0}
end
local waiting = tonumber(ARGV[4]) or redis.call('PUBSUB', 'NUMSUB', KEYS[1])[2]
if waiting > 0 then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', KEYS[1], 'released')
  return {1}
end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local fence = math.max((tonumber(redis.call('GET', KEYS[2])) or 0) + 1, now_us)
redis.call('SET', KEYS[2], string.format('%.0f', fence + tonumber(ARGV[3]) - 1))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {2, string.format('%.0f', fence)}
