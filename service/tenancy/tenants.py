"""Tenants and their API keys, kept in Redis so every replica sees the same.

A tenant is a namespace with settings (threshold, default TTL, rate limit, max entries).
A key is 32 random bytes (URL-safe), shown once when issued and stored only as its SHA-256
(``dc:key:<sha>``: namespace, role, created, revoked); its public id is the first 16 hex
digits of that hash. Replicas cache a key's record for at most ``cache_s`` (1 s by default),
so a revoked key fails everywhere within that time.
"""

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson

from index.store.errors import STORE_UNAVAILABLE
from index.store.records import Retention
from index.store.tenant_records import TenantRecords
from service.errors import Conflict, InvalidInput, NotFound
from service.policy.precedence import first_set
from service.policy.validation import validate_namespace
from service.schemas import TenantSettings
from service.settings import Settings

log = logging.getLogger(__name__)

# the namespace of open mode and of the admin token: no tenant may take it (its keys would
# share entries with the admin's)
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    ns: str
    role: str
    revoked: bool


def key_sha256(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


class TenantStore:
    """Tenants and keys in Redis, cached for ``cache_s`` (so a revocation reaches every
    replica within that). While Redis does not answer, a key verified in the last
    ``outage_grace_s`` keeps working with the settings last read (an outage must not turn
    every tenant's query into an error when the query path itself passes through); a key
    never verified here cannot be checked, and is refused."""

    def __init__(
        self, records: TenantRecords, cache_s: float = 1.0, outage_grace_s: float = 3600.0
    ) -> None:
        self.records = records
        self.cache_s = cache_s
        self.outage_grace_s = outage_grace_s
        self._key_cache: dict[str, tuple[float, KeyRecord | None]] = {}
        self._settings_cache: dict[str, tuple[float, TenantSettings | None]] = {}

    # -- tenants -----------------------------------------------------------------------

    async def create_tenant(self, ns: str, settings: TenantSettings) -> None:
        validate_namespace(ns)
        if ns == DEFAULT_NAMESPACE:
            raise InvalidInput(
                "reserved_namespace",
                f"{ns!r} is the open/admin namespace; name the tenant otherwise",
            )
        if not await self.records.create(ns, settings_json(settings)):
            raise Conflict("tenant_exists", f"tenant {ns!r} exists")

    async def require_tenant(self, ns: str) -> None:
        """Refuse (404) a namespace that is no tenant's; the open/admin one is known."""
        if ns != DEFAULT_NAMESPACE and not await self.records.exists(ns):
            raise NotFound("tenant_not_found", "no such tenant")

    async def update_settings(self, ns: str, settings: TenantSettings) -> None:
        if not await self.records.exists(ns):
            raise NotFound("tenant_not_found", "no such tenant")
        await self.records.set_settings(ns, settings_json(settings))
        self._settings_cache.pop(ns, None)

    async def list_tenants(self) -> list[dict[str, Any]]:
        tenants = [
            {
                "namespace": tenant.ns,
                "created": tenant.created,
                "settings": orjson.loads(tenant.settings_json),
            }
            for tenant in await self.records.all()
        ]
        return sorted(tenants, key=lambda tenant: tenant["namespace"])

    async def settings_of(self, ns: str) -> TenantSettings | None:
        """A tenant's settings (cached for ``cache_s``); None when there is no such tenant."""
        now = time.monotonic()
        cached = self._settings_cache.get(ns)
        if cached is not None and now - cached[0] < self.cache_s:
            return cached[1]
        try:
            raw = await self.records.settings_json(ns)
        except STORE_UNAVAILABLE:
            if cached is not None and now - cached[0] < self.outage_grace_s:
                return cached[1]
            raise
        settings = TenantSettings.model_validate_json(raw) if raw else None
        self._settings_cache[ns] = (now, settings)
        return settings

    # -- keys --------------------------------------------------------------------------

    async def issue_key(self, ns: str, role: str = "tenant") -> tuple[str, str]:
        """A new key for a tenant: ``(key, key_id)``. The key is not stored anywhere."""
        if not await self.records.exists(ns):
            raise NotFound("tenant_not_found", "no such tenant")
        api_key = "dc_" + secrets.token_urlsafe(32)
        sha = key_sha256(api_key)
        key_id = sha[:16]
        await self.records.save_key(sha, key_id, ns, role)
        return api_key, key_id

    async def revoke_key(self, key_id: str) -> None:
        sha = await self.records.sha_of(key_id)
        if sha is None:
            raise NotFound("key_not_found", "no such key")
        await self.records.revoke(sha)

    async def list_keys(self, ns: str) -> list[dict[str, Any]]:
        found = [
            {"key_id": key.key_id, "role": key.role, "created": key.created, "revoked": key.revoked}
            for key in await self.records.keys_of(ns)
        ]
        return sorted(found, key=lambda record: record["created"])

    async def record_of(self, api_key: str) -> KeyRecord | None:
        """The key's record (cached for ``cache_s``; while Redis does not answer, as last
        verified within ``outage_grace_s``), or None when it was never issued."""
        sha = key_sha256(api_key)
        now = time.monotonic()
        cached = self._key_cache.get(sha)
        if cached is not None and now - cached[0] < self.cache_s:
            return cached[1]
        try:
            stored = await self.records.key(sha)
        except STORE_UNAVAILABLE:
            if (
                cached is not None
                and cached[1] is not None
                and now - cached[0] < self.outage_grace_s
            ):
                log.warning(
                    "Redis unavailable: key %s accepted as verified %.0f s ago",
                    cached[1].key_id,
                    now - cached[0],
                )
                return cached[1]
            raise
        record = None
        if stored is not None:
            record = KeyRecord(
                key_id=stored.key_id, ns=stored.ns, role=stored.role, revoked=stored.revoked
            )
        if len(self._key_cache) > 10_000:
            self._key_cache.clear()
        self._key_cache[sha] = (now, record)
        return record


def settings_json(settings: TenantSettings) -> str:
    return settings.model_dump_json(exclude_none=True)


def effective_threshold(default: float, tenant: TenantSettings | None) -> float:
    """The threshold a tenant's lookups use when the request gives none."""
    return first_set(tenant.threshold if tenant else None, default)


def retention_for(
    settings: Settings,
    tenant: TenantSettings | None,
    ttl: int | None = None,
    ttl_policy: str | None = None,
) -> Retention:
    """How a new entry is kept: the request's choice, else the tenant's, else the service's.
    A TTL the request sets stays within the tenant's ``ttl_max_s`` (``client_ttl``)."""
    own = tenant or TenantSettings()
    capacity = first_set(own.max_entries, settings.max_entries_per_namespace, 0)
    return Retention(
        ttl=first_set(client_ttl(ttl, own.ttl_max_s), own.default_ttl_s, settings.default_ttl_s),
        ttl_policy=first_set(ttl_policy, own.ttl_policy, settings.ttl_policy),
        ttl_max=first_set(own.ttl_max_s, settings.ttl_max_s),
        capacity=capacity,
        eviction=first_set(own.eviction, settings.eviction),
    )


def client_ttl(asked: int | None, limit: int | None) -> int | None:
    """A TTL a client set (a request's ``ttl``, a body's ``cache.ttl``, a warmed entry's),
    within its tenant's limit: never longer, and "always" (0) is the limit itself. Left
    unbounded, any key of the tenant could make entries outlive what its operator allows."""
    if asked is None or limit is None:
        return asked
    return limit if asked == 0 else min(asked, limit)
