-- fair_release.lua: release a FIFO-fair lock, or give up a place in its
-- line, and tell the waiters when the next in line may go.
-- KEYS[1] lock key, KEYS[2] the line, KEYS[3] until when places are kept
-- (see fair_acquire.lua); ARGV[1] token.
-- Returns 1 if the lock was held with the token (it is deleted), 0 if not.
-- Publishes 'to:<token>' for the next in line, or 'released' (waking
-- everybody) when the line is empty.
local token = ARGV[1]
local was_head = redis.call('ZRANGE', KEYS[2], 0, 0)[1] == token
redis.call('ZREM', KEYS[2], token)
redis.call('ZREM', KEYS[3], token)

-- Only the head of the line may take the lock: wake it alone, after
-- dropping heads whose places ran out (at most 100, as fair_acquire.lua).
local function tell_next()
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  for _ = 1, 100 do
    local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
    if not head then
      break
    end
    local kept = tonumber(redis.call('ZSCORE', KEYS[3], head))
    if kept and kept > now then
      redis.call('PUBLISH', KEYS[1], 'to:' .. head)
      return
    end
    redis.call('ZREM', KEYS[2], head)
    redis.call('ZREM', KEYS[3], head)
  end
  redis.call('PUBLISH', KEYS[1], 'released')
end

if owns(redis.call('GET', KEYS[1]), token) then
  redis.call('DEL', KEYS[1])
  tell_next()
  return 1
end
if was_head and redis.call('EXISTS', KEYS[1]) == 0 then
  -- The head gave up while the lock was free: the next may go.
  tell_next()
end
return 0
