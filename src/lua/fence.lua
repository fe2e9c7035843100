-- The fence of a hold taken without one (a plain SET NX PX), given now
-- while the caller still holds the lock: any later acquisition reserves
-- its fences after this one, so the order of fences is still the order of
-- holds. KEYS[1] lock key, KEYS[2] fencing counter; ARGV[1] token,
-- ARGV[2] fence block size. Returns the first fence of a fresh block, or
-- false if the lock is not held with the token.
if not owns(redis.call('GET', KEYS[1]), ARGV[1]) then
  return false
end
local block = tonumber(ARGV[2])
-- At least the server clock in microseconds, as in acquire.lua: fences
-- never go backwards, even after an empty restart.
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local fence = math.max((tonumber(redis.call('GET', KEYS[2])) or 0) + 1, now_us)
redis.call('SET', KEYS[2], string.format('%.0f', fence + block - 1))
return string.format('%.0f', fence)
