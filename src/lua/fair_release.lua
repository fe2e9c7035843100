-- fair_release.lua: release a FIFO-fair lock, or give up a place in its
-- line, and tell the waiters when the next in line may go.
-- KEYS[1] lock key, KEYS[2] the line, KEYS[3] until when places are kept
-- (see fair_acquire.lua); ARGV[1] token.
-- Returns 1 if the lock was held with the token (it is deleted), 0 if not.
local token = ARGV[1]
local was_head = redis.call('ZRANGE', KEYS[2], 0, 0)[1] == token
redis.call('ZREM', KEYS[2], token)
redis.call('ZREM', KEYS[3], token)
if owns(redis.call('GET', KEYS[1]), token) then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', KEYS[1], 'released')
  return 1
end
if was_head and redis.call('EXISTS', KEYS[1]) == 0 then
  -- The head gave up while the lock was free: the next may go.
  redis.call('PUBLISH', KEYS[1], 'released')
end
return 0
