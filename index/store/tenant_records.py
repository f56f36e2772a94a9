"""Tenants and their API keys as Redis keeps them: a tenant's hash (``dc:tenant:{ns}``:
its settings as JSON, when it was created), an API key's record under the key's SHA-256
(``dc:key:<sha>``: namespace, role, created, revoked, public id) and the public id's pointer
to that SHA (``dc:keyid:<id>``). What they mean (validation, caching, the outage grace) is
``service/tenancy/tenants.py``'s."""

import time
from dataclasses import dataclass
from typing import Any

from index.store import keys
from index.store.connection import RedisClient
from index.store.records import as_text


@dataclass(frozen=True)
class StoredTenant:
    ns: str
    created: float
    settings_json: bytes | str  # the tenant's settings as written ("{}" when none)


@dataclass(frozen=True)
class StoredKey:
    key_id: str
    ns: str
    role: str
    created: float
    revoked: bool


class TenantRecords:
    def __init__(self, client: RedisClient) -> None:
        self.client = client

    async def create(self, ns: str, settings_json: str) -> bool:
        """Create a tenant with these settings; False (nothing written) when it exists."""
        if not await self.client.hsetnx(keys.tenant_key(ns), "settings", settings_json):
            return False
        await self.client.hset(keys.tenant_key(ns), "created", time.time())
        return True

    async def exists(self, ns: str) -> bool:
        return bool(await self.client.exists(keys.tenant_key(ns)))

    async def set_settings(self, ns: str, settings_json: str) -> None:
        await self.client.hset(keys.tenant_key(ns), "settings", settings_json)

    async def settings_json(self, ns: str) -> bytes | str | None:
        """A tenant's settings as written, or None when there is no such tenant."""
        return await self.client.hget(keys.tenant_key(ns), "settings")

    async def all(self) -> list[StoredTenant]:
        """Every tenant (a SCAN), in no particular order."""
        tenants = []
        async for key in self.client.scan_iter(match=keys.tenant_pattern(), count=500):
            raw = await self.client.hgetall(key)
            tenants.append(
                StoredTenant(
                    ns=keys.namespace_of(as_text(key)) or "",
                    created=float(raw.get(b"created", 0)),
                    settings_json=raw.get(b"settings", b"{}"),
                )
            )
        return tenants

    async def save_key(self, sha: str, key_id: str, ns: str, role: str) -> None:
        """Keep a new key's record and its public id. Two keys in two slots (no transaction
        on a cluster): the record first, then the id that lists it; a failure between leaves
        a record nobody was given the key of."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(
                keys.api_key_key(sha),
                mapping={
                    "ns": ns,
                    "role": role,
                    "created": time.time(),
                    "revoked": 0,
                    "key_id": key_id,
                },
            )
            pipe.set(keys.key_id_key(key_id), sha)
            await pipe.execute()

    async def sha_of(self, key_id: str) -> str | None:
        """The SHA-256 of the key with this public id, or None when there is none."""
        sha = await self.client.get(keys.key_id_key(key_id))
        return None if sha is None else as_text(sha)

    async def revoke(self, sha: str) -> None:
        await self.client.hset(keys.api_key_key(sha), "revoked", 1)

    async def key(self, sha: str) -> StoredKey | None:
        """The record of the key with this SHA-256, or None when it was never issued."""
        raw = await self.client.hgetall(keys.api_key_key(sha))
        return _stored_key(raw) if raw else None

    async def keys_of(self, ns: str) -> list[StoredKey]:
        """Every key of a namespace (a SCAN of all keys), in no particular order."""
        found = []
        async for key in self.client.scan_iter(match=keys.api_key_pattern(), count=500):
            raw = await self.client.hgetall(key)
            if as_text(raw.get(b"ns", b"")) == ns:
                found.append(_stored_key(raw))
        return found


def _stored_key(raw: dict[Any, Any]) -> StoredKey:
    return StoredKey(
        key_id=as_text(raw[b"key_id"]),
        ns=as_text(raw[b"ns"]),
        role=as_text(raw[b"role"]),
        created=float(raw.get(b"created", 0)),
        revoked=raw.get(b"revoked") == b"1",
    )
