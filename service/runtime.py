"""Everything one replica holds while it runs (built by ``service/app.py``, the composition
root; handlers reach it typed through ``service/http/dependencies.py``)."""

from dataclasses import dataclass

from index.embedding.worker import EmbeddingWorker
from index.store.redis_store import RedisStore
from index.sync.replica_sync import ReplicaSync
from index.vectors.local_index import LocalIndex
from service.engine.entries import EntryManager
from service.engine.feedback import FeedbackBook
from service.engine.query_path import QueryPath
from service.engine.telemetry import Telemetry
from service.llm.client import LLMClient
from service.proxy.chat_completions import ChatCompletions
from service.settings import Settings
from service.tenancy.rate_limit import RateLimiter
from service.tenancy.tenants import TenantStore


@dataclass
class Runtime:
    """Everything one replica holds while it runs."""

    settings: Settings
    store: RedisStore
    index: LocalIndex
    sync: ReplicaSync
    embedder: EmbeddingWorker
    llm: LLMClient
    telemetry: Telemetry
    queries: QueryPath
    chats: ChatCompletions
    entries: EntryManager
    feedback: FeedbackBook
    tenants: TenantStore
    rate_limiter: RateLimiter
