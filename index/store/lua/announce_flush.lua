-- Announce that a namespace was emptied: take its next seq and publish a 'flush' event
-- (announcing the namespace too when this is its first seq).
-- KEYS[1] the namespace's seq
-- ARGV[1] ns   ARGV[2] its channel   ARGV[3] origin   ARGV[4] the namespaces channel
-- Returns the flush's seq.
local seq = redis.call('INCR', KEYS[1])
redis.call('SPUBLISH', ARGV[2],
  cjson.encode({op='flush', ns=ARGV[1], id=cjson.null, seq=seq, origin=ARGV[3]}))
if seq == 1 then redis.call('PUBLISH', ARGV[4], ARGV[1]) end
return seq
