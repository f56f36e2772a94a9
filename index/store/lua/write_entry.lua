-- Store one entry as one atomic step: the namespace's next seq, the hash (with that seq),
-- its EXPIRE, the exact pointer, the LRU/LFU scores and the 'add' event (SPUBLISH on the
-- namespace's channel; its first write also announces the namespace, for replicas to
-- subscribe to it). An entry the exact pointer
-- names is replaced in place (same id). Room in a full namespace is made afterwards by
-- evict_entries.lua, which the caller runs with the victims it read.
-- KEYS[1] the namespace's seq       KEYS[2] exact pointer      KEYS[3] LRU zset
-- KEYS[4] LFU zset           KEYS[5] the new entry's hash
-- KEYS[6] the hash of the entry the pointer named when read (= KEYS[5] when none)
-- ARGV[1] ns      ARGV[2] new id      ARGV[3] id the pointer named when read ('' none)
-- ARGV[4] ttl s   ARGV[5] its channel ARGV[6] origin    ARGV[7] now
-- ARGV[8] the namespaces channel     ARGV[9..] field, value pairs of the hash
-- Returns {id, seq}, or {'retry'} when the pointer changed since it was read.
local seq_key, xkey, lru, lfu = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ns, id, seen = ARGV[1], ARGV[2], ARGV[3]
local ttl, channel, origin, now = tonumber(ARGV[4]), ARGV[5], ARGV[6], tonumber(ARGV[7])
local ekey = KEYS[5]

local pointer = redis.call('GET', xkey)
if (pointer or '') ~= seen then return {'retry'} end
if seen ~= '' and redis.call('EXISTS', KEYS[6]) == 1 then
  id = seen
  ekey = KEYS[6]
end

redis.call('ZADD', lru, now, id)
-- LFU score: uses (the write is the first) + recency as a fraction, so ties go oldest first
redis.call('ZADD', lfu, 1 + now / 1e10, id)
local seq = redis.call('INCR', seq_key)
redis.call('DEL', ekey)
redis.call('HSET', ekey, 'seq', seq, 'xkey', xkey, 'ns', ns, unpack(ARGV, 9))
if ttl > 0 then
  redis.call('EXPIRE', ekey, ttl)
  redis.call('SET', xkey, id, 'EX', ttl)
else
  redis.call('SET', xkey, id)
end
redis.call('SPUBLISH', channel, cjson.encode({op='add', ns=ns, id=id, seq=seq, origin=origin}))
if seq == 1 then redis.call('PUBLISH', ARGV[8], ns) end
return {id, seq}
