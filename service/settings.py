"""Configuration: environment variables prefixed ``DYNACACHE_`` (pydantic-settings)."""

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from index.decision.distance import DEFAULT_THRESHOLD, MAX_DISTANCE
from index.model_paths import resolved
from service.keying.rag import DEFAULT_PATTERNS


def default_replica_id() -> str:
    """``<hostname>-<pid>``: one per process (an in-process cache adds its own suffix)."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DYNACACHE_", extra="ignore")

    # Serving
    host: str = "127.0.0.1"
    port: int = 8000
    # names the replica's Redis connections (CLIENT SETNAME takes no spaces) and its stats
    # keys: a host or pod name, letters, digits and . _ : @ -
    replica_id: str = Field(
        default_factory=default_replica_id, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
    )
    log_level: str = "info"
    # a log line per request (uvicorn's access log): off, the metrics and /v1/stats count them
    access_log: bool = False

    # Tenants: with an admin token every /v1 endpoint needs a key; without one the service
    # runs open, in the one namespace "default", and binds only to loopback unless allowed
    admin_token: SecretStr | None = None
    allow_open: bool = False
    # API keys and tenant settings are cached this long (a revocation takes at most this)
    key_cache_s: float = Field(default=1.0, ge=0, le=60)
    # while Redis does not answer, keys verified this recently keep working
    key_outage_grace_s: float = Field(default=3600.0, ge=0)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    default_rate_limit_per_s: float | None = Field(default=None, gt=0)  # per key; None: none
    default_rate_limit_burst: int = Field(default=20, ge=1)

    @field_validator("admin_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        """An empty DYNACACHE_ADMIN_TOKEN (compose's `${VAR:-}`) means no token, not ''."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _shadow_needs_a_real_llm(self) -> "Settings":
        """Shadow mode compares the LLM's answers: the simulated LLM's are made up."""
        if self.mode == "shadow" and self.llm == "simulated" and not self.audit_simulated:
            raise ValueError(
                "DYNACACHE_MODE=shadow needs a real LLM (DYNACACHE_LLM=openai): the simulated "
                "LLM's answers are made up, so comparing them would measure nothing"
            )
        return self

    @field_validator("onnx_dir", "pair_model_dir", "verifier_path")
    @classmethod
    def _shipped_models(cls, value: Path) -> Path:
        """A relative ``models/...`` path that the working directory lacks is read from the
        models the project ships (``index/model_paths.py``): one resolution everywhere."""
        return resolved(value)

    # Redis: with no URL, an embedded Redis Stack is started with its data in redis_data_dir.
    # redis+cluster://host:port (rediss+cluster:// with TLS) names a Redis Cluster by any node
    redis_url: str | None = None
    redis_data_dir: Path = Path("data/redis")
    # the embedded Redis's AOF fsync: everysec (a machine crash may lose the last second),
    # always (nothing acknowledged is lost; see bench/results/appendfsync.json for its cost)
    redis_appendfsync: Literal["everysec", "always"] = "everysec"
    redis_timeout_s: float = Field(default=0.5, gt=0)
    # the background's commands (index sync pages, drift checks, telemetry flushes): their
    # own connection and breaker, so a bulk read slower than a query's timeout (a drift
    # check's count over a million entries) neither fails nor makes queries pass through
    redis_background_timeout_s: float = Field(default=10.0, gt=0)
    # a write counts as stored once this many replicas of its Redis (its shard's primary,
    # on a cluster) have it (WAIT): then a primary's failure loses no acknowledged entry
    redis_wait_replicas: int = Field(default=0, ge=0, le=8)
    redis_wait_timeout_ms: int = Field(default=200, ge=1, le=10_000)

    # Embedding and search
    # onnx: the shipped model (float32 compute, int8-rounded weights; docs/configuration.md);
    # onnx-fp32 / onnx-int8: `make models`' exports; torch: the reference
    embedder: Literal["onnx", "onnx-fp32", "onnx-int8", "torch"] = "onnx"
    model_path: str | None = None  # torch backend: a sentence-transformers folder
    # onnx-fp32/-int8: where the export is cached
    onnx_dir: Path = Field(default=Path("models/onnx"), validate_default=True)
    threshold: float = Field(default=DEFAULT_THRESHOLD, ge=0, le=MAX_DISTANCE)
    top_k: int = Field(default=4, ge=1, le=100)
    # lanes embed in parallel, each on embed_threads cores (None: one lane per core available,
    # the cores shared out between them; torch: one lane on the backend's default threads)
    embed_lanes: int | None = Field(default=None, ge=1, le=64)
    embed_threads: int | None = Field(default=None, ge=1)
    embed_max_batch: int = Field(default=1, ge=1)  # > 1 turns micro-batching on
    embed_max_wait_ms: float = Field(default=0.0, ge=0, le=50)

    # Local index: exact below hnsw_min_entries per (namespace, scope), HNSW above
    hnsw_min_entries: int = Field(default=20_000, ge=1)
    hnsw_m: int = Field(default=32, ge=4, le=128)
    # how HNSW sub-indexes store vectors: float32, fp16 or sq8. fp16 by default: on the QQP
    # dev split its decisions agreed with float32's on >= 99.95 % of lookups in every seed,
    # at 58 % of the memory; sq8 (37 %) fell to 99.05 % in one (bench/compression.py)
    index_codec: Literal["float", "fp16", "sq8"] = "fp16"
    hnsw_ef_search: int = Field(default=128, ge=1)
    hnsw_ef_construction: int = Field(default=40, ge=4)
    compact_ratio: float = Field(default=0.2, gt=0, le=1)

    # Entries
    default_ttl_s: int = Field(default=7 * 24 * 3600, ge=0)  # 0 = entries never expire
    # fixed: an entry lives ttl; sliding: each HIT restarts ttl; adaptive: each HIT gives
    # ttl × (1 + log2(1 + hits)), at most ttl_max_s
    ttl_policy: Literal["fixed", "sliding", "adaptive"] = "fixed"
    ttl_max_s: int = Field(default=30 * 24 * 3600, ge=1)
    # capacity per namespace (None: unbounded); a full namespace evicts by lru or lfu
    max_entries_per_namespace: int | None = Field(default=None, ge=1)
    eviction: Literal["lru", "lfu"] = "lru"
    max_prompt_chars: int = Field(default=32_000, ge=1)
    # a longer stored answer is refused (/v1/entries: 422) or not kept (an LLM's: served)
    max_response_chars: int = Field(default=1_000_000, ge=1)

    # Pair model (index/decision/pair_model.py): a cross-encoder judging the nearest candidate
    # inside its radius, picked up without a restart once built (its folder is checked every
    # decision_reload_s). auto: in force when its build found it beats the static threshold
    # at the same recall on the tune pairs; on: whenever built; off: never. Above the
    # verifier, which is above the static threshold.
    pair_model: Literal["auto", "on", "off"] = "auto"
    pair_model_dir: Path = Field(default=Path("models/pair"), validate_default=True)
    decision_reload_s: float = Field(default=5.0, gt=0)

    # Verifier (index/verifier.py): a trained second stage for candidates inside a radius;
    # radius and cut default to the artifact's (chosen on the tune split). Without the
    # artifact the static threshold decides. Off by default: it serves fewer wrong answers
    # than the static threshold at the same recall, but misses its precision target
    # (docs/hit-quality.md)
    verifier: Literal["on", "off"] = "off"
    verifier_path: Path = Field(default=Path("models/verifier/verifier.npz"), validate_default=True)
    verifier_radius: float | None = Field(default=None, gt=0, le=MAX_DISTANCE)
    verifier_cut: float | None = Field(default=None, ge=0, le=1)
    # the pair model's own knobs (unset: its build's operating point, chosen on tune); each
    # stage has its own: DYNACACHE_THRESHOLD tunes the static stage only
    pair_model_radius: float | None = Field(default=None, gt=0, le=MAX_DISTANCE)
    pair_model_cut: float | None = Field(default=None, ge=0, le=1)

    # Audited hits (service/engine/audits.py): this share of semantic HITs is asked of the
    # LLM again in the background and the answers compared, for the live wrong-answer rate
    # (per tenant: audit_rate; 0 turns audits off); at most audit_max_per_s per namespace
    audit_rate: float = Field(default=0.02, ge=0, le=1)
    audit_max_per_s: float = Field(default=1.0, gt=0, le=1000)
    # two answers whose embeddings' cosine reaches this are the same answer (after the
    # exact comparison of their normal forms)
    audit_answer_cut: float = Field(default=0.8, ge=0, le=1)
    # how two answers are compared when their normal forms differ: "embedding" (the cut
    # above; free) or "llm" (the upstream is asked whether both answer the question alike:
    # one more call per audit, counted in the audits' cost)
    audit_check: Literal["embedding", "llm"] = "embedding"
    # audits and shadow mode compare the LLM's answers: with the simulated LLM (made-up
    # answers) they are off, unless this is set (tests; the library, whose misses are the
    # application's own LLM's)
    audit_simulated: bool = False
    # serve: HITs are served; shadow: every request goes to the LLM and the cache only
    # measures what it would have served (docs/shadow.md; per tenant and per request: mode)
    mode: Literal["serve", "shadow"] = "serve"
    # how often that check errs (different answers called the same; equal ones called
    # different): the estimate and the bound are corrected for it (None: the embedding
    # check's error as measured on hard answers, bench/audit.py; the LLM judge's: none)
    audit_false_same: float | None = Field(default=None, ge=0, lt=0.5)
    audit_false_different: float | None = Field(default=None, ge=0, lt=0.5)
    # an operator's bound on the wrong-answer rate of served semantic HITs (None: none; per
    # tenant and per request max_wrong_rate): HITs are served only as far as the audits
    # show the bound holds (index/decision/wrong_rate.py)
    max_wrong_rate: float | None = Field(default=None, gt=0, lt=1)
    # with a bound in force, a MISS's nearest candidate this near (squared L2, past the
    # threshold too) is compared with the MISS's answer, free: each entry learns how far it
    # is right (its verified radius), and a candidate inside that may be served past the
    # threshold once such candidates hold the bound
    learn_radius: float = Field(default=0.6, ge=0, le=4)

    # OpenTelemetry traces of lookups (the [otel] extra; service/engine/tracing.py): to the
    # process's tracer provider, else over OTLP/HTTP as the OTEL_EXPORTER_OTLP_* variables say
    traces: bool = False

    # RAG normalisation: context blocks are cut out of the prompt and join the scope as a
    # hash; only the question is embedded. Patterns: see service/rag.py (JSON list in env)
    rag_normalise: bool = True
    rag_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_PATTERNS))

    # Chat Completions: a request with a temperature above this bypasses the cache (its
    # caller asked for variety); n > 1 always bypasses
    chat_max_temperature: float = Field(default=1.0, ge=0, le=2)
    # per-end-user scope: "shared" (a namespace's entries serve all its users) or "user"
    # (each end user's are their own: the request's user field, else this header)
    scope_mode: Literal["shared", "user"] = "shared"
    user_header: str = Field(default="X-User-Id", min_length=1)
    # the user header alone names the end user (a body's user field is not read for the
    # scope): for a gateway that sets the header for its users, whose bodies it passes on
    user_header_authoritative: bool = False
    max_bulk_entries: int = Field(default=1_000, ge=1)

    # LLM on a miss
    llm: Literal["simulated", "openai"] = "simulated"
    sim_latency_ms: float = Field(default=1000.0, ge=0)
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr = SecretStr("")
    openai_model: str = "gpt-4o-mini"
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=2, ge=0)
    llm_retry_backoff_s: float = Field(default=0.5, ge=0)
    # the Anthropic Messages upstream of /v1/messages (unset: the chat LLM answers those)
    anthropic_base_url: str | None = None
    anthropic_api_key: SecretStr = SecretStr("")
    anthropic_version: str = "2023-06-01"
    price_per_call_usd: float = Field(default=0.002, ge=0)
    # how long identical misses wait for the one LLM call they share (then call themselves)
    coalesce_lock_s: float = Field(default=30.0, gt=0)
    # the lock's life between its leader's renewals: how long a dead leader holds others back
    coalesce_lock_life_s: float = Field(default=3.0, gt=0)

    # Telemetry: counts are sent to Redis in one pipeline per interval
    stats_flush_interval_s: float = Field(default=0.2, gt=0, le=60)
    # /metrics: namespaces past this many share the label "(other)"
    metrics_max_namespaces: int = Field(default=50, ge=1, le=10_000)
    # /metrics answers the admin token only (keys on); off, anyone who reaches it, as
    # Prometheus scrapers expect (keep it on the internal network)
    metrics_require_admin: bool = False
    # /v1/insights and the dashboard show the prompts of per-user scope (one end user's
    # own questions) to the admin (open mode: to anyone); never to a tenant's keys
    show_personal_prompts: bool = False

    # Replica sync
    rebuild_page_size: int = Field(default=1000, ge=1)
    # the local index on disk, for a restart in seconds (None: beside the embedded Redis's
    # folder, <redis_data_dir>/../index-snapshot); written this often and at a clean stop
    index_snapshots: bool = True
    index_snapshot_dir: Path | None = None
    index_snapshot_interval_s: float = Field(default=300.0, gt=0)
    # namespace-affine: hold only the namespaces asked for here (the load balancer hashing
    # each tenant to a consistent few replicas); one not asked for this long is given up
    namespace_affinity: bool = False
    namespace_release_s: float = Field(default=600.0, gt=0)
    drift_check_interval_s: float = Field(default=30.0, gt=0)
