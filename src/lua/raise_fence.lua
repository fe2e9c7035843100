-- Redlock's second phase: while the caller still holds the lock on this node,
-- make sure the node's fencing counter is at least the fence the caller took
-- (the largest of its majority), so that any later majority, which shares a
-- node with this one, hands out a larger fence.
-- KEYS[1] lock key, KEYS[2] fencing counter; ARGV[1] token, ARGV[2] floor.
-- Returns 1 if raised (or already higher), 0 if the lock is not ours here.
if not owns(redis.call('GET', KEYS[1]), ARGV[1]) then
  return 0
end
local floor = tonumber(ARGV[2])
if (tonumber(redis.call('GET', KEYS[2])) or 0) < floor then
  redis.call('SET', KEYS[2], string.format('%.0f', floor))
end
return 1
