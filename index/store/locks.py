"""Short-lived locks in Redis (``dc:lock:{ns}:<sha>``, a string holding its holder's token):
taken with SET NX PX, renewed and released by their holder only (``renew_lock.lua``,
``release_lock.lua``, which compare the token). Request coalescing holds one per miss
in flight (``service/engine/coalescing.py``)."""

from index.store.connection import RedisClient
from index.store.scripts import Scripts


class Locks:
    def __init__(self, client: RedisClient, scripts: Scripts) -> None:
        self.client = client
        self.scripts = scripts

    async def take(self, lock: str, token: str, life_ms: int) -> bool:
        """Take ``lock`` for ``life_ms`` as ``token``'s holder; False when another holds it."""
        return bool(await self.client.set(lock, token, nx=True, px=life_ms))

    async def renew(self, lock: str, token: str, life_ms: int) -> bool:
        """Give ``lock`` another ``life_ms``; False when ``token`` no longer holds it."""
        return bool(await self.scripts.renew_lock(keys=[lock], args=[token, life_ms]))

    async def release(self, lock: str, token: str) -> None:
        """Release ``lock`` if ``token`` still holds it (else leave it to its holder)."""
        await self.scripts.release_lock(keys=[lock], args=[token])

    async def held(self, lock: str) -> bool:
        """Whether anyone holds ``lock`` now."""
        return bool(await self.client.exists(lock))
