"""Once, after an upgrade from the global ``dc:seq``: every namespace's sequence starts
above the numbers its entries already carry (a replica orders changes by seq, so a
namespace restarting at 1 would see its new writes as older than its old ones)."""

import contextlib
import logging

from redis.exceptions import ResponseError

from index.store import keys
from index.store.redis_store import RedisStore

log = logging.getLogger(__name__)


async def adopt_legacy_sequence(store: RedisStore) -> None:
    """Idempotent: SET NX, then the old key is renamed away."""
    client = store.client
    if store.cluster is not None or not await client.exists(keys.LEGACY_SEQUENCE):
        return
    legacy = int(await client.get(keys.LEGACY_SEQUENCE) or 0)
    namespaces = set(await store.feed.entry_ids_by_namespace())
    for ns in namespaces:
        await client.set(keys.sequence_key(ns), legacy, nx=True)
    with contextlib.suppress(ResponseError):  # another replica renamed it first
        await client.rename(keys.LEGACY_SEQUENCE, f"{keys.LEGACY_SEQUENCE}:adopted")
    log.info("per-namespace sequences start at %d for %d namespace(s)", legacy, len(namespaces))
