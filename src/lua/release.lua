-- Delete the lock only if it still holds the caller's token, and tell the
-- waiters: the release is published on a channel named like the lock key.
-- KEYS[1] lock key; ARGV[1] token. Returns 0 if not ours; 1 if deleted,
-- 2 if deleted and someone heard the release (another client waits).
if owns(redis.call('GET', KEYS[1]), ARGV[1]) then
  redis.call('DEL', KEYS[1])
  if redis.call('PUBLISH', KEYS[1], 'released') > 0 then
    return 2
  end
  return 1
end
return 0
