-- fair_acquire.lua: take a FIFO-fair lock, or take (or keep) a place in its
-- line and learn how long to wait, in one atomic step.
-- KEYS[1] lock key (as acquire.lua), KEYS[2] fencing counter, KEYS[3] the
-- line (member = token, score = arrival in server µs), KEYS[4] until when
-- each place is kept (member = token, score = server ms).
-- ARGV[1] token, ARGV[2] lease in milliseconds, ARGV[3] fence block size,
-- ARGV[4] the value to write (token and holder description).
-- Returns {1, fence} when the caller holds the lock, {0, ms} otherwise (ms:
-- how long until the holder's lease or the head's place runs out; -1 if
-- unknown).
--
-- The lock goes to the head of the line only. A waiter keeps its place by
-- asking again before it runs out (each attempt keeps it for the wait ahead
-- plus two leases); a dead waiter's place runs out and the line moves on.
-- At most 100 run-out places are removed per call, so the cost per call
-- stays bounded however many waiters died.
local token = ARGV[1]
local ttl = tonumber(ARGV[2])
local block = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local gone = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 100)
for _, w in ipairs(gone) do
  redis.call('ZREM', KEYS[3], w)
  redis.call('ZREM', KEYS[4], w)
end

local current = redis.call('GET', KEYS[1])
if owns(current, token) then
  -- A retry of an acquire whose reply was lost: it is ours.
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  local last = tonumber(redis.call('GET', KEYS[2])) or (block - 1)
  return {1, string.format('%.0f', last - block + 1)}
end
local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
if not current and (not head or head == token) then
  redis.call('ZREM', KEYS[3], token)
  redis.call('ZREM', KEYS[4], token)
  local fence = math.max((tonumber(redis.call('GET', KEYS[2])) or 0) + 1, now_us)
  redis.call('SET', KEYS[2], string.format('%.0f', fence + block - 1))
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[2])
  return {1, string.format('%.0f', fence)}
end
local wait = -1
if current then
  wait = redis.call('PTTL', KEYS[1])
else
  -- Free, but another waiter is ahead: it was told; wait for it, or for
  -- its place to run out if it died.
  local kept = redis.call('ZSCORE', KEYS[4], head)
  if kept then
    wait = math.max(tonumber(kept) - now, 0)
  end
end
redis.call('ZADD', KEYS[3], 'NX', now_us, token)
local keep = math.max(wait, 0) + 2 * ttl
redis.call('ZADD', KEYS[4], now + keep, token)
for i = 3, 4 do
  if redis.call('PTTL', KEYS[i]) < keep then
    redis.call('PEXPIRE', KEYS[i], keep)
  end
end
return {0, wait}
