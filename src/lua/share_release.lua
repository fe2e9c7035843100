-- share_release.lua: give back a share of a read-write lock or semaphore,
-- and tell the waiters when it may let one of them in.
-- KEYS[1] holder set, KEYS[2] waiting writers (see share_acquire.lua).
-- ARGV[1] role ('r', 'w' or 'p'), ARGV[2] token.
-- Returns 1 if the share was held (it is given back), 0 if not. A writer's
-- place among the waiting writers goes too (a writer that gave up).
local role, token = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZREM', KEYS[1], role .. ':' .. token)
-- A reader's release lets nobody in unless it was the last reader.
local wake = held == 1 and (role ~= 'r' or redis.call('EXISTS', KEYS[1]) == 0)
if role == 'w' and redis.call('ZREM', KEYS[2], token) == 1 then
  -- The last waiting writer gave up: the readers it held back may go.
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('EXISTS', KEYS[2]) == 0 then
    wake = true
  end
end
if wake then
  redis.call('PUBLISH', KEYS[1], 'released')
end
return held
