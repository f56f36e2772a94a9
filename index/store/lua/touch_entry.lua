-- What HITs do to an entry: count them, refresh its LRU/LFU scores, apply its TTL policy
-- (sliding: restart the TTL; adaptive: ttl x (1 + log2(1 + hits)), at most ttl_max) to the
-- hash and its exact pointer. An entry that is gone is left gone.
-- KEYS[1] the entry's hash   KEYS[2] LRU zset   KEYS[3] LFU zset   KEYS[4] its exact pointer
-- ARGV[1] hits to add   ARGV[2] now (epoch s)   ARGV[3] the entry's id
-- Returns its hit count, 0 when it is gone.
local ekey, lru, lfu, xkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('EXISTS', ekey) == 0 then return 0 end
local now, id = tonumber(ARGV[2]), ARGV[3]
local total = redis.call('HINCRBY', ekey, 'hits', ARGV[1])
redis.call('HSET', ekey, 'last_hit', now)
redis.call('ZADD', lru, now, id)
redis.call('ZADD', lfu, 1 + total + now / 1e10, id)
local policy = redis.call('HGET', ekey, 'policy')
local ttl = tonumber(redis.call('HGET', ekey, 'ttl') or '0')
if ttl > 0 and (policy == 'sliding' or policy == 'adaptive') then
  local lifetime = ttl
  if policy == 'adaptive' then
    lifetime = math.floor(ttl * (1 + math.log(1 + total) / math.log(2)))
    local cap = tonumber(redis.call('HGET', ekey, 'ttl_max') or '0')
    if cap > 0 and lifetime > cap then lifetime = cap end
  end
  redis.call('EXPIRE', ekey, lifetime)
  if redis.call('GET', xkey) == id then redis.call('EXPIRE', xkey, lifetime) end
end
return total
