"""Redis as the source of truth: entry hashes, exact pointers, the HNSW mirror, events.

Every write and delete is one Lua script, so that taking the next ``dc:seq``, writing the
hash with that seq, its EXPIRE, the exact-match pointer and the PUBLISH on ``dc:events``
happen as one atomic step (DESIGN.md allows MULTI/EXEC or a script; the script is what lets
the hash carry the seq it was given, and keeps seq order equal to commit order, which the
replicas' catch-up relies on). Scripts build entry keys from the namespace, as a standalone
Redis allows; every key of one call shares the ``{ns}`` hash tag.
"""

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from index import keys
from index.local_index import Candidate, IndexedVector

_WRITE_ENTRY = """
local seq_key, xkey, lru, lfu, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local ns, id, ttl, channel, origin = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local capacity, eviction, now = tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8])
local replacing = false
local existing = redis.call('GET', xkey)
if existing and redis.call('EXISTS', 'dc:e:{' .. ns .. '}:' .. existing) == 1 then
  id = existing
  replacing = true
end
if capacity > 0 and not replacing then
  -- make room: drop the lowest-scored entries (members already expired are just removed)
  local order = lru
  if eviction == 'lfu' then order = lfu end
  while redis.call('ZCARD', order) >= capacity do
    local victim = redis.call('ZRANGE', order, 0, 0)[1]
    redis.call('ZREM', lru, victim)
    redis.call('ZREM', lfu, victim)
    local vkey = 'dc:e:{' .. ns .. '}:' .. victim
    if redis.call('EXISTS', vkey) == 1 then
      local vx = redis.call('HGET', vkey, 'xkey')
      if vx and redis.call('GET', vx) == victim then redis.call('DEL', vx) end
      redis.call('DEL', vkey, 'dc:fb:{' .. ns .. '}:' .. victim)
      local vseq = redis.call('INCR', seq_key)
      redis.call('PUBLISH', channel, cjson.encode(
        {op='del', ns=ns, id=victim, seq=vseq, origin=origin, reason='evicted'}))
      redis.call('HINCRBY', stats, 'evictions', 1)
    end
  end
end
local ekey = 'dc:e:{' .. ns .. '}:' .. id
redis.call('ZADD', lru, now, id)
-- LFU score: uses (the write is the first) + recency as a fraction, so ties go oldest first
redis.call('ZADD', lfu, 1 + now / 1e10, id)
local seq = redis.call('INCR', seq_key)
redis.call('DEL', ekey)
redis.call('HSET', ekey, 'seq', seq, 'xkey', xkey, 'ns', ns, unpack(ARGV, 9))
if ttl > 0 then
  redis.call('EXPIRE', ekey, ttl)
  redis.call('SET', xkey, id, 'EX', ttl)
else
  redis.call('SET', xkey, id)
end
redis.call('PUBLISH', channel, cjson.encode({op='add', ns=ns, id=id, seq=seq, origin=origin}))
return {id, seq}
"""

_DELETE_ENTRY = """
local seq_key, ekey = KEYS[1], KEYS[2]
local ns, id, channel, origin = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', ekey) == 0 then return 0 end
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
local xkey = redis.call('HGET', ekey, 'xkey')
if xkey and redis.call('GET', xkey) == id then redis.call('DEL', xkey) end
redis.call('DEL', ekey, 'dc:fb:{' .. ns .. '}:' .. id)
local seq = redis.call('INCR', seq_key)
redis.call('PUBLISH', channel, cjson.encode({op='del', ns=ns, id=id, seq=seq, origin=origin}))
return seq
"""

_ANNOUNCE_FLUSH = """
local seq = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[2],
  cjson.encode({op='flush', ns=ARGV[1], id=cjson.null, seq=seq, origin=ARGV[3]}))
return seq
"""

