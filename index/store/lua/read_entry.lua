-- An entry as a HIT serves it, in one command: the fields of records.SERVE_FIELDS (in that
-- order; a unit test holds the two lists equal) and the hash's PTTL. Named here rather than
-- passed in ARGV: packing fifteen field names on every HIT cost more than the read.
-- KEYS[1] the entry's hash
-- Returns {field values (nil where absent), PTTL}.
local key = KEYS[1]
return {
  redis.call('HMGET', key, 'prompt', 'response', 'created', 'llm_ms', 'cost', 'ttl', 'hits',
             'seq', 'model', 'completion', 'vector', 'fb_radius', 'xkey',
             'vf_radius', 'wh'),
  redis.call('PTTL', key),
}
