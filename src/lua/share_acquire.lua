-- share_acquire.lua: take a share of a read-write lock or a semaphore, or
-- learn how long until the share in the way runs out, in one atomic step.
-- KEYS[1] holder set (member = role, ':' and token; score = lease deadline
-- in server milliseconds), KEYS[2] fencing counter, KEYS[3] waiting writers
-- (member = token; score = until when the writer's place is kept).
-- ARGV[1] role: 'r' read, 'w' write, 'p' permit; ARGV[2] token;
-- ARGV[3] lease in milliseconds; ARGV[4] fence block size;
-- ARGV[5] permits (role 'p' only).
-- Returns {1, fence} when the caller holds the share; {0, ms} when not, ms
-- being how long until the share in the way runs out (-1: unknown);
-- {-1, what} when the name is in use by another kind of lock.
local role, token = ARGV[1], ARGV[2]
local member = role .. ':' .. token
local ttl = tonumber(ARGV[3])
local block = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- The shares and writers' places whose holders stopped renewing go first:
-- a crashed holder frees its own share, never anybody else's.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)

local function grant()
  redis.call('ZADD', KEYS[1], now + ttl, member)
  if redis.call('PTTL', KEYS[1]) < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
  if role == 'w' then
    redis.call('ZREM', KEYS[3], token)
  end
  -- Fences as the plain lock takes them: never backwards, even after an
  -- empty restart, and a block at a time.
  local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local fence = math.max((tonumber(redis.call('GET', KEYS[2])) or 0) + 1, now_us)
  redis.call('SET', KEYS[2], string.format('%.0f', fence + block - 1))
  return {1, string.format('%.0f', fence)}
end

-- Milliseconds until the share at `index` of the holder set (0: the first
-- to run out, -1: the last) runs out; -1 when there is none.
local function left(key, index)
  local s = redis.call('ZRANGE', key, index, index, 'WITHSCORES')
  if s[2] then
    return math.max(tonumber(s[2]) - now, 0)
  end
  return -1
end

if redis.call('ZSCORE', KEYS[1], member) then
  -- A retry of an acquire whose reply was lost: ours. Restart the lease;
  -- the fence of the lost reply was never seen, so a new one is as good.
  return grant()
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
if first then
  local theirs = string.sub(first, 1, 1) == 'p'
  if theirs ~= (role == 'p') then
    return {-1, theirs and 'semaphore' or 'read-write lock'}
  end
end
if role == 'p' then
  if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[5]) then
    return grant()
  end
  return {0, left(KEYS[1], 0)}
end
if role == 'r' then
  if first and string.sub(first, 1, 1) == 'w' then
    return {0, left(KEYS[1], 0)}
  end
  if redis.call('EXISTS', KEYS[3]) == 1 then
    -- A writer waits: new readers queue behind it, so writers never starve.
    return {0, math.max(left(KEYS[1], -1), left(KEYS[3], -1))}
  end
  return grant()
end
-- A writer: alone, or it takes a place that holds new readers back, kept
-- for the wait ahead plus two leases (it asks again before then).
if not first then
  return grant()
end
local wait = left(KEYS[1], -1)
local keep = wait + 2 * ttl
redis.call('ZADD', KEYS[3], now + keep, token)
if redis.call('PTTL', KEYS[3]) < keep then
  redis.call('PEXPIRE', KEYS[3], keep)
end
return {0, wait}
