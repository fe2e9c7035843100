-- share_extend.lua: restart the lease of a share of a read-write lock or
-- semaphore, only if the caller still holds it.
-- KEYS[1] holder set (see share_acquire.lua); ARGV[1] role, ARGV[2] token,
-- ARGV[3] lease in milliseconds. Returns 1 if extended, 0 if not held.
local member = ARGV[1] .. ':' .. ARGV[2]
local ttl = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], member)
if score and tonumber(score) > now then
  redis.call('ZADD', KEYS[1], now + ttl, member)
  if redis.call('PTTL', KEYS[1]) < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
  return 1
end
return 0
