-- Keep a client's report about an entry's hit. A wrong one narrows the entry's feedback
-- radius (never widens it). A right one is counted as a report (`fb_right`) when the query
-- it names lies inside the search reach, and never widens what is served: only the
-- service's own checks widen the verified radius (record_check.lua). The reports expire
-- with the entry; the last 100 are kept.
-- KEYS[1] the entry's hash   KEYS[2] its feedback list
-- ARGV[1] '1' right, '0' wrong   ARGV[2] the radius a wrong report narrows to
-- ARGV[3] report JSON   ARGV[4] '1' when a right report is counted (inside the reach)
-- Returns false when the entry is gone, else its feedback radius ('' when none).
local ekey, reports = KEYS[1], KEYS[2]
if redis.call('EXISTS', ekey) == 0 then return false end
if ARGV[1] == '1' then
  if ARGV[4] == '1' then redis.call('HINCRBY', ekey, 'fb_right', 1) end
else
  redis.call('HINCRBY', ekey, 'fb_wrong', 1)
  local radius = tonumber(ARGV[2])
  local current = tonumber(redis.call('HGET', ekey, 'fb_radius') or '')
  if current == nil or radius < current then redis.call('HSET', ekey, 'fb_radius', radius) end
end
redis.call('RPUSH', reports, ARGV[3])
redis.call('LTRIM', reports, -100, -1)
local pttl = redis.call('PTTL', ekey)
if pttl > 0 then redis.call('PEXPIRE', reports, pttl) end
return redis.call('HGET', ekey, 'fb_radius') or ''
