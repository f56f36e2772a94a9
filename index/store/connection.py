"""Connecting to Redis, and what counts as Redis being unavailable.

A Redis that does not answer must cost a request one timeout at most, not one per command:
redis-py's default retries three times on a timeout (four 0.5 s waits for one command), and
a request makes several commands (its key, its tenant's settings, its rate limit, the
lookup). So the client retries nothing, and a breaker shared by the replica's request-path
commands opens on the first timeout or refused connection: for ``cooldown_s`` every command
fails at once (the query passes through), then the next one tries Redis again. Work in the
background (index sync, drift checks, telemetry flushes) has its own client, with a longer
timeout and its own breaker: a bulk read slower than a query's timeout is not a Redis that
does not answer, and must not make queries pass through.
"""

import time
from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError, OutOfMemoryError, ReadOnlyError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry as BlockingRetry

# a client of one Redis or of a cluster (``connect``): what the store's parts are given
RedisClient: TypeAlias = aioredis.Redis


# Redis not answering (refused, reset, timed out), or not taking writes now (out of memory
# under noeviction, a read-only replica during a failover, still loading its data): the
# engine passes queries through, the HTTP layer answers 503. Any other Redis error is a bug
# or a misconfiguration.
class NotReplicated(RedisError):
    """A write reached its primary but not, within the wait, the replicas it must reach
    before it counts as stored (``DYNACACHE_REDIS_WAIT_REPLICAS``)."""


STORE_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    OutOfMemoryError,
    ReadOnlyError,
    BusyLoadingError,
    NotReplicated,
)
_NOT_ANSWERING = (RedisConnectionError, RedisTimeoutError)
DEFAULT_COOLDOWN_S = 1.0


class CircuitOpen(RedisConnectionError):
    """Redis did not answer a moment ago: this command was not sent."""


class Breaker:
    """Open for ``cooldown_s`` after Redis failed to answer; closed otherwise."""

    def __init__(self, cooldown_s: float) -> None:
        self.cooldown_s = cooldown_s
        self.open_until = 0.0
        self.opened = 0  # how many times it opened

    def check(self) -> None:
        if time.monotonic() < self.open_until:
            raise CircuitOpen("Redis did not answer a moment ago; not waiting on it again yet")

    def failed(self) -> None:
        if time.monotonic() >= self.open_until:
            self.opened += 1
        self.open_until = time.monotonic() + self.cooldown_s


class GuardedPipeline(Pipeline):
    breaker: Breaker

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        self.breaker.check()
        try:
            return await super().execute(raise_on_error)
        except _NOT_ANSWERING as error:
            if not isinstance(error, CircuitOpen):
                self.breaker.failed()
            raise


# On a cluster a refused or reset connection is one node's: commands for its slots fail
# at once on their own, and the other shards' namespaces go on (a breaker opened by it made
# every namespace pass through until the failover). A timeout could cost every command its
# wait: that opens the breaker, as on one Redis.
_OPENS_CLUSTER_BREAKER = (RedisTimeoutError,)


class GuardedClusterPipeline(ClusterPipeline):
    breaker: Breaker

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        self.breaker.check()
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except _NOT_ANSWERING as error:
            if not isinstance(error, CircuitOpen):
                if isinstance(error, _OPENS_CLUSTER_BREAKER):
                    self.breaker.failed()
                # redis-py's cluster pipeline does not ask for a fresh topology when a node
                # stops answering (its commands do): without this, after a failover every
                # pipeline kept going to the dead primary (bench/cluster.py saw no HIT again)
                self.cluster_client._initialize = True
            raise


class GuardedRedisCluster(RedisCluster):
    """The cluster client with a breaker that timeouts open (one per replica, for all of
    the cluster's nodes: a node that hangs opens it for every namespace for ``cooldown_s``,
    as one Redis would; a node that is down fails its own slots' commands only)."""

    breaker: Breaker

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        self.breaker.check()
        try:
            return await super().execute_command(*args, **kwargs)
        except _OPENS_CLUSTER_BREAKER:
            self.breaker.failed()
            raise

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        pipe = GuardedClusterPipeline(self, transaction)  # type: ignore[abstract]
        pipe.breaker = self.breaker
        return pipe


class GuardedRedis(aioredis.Redis):
    """A client whose commands and pipelines go through the breaker."""

    breaker: Breaker

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.breaker.check()
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except _NOT_ANSWERING as error:
            if not isinstance(error, CircuitOpen):
                self.breaker.failed()
            raise

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = GuardedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.breaker = self.breaker
        return pipe


def primary_for(cluster: RedisCluster, key: str) -> ClusterNode:
    """The primary serving ``key``'s slot, as the client knows the topology now."""
    node = cluster.get_node_from_key(key)
    if node is None:
        raise RedisConnectionError(f"no primary serves the slot of {key!r} now")
    return node


CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster_url(url: str) -> bool:
    """``redis+cluster://`` (or ``rediss+cluster://``): the URL names a Redis Cluster (any
    of its nodes; the client discovers the rest)."""
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def node_url(url: str, host: str | None = None, port: int | None = None) -> str:
    """The plain ``redis://`` URL of one node: the URL's credentials and options, at
    ``host:port`` when given (a cluster node found by discovery)."""
    parts = urlsplit(url)
    scheme = CLUSTER_SCHEMES.get(parts.scheme, parts.scheme)
    netloc = parts.netloc
    if host is not None and port is not None:
        credentials = netloc.rpartition("@")[0]
        netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))


def _options(timeout_s: float | None, name: str | None) -> dict[str, Any]:
    return {
        "protocol": 3,
        "client_name": name,
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s if timeout_s is not None else 5.0,
        "retry_on_timeout": False,
        "retry": Retry(NoBackoff(), 0),
    }


def breaker_openings(client: "aioredis.Redis") -> int:
    """How many times ``client``'s breaker has opened (0 for a client without one)."""
    breaker = getattr(client, "breaker", None)
    return breaker.opened if isinstance(breaker, Breaker) else 0


def answers(port: int) -> bool:
    """The Redis on 127.0.0.1:``port`` answers PING (its AOF loaded), blocking. One try:
    redis-py retries with back-off by default, seconds per PING when something that is not
    Redis holds the port."""
    client = redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_connect_timeout=0.5,
        socket_timeout=2,
        retry=BlockingRetry(NoBackoff(), 0),
    )
    try:
        return bool(client.ping())
    except RedisError:  # loading, refused, or not Redis at all
        return False
    finally:
        client.close()


def connect(
    url: str,
    timeout_s: float | None,
    name: str | None = None,
    cooldown_s: float = DEFAULT_COOLDOWN_S,
) -> "aioredis.Redis":
    """A client with bounded timeouts, no retries and a breaker (``timeout_s`` None: a
    pub/sub connection that waits, without a breaker). A cluster URL gives the cluster
    client (typed as the plain one: the commands the project uses are the same)."""
    options = _options(timeout_s, name)
    if is_cluster_url(url):
        del options["retry_on_timeout"]  # the cluster client takes ``retry`` alone
        cluster = GuardedRedisCluster.from_url(
            node_url(url),
            # a slot without a primary (during a failover) fails its own commands only
            require_full_coverage=False,
            **options,
        )
        assert isinstance(cluster, GuardedRedisCluster)
        cluster.breaker = Breaker(cooldown_s)
        return cluster  # type: ignore[return-value]
    if timeout_s is None:
        return aioredis.Redis.from_url(url, **options)
    client = GuardedRedis.from_url(url, **options)
    assert isinstance(client, GuardedRedis)
    client.breaker = Breaker(cooldown_s)
    return client
