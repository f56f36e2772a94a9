"""Dyna-Cache in your own process: the semantic cache as a library.

    from dyna_cache import SemanticCache          # async
    from dyna_cache import SyncSemanticCache      # blocking twin
    from dyna_cache.langchain import DynaCacheLLMCache  # LangChain (extra: [langchain])

An in-process cache is a replica like any behind the HTTP service: the same Redis, entries,
decision stage and tenants. See docs/library.md.
"""

from dyna_cache.blocking import SyncSemanticCache
from dyna_cache.cache import CallLLM, NotStarted, RedisUnreachable, SemanticCache
from dyna_cache.results import Hit, Miss
from service.errors import CacheError, InvalidInput, NotFound
from service.settings import Settings
from service.version import __version__

__all__ = [
    "CacheError",
    "CallLLM",
    "Hit",
    "InvalidInput",
    "Miss",
    "NotFound",
    "NotStarted",
    "RedisUnreachable",
    "SemanticCache",
    "Settings",
    "SyncSemanticCache",
    "__version__",
]
