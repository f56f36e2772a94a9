-- Make a full namespace fit its capacity again: evict, in the order given, as many of the
-- given victims as it is over (each one still in the eviction order and still pointing at
-- the exact pointer given for it), announcing each with a 'del' event. Victims another
-- caller evicted first are skipped, so concurrent callers never evict more than the excess.
-- KEYS[1] the namespace's seq   KEYS[2] LRU zset   KEYS[3] LFU zset   KEYS[4] namespace stats
-- KEYS[5..] per victim, three keys: its hash, its feedback list, its exact pointer
--           (the hash again when it had none)
-- ARGV[1] ns   ARGV[2] its channel   ARGV[3] origin   ARGV[4] capacity   ARGV[5] lru|lfu
-- ARGV[6..] the victims' ids
-- Returns {how many entries are still over capacity (0 when it fits), how many it evicted}.
local seq_key, lru, lfu, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ns, channel, origin = ARGV[1], ARGV[2], ARGV[3]
local capacity, eviction = tonumber(ARGV[4]), ARGV[5]
local order = lru
if eviction == 'lfu' then order = lfu end
local excess = redis.call('ZCARD', order) - capacity
local i, evicted = 1, 0
while excess > 0 and ARGV[5 + i] do
  local victim = ARGV[5 + i]
  local vkey, vfb, vx = KEYS[2 + 3 * i], KEYS[3 + 3 * i], KEYS[4 + 3 * i]
  if redis.call('ZSCORE', order, victim) then
    local vpointer = redis.call('HGET', vkey, 'xkey')
    if not vpointer or vpointer == vx then
      redis.call('ZREM', lru, victim)
      redis.call('ZREM', lfu, victim)
      excess = excess - 1
      -- a member whose hash already expired is only removed from the order
      if vpointer then
        if redis.call('GET', vx) == victim then redis.call('DEL', vx) end
        redis.call('DEL', vkey, vfb)
        local vseq = redis.call('INCR', seq_key)
        redis.call('SPUBLISH', channel, cjson.encode(
          {op='del', ns=ns, id=victim, seq=vseq, origin=origin, reason='evicted'}))
        redis.call('HINCRBY', stats, 'evictions', 1)
        evicted = evicted + 1
      end
    end
  end
  i = i + 1
end
if excess < 0 then excess = 0 end
return {excess, evicted}
