-- Take one token from a rate-limit bucket that refills at `rate` per second up to `burst`.
-- KEYS[1] the bucket (hash: tokens, at)
-- ARGV[1] rate per s   ARGV[2] burst   ARGV[3] now (epoch s)
-- Returns, as a string, 0 when a token was taken, else the seconds until one is there.
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
