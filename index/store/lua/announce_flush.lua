-- Announce that a namespace was emptied: take the next seq and publish a 'flush' event.
-- KEYS[1] seq counter
-- ARGV[1] ns   ARGV[2] channel   ARGV[3] origin
-- Returns the flush's seq.
local seq = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[2],
  cjson.encode({op='flush', ns=ARGV[1], id=cjson.null, seq=seq, origin=ARGV[3]}))
return seq