_TOUCH_ENTRY = """
local ekey, lru, lfu = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', ekey) == 0 then return 0 end
local now = tonumber(ARGV[2])
local total = redis.call('HINCRBY', ekey, 'hits', ARGV[1])
redis.call('HSET', ekey, 'last_hit', now)
local id = string.match(ekey, ':([0-9a-f]+)$')
redis.call('ZADD', lru, now, id)
redis.call('ZADD', lfu, 1 + total + now / 1e10, id)
local policy = redis.call('HGET', ekey, 'policy')
local ttl = tonumber(redis.call('HGET', ekey, 'ttl') or '0')
if ttl > 0 and (policy == 'sliding' or policy == 'adaptive') then
  local lifetime = ttl
  if policy == 'adaptive' then
    lifetime = math.floor(ttl * (1 + math.log(1 + total) / math.log(2)))
    local cap = tonumber(redis.call('HGET', ekey, 'ttl_max') or '0')
    if cap > 0 and lifetime > cap then lifetime = cap end
  end
  redis.call('EXPIRE', ekey, lifetime)
  local xkey = redis.call('HGET', ekey, 'xkey')
  if xkey and redis.call('GET', xkey) == id then redis.call('EXPIRE', xkey, lifetime) end
end
return total
"""

_RECORD_FEEDBACK = """
local ekey, reports = KEYS[1], KEYS[2]
if redis.call('EXISTS', ekey) == 0 then return false end
if ARGV[1] == '1' then
  redis.call('HINCRBY', ekey, 'fb_right', 1)
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
"""

_LOOKUP_EXACT = """
local id = redis.call('GET', KEYS[1])
if not id then return false end
local fields = redis.call('HMGET', 'dc:e:{' .. ARGV[1] .. '}:' .. id, unpack(ARGV, 2))
if not fields[1] then return false end
table.insert(fields, 1, id)
table.insert(fields, redis.call('PTTL', 'dc:e:{' .. ARGV[1] .. '}:' .. id))
return fields
"""

# Fields read to serve a HIT, in this order.
_SERVE_FIELDS = (
    "prompt", "response", "created", "llm_ms", "cost", "ttl", "hits", "seq", "model",
    "completion", "vector", "fb_radius",
)  # fmt: skip
# Fields read to load an entry into a local index, in this order.
_INDEX_FIELDS = ("ns", "scope", "vector", "seq", "xkey")


@dataclass(frozen=True)
class Retention:
    """How long an entry lives and what makes room for it."""

    ttl: int  # seconds; 0: never expires
    ttl_policy: str = "fixed"  # fixed | sliding | adaptive: what a HIT does to its expiry
    ttl_max: int = 0  # adaptive: the longest lifetime a HIT can give it
    capacity: int = 0  # the namespace's max entries (0: no limit)
    eviction: str = "lru"  # lru | lfu: which entry makes room when it is full


@dataclass(frozen=True)
class NewEntry:
    ns: str
    scope: str
    model: str
    prompt: str
    normalised_prompt: str
    response: str
    vector: np.ndarray
    llm_ms: float
    cost: float
    retention: Retention
    # Chat Completions answer: model, message (tool calls included), finish_reason, usage
    completion: dict[str, Any] | None = None


@dataclass(frozen=True)
class StoredEntry:
    entry_id: str
    prompt: str
    response: str
    created: float
    llm_ms: float
    cost: float
    ttl: int
    hits: int
    seq: int
    expires_at: float | None = None  # None: never expires
    model: str = ""
    completion: dict[str, Any] | None = None  # None: stored as a bare response
    vector: np.ndarray | None = None
    # set by a wrong-hit report: only queries nearer than this may be served the entry
    feedback_radius: float | None = None

    def age_s(self, now: float) -> float:
        return max(0.0, now - self.created)

    def admits(self, distance: float) -> bool:
        """Whether a query this far away may be served this entry (after feedback)."""
        return self.feedback_radius is None or distance < self.feedback_radius

    def chat_completion(self) -> dict[str, Any]:
        """The answer in Chat Completions form (a bare response becomes its content)."""
        if self.completion is not None:
            return self.completion
        return {
            "model": self.model,
            "message": {"role": "assistant", "content": self.response},
            "finish_reason": "stop",
            "usage": None,
        }


