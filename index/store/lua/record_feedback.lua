-- Keep a report about an entry's hit; a wrong one narrows the entry's feedback radius
-- (never widens it), a right one widens its verified radius, the farthest distance at which
-- its answer was found right (never narrows it). The reports expire with the entry; the
-- last 100 are kept.
-- KEYS[1] the entry's hash   KEYS[2] its feedback list
-- ARGV[1] '1' right, '0' wrong   ARGV[2] the reported query's distance   ARGV[3] report JSON
-- ARGV[4] the distance a right report vouches for
-- Returns false when the entry is gone, else its feedback radius ('' when none).
local ekey, reports = KEYS[1], KEYS[2]
if redis.call('EXISTS', ekey) == 0 then return false end
if ARGV[1] == '1' then
  redis.call('HINCRBY', ekey, 'fb_right', 1)
  local vouched = tonumber(ARGV[4])
  local verified = tonumber(redis.call('HGET', ekey, 'vf_radius') or '')
  if verified == nil or vouched > verified then redis.call('HSET', ekey, 'vf_radius', vouched) end
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
