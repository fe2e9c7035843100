-- share_release.lua: give back a share of a read-write lock or semaphore,
-- and tell the waiters when it may let one of them in.
-- KEYS[1] holder set, KEYS[2] waiting writers (see share_acquire.lua).
-- ARGV[1] role ('r', 'w' or 'p'), ARGV[2] token.
-- Returns 1 if the share was held (it is given back), 0 if not. A writer's
-- place among the waiting writers goes too (a writer that gave up).
-- Publishes 'to:<token>' to wake one waiting writer alone, 'released' to
-- wake every waiter, or nothing when nobody new can go in.
local role, token = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZREM', KEYS[1], role .. ':' .. token)
-- A reader's release lets nobody in unless it was the last reader.
local wake = held == 1 and (role ~= 'r' or redis.call('EXISTS', KEYS[1]) == 0)
if role == 'w' and redis.call('ZREM', KEYS[2], token) == 1 then
  -- A writer that gave up: the readers it held back may go, or another
  -- waiting writer.
  wake = true
end
if wake then
  if role ~= 'p' then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
    -- While writers wait no reader may go in: wake one writer, the one
    -- that asked last (surely alive), and only when the set is free.
    local writer = redis.call('ZRANGE', KEYS[2], -1, -1)[1]
    if writer then
      if redis.call('EXISTS', KEYS[1]) == 0 then
        redis.call('PUBLISH', KEYS[1], 'to:' .. writer)
      end
      return held
    end
  end
  redis.call('PUBLISH', KEYS[1], 'released')
end
return held
