"""The Redis errors a caller of the store may catch, from one place: no module outside
``index/store`` imports the ``redis`` library (``tests/test_layers.py`` checks it).

``RedisError`` is any error of Redis or of the client; ``STORE_UNAVAILABLE`` the ones that
mean Redis does not answer or take writes now (``index/store/connection.py``);
``RedisClusterException`` what a cluster client raises when it finds no node to ask."""

from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from index.store.connection import STORE_UNAVAILABLE, CircuitOpen, NotReplicated

__all__ = [
    "STORE_UNAVAILABLE",
    "CircuitOpen",
    "NotReplicated",
    "RedisClusterException",
    "RedisError",
    "RedisTimeoutError",
]