def as_text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def _stored_entry(entry_id: str, fields: Sequence[Any], pttl: int) -> StoredEntry | None:
    if fields[0] is None or fields[1] is None:
        return None
    prompt, response, created, llm_ms, cost, ttl, hits, seq, model, completion = fields[:10]
    vector, feedback_radius = fields[10:12]
    return StoredEntry(
        entry_id=entry_id,
        prompt=as_text(prompt),
        response=as_text(response),
        created=float(created or 0),
        llm_ms=float(llm_ms or 0),
        cost=float(cost or 0),
        ttl=int(ttl or 0),
        hits=int(hits or 0),
        seq=int(seq or 0),
        expires_at=time.time() + pttl / 1000 if pttl and int(pttl) > 0 else None,
        model=as_text(model),
        completion=orjson.loads(completion) if completion else None,
        vector=np.frombuffer(vector, dtype=np.float32) if vector else None,
        feedback_radius=float(feedback_radius) if feedback_radius else None,
    )


def escape_tag(value: str) -> str:
    """Escape a value for a RediSearch TAG query (everything but letters and digits)."""
    return "".join(ch if ch.isalnum() else f"\\{ch}" for ch in value)


def connect(url: str, timeout_s: float | None, name: str | None = None) -> "aioredis.Redis":
    """A client with bounded timeouts (``None`` for a pub/sub connection that waits)."""
    return aioredis.Redis.from_url(
        url,
        protocol=3,
        client_name=name,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s if timeout_s is not None else 5.0,
        retry_on_timeout=False,
    )


