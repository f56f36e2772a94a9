"""Redis key layout (DESIGN.md). Namespaced keys carry ``{ns}`` as a cluster hash tag.

The one module that spells a key: every other module, Python or Lua, is given its keys
(Lua in KEYS) and reads names back through the parse functions here."""

import functools
import hashlib
import itertools
import re
import secrets

from redis.crc import key_slot

ENTRY_PREFIX = "dc:e:"
SEARCH_INDEX = "dc:idx"
# a namespace's first write announces it here (classic pub/sub: rare, reaches every node)
NAMESPACES_CHANNEL = "dc:namespaces"
EXPIRED_PATTERN = "__keyevent@*__:expired"
# the one global sequence of releases before sequences were per namespace
LEGACY_SEQUENCE = "dc:seq"
# a random id made once per Redis deployment: a replica's index snapshot names the one it
# was made from (a snapshot of another Redis, or of this one before it lost its data, is
# never loaded)
DEPLOYMENT = "dc:deployment"

_ENTRY_ID = re.compile(r"^[0-9a-f]{16}$")
_ENTRY_KEY = re.compile(r"^dc:e:\{(?P<ns>[^}]+)\}:(?P<id>[0-9a-f]{16})$")
_TAGGED = re.compile(r"^dc:[a-z]+:\{(?P<ns>[^}]+)\}")


def new_entry_id() -> str:
    """A random id that doubles as the entry's FAISS id: 63 random bits as 16 hex digits."""
    return f"{secrets.randbits(63):016x}"


def is_entry_id(text: str) -> bool:
    return bool(_ENTRY_ID.match(text))


def faiss_id(entry_id: str) -> int:
    """The stable int64 FAISS id of an entry (the same on every replica)."""
    return int(entry_id, 16)


def entry_id_of(faiss_id_value: int) -> str:
    return f"{faiss_id_value:016x}"


def shard_search_index(slot: int) -> str:
    """The search index of the cluster shard serving ``slot``. RediSearch without its
    coordinator treats an index name as a key: it lives on the shard owning the name's slot
    (others answer MOVED) and indexes that shard's keys only. So each shard has its own,
    named with a hash tag that falls in one of the shard's slots."""
    return f"{SEARCH_INDEX}:{{{tag_for_slot(slot)}}}"


@functools.cache
def tag_for_slot(slot: int) -> str:
    """The first of "0", "1", "2", ... whose hash slot is ``slot``."""
    for number in itertools.count():
        if key_slot(str(number).encode()) == slot:
            return str(number)
    raise AssertionError("unreachable")


def sequence_key(ns: str) -> str:
    """A namespace's write sequence: every change to its entries takes the next number."""
    return f"dc:seq:{{{ns}}}"


def sequence_pattern() -> str:
    return "dc:seq:{*}"


def events_channel(ns: str) -> str:
    """A namespace's change events (sharded pub/sub: served by the shard holding ``{ns}``)."""
    return f"dc:ev:{{{ns}}}"


def channel_namespace(channel: str) -> str | None:
    """The namespace of a ``dc:ev:{ns}`` channel, or None for any other channel."""
    return namespace_of(channel) if channel.startswith("dc:ev:") else None


def entry_key(ns: str, entry_id: str) -> str:
    return f"dc:e:{{{ns}}}:{entry_id}"


def feedback_key(ns: str, entry_id: str) -> str:
    """The reports (JSON, newest last, at most 100) made about an entry's hits."""
    return f"dc:fb:{{{ns}}}:{entry_id}"


def entry_pattern(ns: str | None = None) -> str:
    return "dc:e:*" if ns is None else f"dc:e:{{{ns}}}:*"


def parse_entry_key(key: str) -> tuple[str, str] | None:
    """``(ns, entry_id)`` of an entry key, or None for any other key."""
    match = _ENTRY_KEY.match(key)
    return (match["ns"], match["id"]) if match else None


def exact_key(ns: str, scope: str, normalised_prompt: str) -> str:
    digest = hashlib.sha256(f"{scope}\n{normalised_prompt}".encode()).hexdigest()
    return f"dc:x:{{{ns}}}:{digest}"


def exact_pattern(ns: str) -> str:
    return f"dc:x:{{{ns}}}:*"


def lock_key(exact: str) -> str:
    """The coalescing lock of an exact key (same ``{ns}`` tag, same digest)."""
    return "dc:lock:" + exact.removeprefix("dc:x:")


def namespace_of(key: str) -> str | None:
    """The ``{ns}`` of a namespaced key (stats, tenant, entry, ...), or None."""
    match = _TAGGED.match(key)
    return match["ns"] if match else None


def api_key_key(key_sha256: str) -> str:
    """Where an API key is kept: under its SHA-256, never in clear."""
    return f"dc:key:{key_sha256}"


def api_key_pattern() -> str:
    return "dc:key:*"


def key_id_key(key_id: str) -> str:
    """A key's public id (for listing and revoking) → its SHA-256."""
    return f"dc:keyid:{key_id}"


def tenant_key(ns: str) -> str:
    return f"dc:tenant:{{{ns}}}"


def tenant_pattern() -> str:
    return "dc:tenant:*"


def rate_key(ns: str, key_id: str) -> str:
    return f"dc:rl:{{{ns}}}:{key_id}"


def recency_key(ns: str) -> str:
    """Sorted set of a namespace's entry ids by last use (LRU eviction)."""
    return f"dc:lru:{{{ns}}}"


def frequency_key(ns: str) -> str:
    """Sorted set of a namespace's entry ids by uses, the write counting as the first (LFU
    eviction; ties: least recently used first). A new entry scoring 0 would be the next
    victim of every write."""
    return f"dc:lfu:{{{ns}}}"


def stats_key(ns: str) -> str:
    return f"dc:stats:{{{ns}}}"


def near_miss_key(ns: str) -> str:
    """Recent misses whose nearest candidate was not served (JSON, newest first, capped)."""
    return f"dc:near:{{{ns}}}"


def audit_key(ns: str) -> str:
    """A namespace's audited hits: counts of right and wrong, in total and per distance band."""
    return f"dc:audit:{{{ns}}}"


def shadow_key(ns: str) -> str:
    """A namespace's shadow-mode counts: what the cache would have served, and how often
    its would-be semantic HITs' answers differed from the LLM's."""
    return f"dc:shadow:{{{ns}}}"


def audit_claim_key(ns: str, entry_id: str, normalised_prompt: str) -> str:
    """Taken by the first audit of this (entry, query): audits are idempotent."""
    digest = hashlib.sha256(f"{entry_id}\x1f{normalised_prompt}".encode()).hexdigest()[:32]
    return f"dc:audited:{{{ns}}}:{digest}"


def stats_pattern() -> str:
    return "dc:stats:*"


def stats_extremes_key(ns: str) -> str:
    """A namespace's fastest and slowest lookups: a zset of ``hit_min``, ``hit_max``,
    ``miss_min``, ``miss_max`` scored in ms (ZADD LT / GT keeps the extreme, atomically)."""
    return f"dc:stats-x:{{{ns}}}"


def replica_stats_key(replica_id: str) -> str:
    return f"dc:replica:{replica_id}"


def replica_extremes_key(replica_id: str) -> str:
    return f"dc:replica-x:{replica_id}"


def replica_stats_pattern() -> str:
    return "dc:replica:*"


def replica_of(stats_key_name: str) -> str:
    """The replica id of a ``dc:replica:<id>`` key."""
    return stats_key_name.removeprefix("dc:replica:")
