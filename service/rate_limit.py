"""Per-key rate limit: a token bucket in Redis, so the limit holds across replicas.

The bucket refills at ``rate`` tokens per second up to ``burst``; a request takes one
token or is refused with the seconds until one is there (for ``Retry-After``).
"""

import time

import redis.asyncio as aioredis

_TAKE = """
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
"""


class RateLimiter:
    def __init__(self, client: "aioredis.Redis") -> None:
        self._take = client.register_script(_TAKE)

    async def take(self, bucket_key: str, rate_per_s: float, burst: int) -> float:
        """0 when the request may go on, else the seconds to wait."""
        wait = await self._take(keys=[bucket_key], args=[rate_per_s, burst, time.time()])
        return float(wait)