class RedisStore:
    def __init__(self, client: "aioredis.Redis", origin: str, dim: int) -> None:
        self.client = client
        self.origin = origin
        self.dim = dim
        self._write_entry = client.register_script(_WRITE_ENTRY)
        self._delete_entry = client.register_script(_DELETE_ENTRY)
        self._announce_flush = client.register_script(_ANNOUNCE_FLUSH)
        self._lookup_exact = client.register_script(_LOOKUP_EXACT)
        self._touch_entry = client.register_script(_TOUCH_ENTRY)
        self._record_feedback = client.register_script(_RECORD_FEEDBACK)

    async def _command(self, *args: Any) -> Any:
        """A raw command (RediSearch's FT.* have no typed wrapper in redis-py's asyncio API)."""
        return await self.client.execute_command(*args)  # type: ignore[no-untyped-call]

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def enable_expiry_events(self) -> bool:
        """Turn on keyspace expiry events; False when the server refuses CONFIG SET."""
        try:
            config: dict[Any, Any] = dict(await self.client.config_get("notify-keyspace-events"))
            current = as_text(config.get(b"notify-keyspace-events", b""))
            if "E" in current and ("x" in current or "A" in current):
                return True
            flags = "".join(sorted(set(current) | {"E", "x"}))
            await self.client.config_set("notify-keyspace-events", flags)
            return True
        except ResponseError:
            return False

    async def ensure_search_index(self) -> None:
        """Create ``dc:idx`` unless it exists (idempotent; safe for replicas racing)."""
        try:
            await self._command(
                "FT.CREATE", keys.SEARCH_INDEX, "ON", "HASH",
                "PREFIX", "1", keys.ENTRY_PREFIX,
                "SCHEMA",
                "ns", "TAG",
                "scope", "TAG",
                "seq", "NUMERIC", "SORTABLE",
                "vector", "VECTOR", "HNSW", "10",
                "TYPE", "FLOAT32", "DIM", str(self.dim), "DISTANCE_METRIC", "L2",
                "M", "16", "EF_RUNTIME", "64",
            )  # fmt: skip
        except ResponseError as error:
            if "already exists" not in str(error).lower():
                raise

    # -- writes ------------------------------------------------------------------------

    async def write(self, entry: NewEntry) -> IndexedVector:
        """Store an entry (replacing the one its exact key points at); what was written."""
        xkey = keys.exact_key(entry.ns, entry.scope, entry.normalised_prompt)
        now = time.time()
        fields: list[str | bytes | float | int] = [
            "prompt", entry.prompt,
            "response", entry.response,
            "scope", entry.scope,
            "model", entry.model,
            "vector", np.asarray(entry.vector, dtype=np.float32).tobytes(),
            "created", now,
            "hits", 0,
            "last_hit", 0,
            "llm_ms", round(entry.llm_ms, 3),
            "cost", entry.cost,
            "ttl", entry.retention.ttl,
            "policy", entry.retention.ttl_policy,
            "ttl_max", entry.retention.ttl_max,
            "completion", orjson.dumps(entry.completion) if entry.completion else "",
        ]  # fmt: skip
        result = await self._write_entry(
            keys=[keys.SEQUENCE, xkey, keys.recency_key(entry.ns),
                  keys.frequency_key(entry.ns), keys.stats_key(entry.ns)],
            args=[entry.ns, keys.new_entry_id(), entry.retention.ttl, keys.EVENTS_CHANNEL,
                  self.origin, entry.retention.capacity, entry.retention.eviction, now, *fields],
        )  # fmt: skip
        return IndexedVector(
            ns=entry.ns,
            scope=entry.scope,
            entry_id=as_text(result[0]),
            vector=entry.vector,
            seq=int(result[1]),
            exact_key=xkey,
        )

    async def record_feedback(
        self, ns: str, entry_id: str, correct: bool, radius: float, report: dict[str, Any]
    ) -> tuple[bool, float | None]:
        """Keep a report on an entry's hit; a wrong one narrows the entry's feedback radius
        to ``radius`` (never widens it). ``(entry exists, its feedback radius)``."""
        result = await self._record_feedback(
            keys=[keys.entry_key(ns, entry_id), keys.feedback_key(ns, entry_id)],
            args=["1" if correct else "0", radius, orjson.dumps(report)],
        )
        if result is None:
            return False, None
        text = as_text(result)
        return True, float(text) if text else None

    async def delete(self, ns: str, entry_id: str) -> int | None:
        """Delete one entry; its delete seq, or None when the namespace has no such entry."""
        seq = await self._delete_entry(
            keys=[
                keys.SEQUENCE,
                keys.entry_key(ns, entry_id),
                keys.recency_key(ns),
                keys.frequency_key(ns),
            ],
            args=[ns, entry_id, keys.EVENTS_CHANNEL, self.origin],
        )
        return int(seq) or None

    async def flush_namespace(self, ns: str) -> tuple[int, int]:
        """Delete every entry and pointer of a namespace; ``(entries deleted, flush seq)``."""
        deleted = 0
        for pattern in (keys.entry_pattern(ns), keys.exact_pattern(ns)):
            batch: list[bytes] = []
            async for key in self.client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    removed = await self.client.unlink(*batch)
                    deleted += removed if pattern.startswith("dc:e:") else 0
                    batch = []
            if batch:
                removed = await self.client.unlink(*batch)
                deleted += removed if pattern.startswith("dc:e:") else 0
        await self.client.delete(keys.recency_key(ns), keys.frequency_key(ns))
        seq = await self._announce_flush(
            keys=[keys.SEQUENCE], args=[ns, keys.EVENTS_CHANNEL, self.origin]
        )
        return deleted, int(seq)

    # -- reads -------------------------------------------------------------------------

    async def lookup_exact(self, ns: str, scope: str, normalised_prompt: str) -> StoredEntry | None:
        """The live entry whose exact key matches, in one round trip."""
        xkey = keys.exact_key(ns, scope, normalised_prompt)
        result = await self._lookup_exact(keys=[xkey], args=[ns, *_SERVE_FIELDS])
        if not result:
            return None
        return _stored_entry(as_text(result[0]), result[1:-1], int(result[-1]))

    async def get(self, ns: str, entry_id: str) -> StoredEntry | None:
        """An entry as served on a HIT, with its remaining lifetime, in one round trip."""
        key = keys.entry_key(ns, entry_id)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hmget(key, list(_SERVE_FIELDS))
            pipe.pttl(key)
            fields, pttl = await pipe.execute()
        return _stored_entry(entry_id, fields, int(pttl))

    async def touch(self, pipe: Any, ns: str, entry_id: str, hits: int, last_hit: float) -> None:
        """Queue on ``pipe``: count hits, refresh LRU/LFU scores, apply the TTL policy.
        Nothing happens to an entry that is gone (a late count must not recreate it)."""
        await self._touch_entry(
            keys=[keys.entry_key(ns, entry_id), keys.recency_key(ns), keys.frequency_key(ns)],
            args=[hits, last_hit],
            client=pipe,
        )

    async def entries_older_than(self, ns: str, cutoff: float) -> list[str]:
        """Ids of a namespace's entries created before ``cutoff`` (epoch seconds)."""
        old: list[str] = []
        batch: list[bytes] = []

        async def check() -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                for key in batch:
                    pipe.hget(key, "created")
                created = await pipe.execute()
            for key, value in zip(batch, created, strict=True):
                parsed = keys.parse_entry_key(as_text(key))
                if parsed and value is not None and float(value) < cutoff:
                    old.append(parsed[1])

        async for key in self.client.scan_iter(match=keys.entry_pattern(ns), count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await check()
                batch = []
        if batch:
            await check()
        return old

    async def knn(self, ns: str, scope: str, vector: np.ndarray, k: int) -> list[Candidate]:
        """Nearest entries from the RediSearch HNSW mirror (the fallback search)."""
        query = (
            f"(@ns:{{{escape_tag(ns)}}} @scope:{{{escape_tag(scope)}}})"
            f"=>[KNN {k} @vector $vec AS dist]"
        )
        reply = await self._command(
            "FT.SEARCH", keys.SEARCH_INDEX, query,
            "PARAMS", "2", "vec", np.asarray(vector, dtype=np.float32).tobytes(),
            "SORTBY", "dist", "ASC", "RETURN", "1", "dist", "LIMIT", "0", str(k),
            "DIALECT", "2",
        )  # fmt: skip
        candidates = []
        for row in reply[b"results"]:
            parsed = keys.parse_entry_key(as_text(row[b"id"]))
            if parsed:
                distance = float(row[b"extra_attributes"][b"dist"])
                candidates.append(Candidate(parsed[1], distance))
        return candidates

    async def current_seq(self) -> int:
        return int(await self.client.get(keys.SEQUENCE) or 0)

    async def scan_vectors(self, page_size: int) -> AsyncIterator[list[IndexedVector]]:
        """Every entry's vector, a page at a time (for a full rebuild)."""
        batch: list[bytes] = []
        async for key in self.client.scan_iter(match=keys.entry_pattern(), count=page_size):
            batch.append(key)
            if len(batch) >= page_size:
                yield await self.load_vectors(batch)
                batch = []
        if batch:
            yield await self.load_vectors(batch)

    async def vectors_since(self, seq: int, page_size: int) -> AsyncIterator[list[IndexedVector]]:
        """Entries written after ``seq``, oldest first (for catch-up after a lost link)."""
        offset = 0
        while True:
            reply = await self._command(
                "FT.SEARCH", keys.SEARCH_INDEX, f"@seq:[({seq} +inf]",
                "NOCONTENT", "SORTBY", "seq", "ASC", "LIMIT", str(offset), str(page_size),
            )  # fmt: skip
            entry_keys = [row[b"id"] for row in reply[b"results"]]
            if not entry_keys:
                return
            yield await self.load_vectors(entry_keys)
            offset += len(entry_keys)

    async def load_vectors(self, entry_keys: Sequence[bytes | str]) -> list[IndexedVector]:
        """Index fields of the given entry keys; keys that are gone are left out."""
        async with self.client.pipeline(transaction=False) as pipe:
            for key in entry_keys:
                pipe.hmget(key, list(_INDEX_FIELDS))
            rows = await pipe.execute()
        loaded = []
        for key, (ns, scope, vector, seq, xkey) in zip(entry_keys, rows, strict=True):
            parsed = keys.parse_entry_key(as_text(key))
            if parsed is None or vector is None or len(vector) != self.dim * 4:
                continue
            loaded.append(
                IndexedVector(
                    ns=as_text(ns),
                    scope=as_text(scope),
                    entry_id=parsed[1],
                    vector=np.frombuffer(vector, dtype=np.float32),
                    seq=int(seq or 0),
                    exact_key=as_text(xkey),
                )
            )
        return loaded

    async def count_by_namespace(self) -> dict[str, int]:
        """Live entries per namespace, as the HNSW mirror counts them."""
        reply = await self._command(
            "FT.AGGREGATE", keys.SEARCH_INDEX, "*",
            "GROUPBY", "1", "@ns", "REDUCE", "COUNT", "0", "AS", "n",
        )  # fmt: skip
        counts: dict[str, int] = {}
        for row in reply[b"results"]:
            attrs = row[b"extra_attributes"]
            counts[as_text(attrs[b"ns"])] = int(attrs[b"n"])
        return counts
