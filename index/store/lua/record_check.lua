-- The service's own check of an entry's answer for a query (an audit of a served HIT, or a
-- candidate the wrong-rate bound withheld against its MISS's answer). A right one widens
-- the entry's verified radius to the query's distance (never narrows it): only these checks
-- widen it, never a client's report (record_feedback.lua). A wrong one narrows the entry's
-- feedback radius (never widens it), as a wrong report does. An entry that is gone is left
-- gone.
-- KEYS[1] the entry's hash
-- ARGV[1] '1' right, '0' wrong   ARGV[2] the distance found right, or the radius to narrow to
-- Returns false when the entry is gone, else its feedback radius ('' when none).
local ekey = KEYS[1]
if redis.call('EXISTS', ekey) == 0 then return false end
local distance = tonumber(ARGV[2])
local field = ARGV[1] == '1' and 'vf_radius' or 'fb_radius'
local current = tonumber(redis.call('HGET', ekey, field) or '')
if current == nil or (ARGV[1] == '1' and distance > current)
    or (ARGV[1] ~= '1' and distance < current) then
  redis.call('HSET', ekey, field, distance)
end
return redis.call('HGET', ekey, 'fb_radius') or ''
