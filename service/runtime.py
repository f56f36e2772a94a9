"""Everything one replica holds while it runs (built by ``service/assembly.py``, the
composition root; handlers reach it typed through ``service/http/dependencies.py``)."""

from dataclasses import dataclass, field

from index.decision.wrong_rate import CheckError
from index.embedding.worker import EmbeddingWorker
from index.store.redis_store import RedisStore
from index.sync.replica_sync import ReplicaSync
from index.vectors.local_index import LocalIndex
from service.engine.audits import check_error
from service.engine.entries import EntryManager
from service.engine.feedback import FeedbackBook
from service.engine.query_path import QueryPath
from service.engine.telemetry import Telemetry
from service.llm.client import LLMClient
from service.proxy.api_proxy import ApiProxy
from service.redis_supervisor import RedisSupervisor
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
    chats: ApiProxy  # /v1/chat/completions
    responses: ApiProxy  # /v1/responses
    messages: ApiProxy  # /v1/messages
    entries: EntryManager
    feedback: FeedbackBook
    tenants: TenantStore
    rate_limiter: RateLimiter
    # the Redis this replica started and watches (None: it was given a Redis URL)
    redis_supervisor: RedisSupervisor | None = field(default=None)

    @property
    def check_error(self) -> CheckError:
        """How often the audits' answer check errs (the estimate is corrected for it)."""
        return check_error(self.settings)

    # what ``/metrics`` reads at each scrape (service/engine/metrics.py's ReplicaView)
    def entries_by_namespace(self) -> dict[str, int]:
        return self.index.count_by_namespace()

    def sub_indexes_by_kind(self) -> dict[str, int]:
        shape = self.index.describe()
        hnsw = shape["hnsw_sub_indexes"]
        return {"flat": shape["sub_indexes"] - hnsw, "hnsw": hnsw}

    def evictions_by_namespace(self) -> dict[str, int]:
        return dict(self.store.evictions)

    def sync_state(self) -> tuple[bool, int, float | None]:
        return self.sync.subscribed, self.sync.last_seq, self.sync.last_event_at

    def decision_stage(self) -> str:
        return self.queries.decision.stage.name

    def embedded_redis_restarts(self) -> int | None:
        return None if self.redis_supervisor is None else self.redis_supervisor.restarts
