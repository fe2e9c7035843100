-- Take the lock, or learn who holds it, in one atomic step.
-- KEYS[1] lock key (holds the owner's token), KEYS[2] fencing counter.
-- ARGV[1] token, ARGV[2] lease in milliseconds, ARGV[3] fence block size,
-- ARGV[4] the value to write (the token and the holder's description).
-- Returns {1, fence} when the caller holds the lock, {0, pttl} otherwise.
--
-- Each acquisition reserves a block of fences [fence, fence + block): the
-- owner's process may hand the lease to its own waiting threads, each with
-- the next fence of the block, without a round trip. The counter stores the
-- last fence of the block, so later acquisitions stay above all of them.
local block = tonumber(ARGV[3])
local current = redis.call('GET', KEYS[1])
if owns(current, ARGV[1]) then
  -- A retry of an acquire whose reply was lost: it is ours; restart the lease.
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  local last = tonumber(redis.call('GET', KEYS[2])) or (block - 1)
  return {1, string.format('%.0f', last - block + 1)}
end
if current then
  return {0, redis.call('PTTL', KEYS[1])}
end
-- The fence never goes backwards, even if Redis restarted empty and lost the
-- counter: it is at least the server clock in microseconds.
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local fence = math.max((tonumber(redis.call('GET', KEYS[2])) or 0) + 1, now_us)
redis.call('SET', KEYS[2], string.format('%.0f', fence + block - 1))
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[2])
return {1, string.format('%.0f', fence)}
