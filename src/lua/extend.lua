-- Restart the lease only if the lock still holds the caller's token.
-- KEYS[1] lock key; ARGV[1] token, ARGV[2] lease in milliseconds.
-- Returns 1 if extended, 0 if not ours.
if owns(redis.call('GET', KEYS[1]), ARGV[1]) then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
