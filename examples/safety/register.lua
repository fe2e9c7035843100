-- register.lua: KEYS[1]=register key, ARGV[1]=fence, ARGV[2]=value to write (empty: read)
-- The protected resource of the safety suite: a fenced register. It refuses
-- ({0}) a read or a write whose fence is lower than the highest fence it has
-- accepted on any operation; otherwise it raises its fence to the caller's and
-- returns {1, value}: the value read, or the value written. Fences are the
-- lock's (microseconds of the server's clock at most, below 2^53, so a Lua
-- number holds them exactly).
local fence = tonumber(ARGV[1])
local last = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
if fence < last then
  return {0}
end
redis.call('HSET', KEYS[1], 'fence', ARGV[1])
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'value', ARGV[2])
  return {1, ARGV[2]}
end
return {1, redis.call('HGET', KEYS[1], 'value') or '0'}
