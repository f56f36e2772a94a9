"""What the sync makes sure Redis has on every (re)connect: the search index, expiry events
and scripts. A Redis that restarted without its data, or a replica promoted to primary, may
lack them."""

import logging

from index.store.legacy_sequence import adopt_legacy_sequence
from index.store.redis_store import RedisStore

log = logging.getLogger(__name__)


async def prepare_redis(store: RedisStore) -> None:
    await adopt_legacy_sequence(store)
    await store.search.ensure_search_index()
    if await store.search.indexes_partially() is False:
        log.warning(
            "the search module re-indexes an entry (its vector too) on every change, a "
            "HIT's counters included: load it with PARTIAL_INDEXED_DOCS 1 (docs/scaling-out.md)"
        )
    await store.load_scripts()
    if not await store.enable_expiry_events():
        log.warning(
            "Redis refused CONFIG SET notify-keyspace-events; expired entries leave the "
            "local index only when a lookup finds them gone or the drift check rebuilds"
        )
