-- Extend a coalescing lock's life only if this caller still holds it (a leader's heartbeat).
-- KEYS[1] the lock   ARGV[1] the holder's token   ARGV[2] its new time to live (ms)
-- Returns 1 when extended, 0 when someone else holds it (or nobody).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
