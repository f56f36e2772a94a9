-- Delete one entry, its pointer, its feedback and its eviction scores; announce it.
-- KEYS[1] the namespace's seq   KEYS[2] the entry's hash   KEYS[3] LRU zset   KEYS[4] LFU zset
-- KEYS[5] its feedback list   KEYS[6] its exact pointer, as read from the hash by the caller
-- ARGV[1] ns   ARGV[2] id   ARGV[3] its channel   ARGV[4] origin
-- Returns the delete's seq, 0 when there is no such entry, -1 when its pointer is not the
-- one given (the caller reads again and retries).
local ekey = KEYS[2]
local ns, id, channel, origin = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', ekey) == 0 then return 0 end
if redis.call('HGET', ekey, 'xkey') ~= KEYS[6] then return -1 end
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
if redis.call('GET', KEYS[6]) == id then redis.call('DEL', KEYS[6]) end
redis.call('DEL', ekey, KEYS[5])
local seq = redis.call('INCR', KEYS[1])
redis.call('SPUBLISH', channel, cjson.encode({op='del', ns=ns, id=id, seq=seq, origin=origin}))
return seq
