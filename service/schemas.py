"""Request and response bodies of the HTTP API (pydantic; unknown fields are refused)."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from index.decision.distance import MAX_DISTANCE
from service.policy.validation import MAX_USER_CHARS

CacheMode = Literal["default", "bypass", "refresh", "only"]
TtlPolicy = Literal["fixed", "sliding", "adaptive"]
ScopeMode = Literal["shared", "user"]
# SHADOW-HIT, SHADOW-MISS: answered by the LLM in shadow mode; what the cache would have done
CacheStatus = Literal["HIT", "MISS", "BYPASS", "SHADOW-HIT", "SHADOW-MISS"]
# serve: HITs are served; shadow: the LLM answers every request, the cache only measures
ServingMode = Literal["serve", "shadow"]


def _folded(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


# a scope mode named in any case ("User" is user: never a silent fall-back to shared)
ScopeModeIn = Annotated[ScopeMode, BeforeValidator(_folded)]


MAX_TTL_S = 10 * 365 * 24 * 3600  # ten years; Redis refuses far larger EXPIREs


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer."""

    error: ErrorDetail


class QueryRequest(_Strict):
    prompt: str = Field(min_length=1, description="The question; its length limit is a setting.")
    model: str | None = Field(default=None, max_length=200, description="Part of the scope.")
    context: str | None = Field(default=None, description="RAG context; part of the scope.")
    threshold: float | None = Field(
        default=None,
        gt=0,
        le=MAX_DISTANCE,
        description="The static stage: the squared-L2 HIT threshold for this lookup, in (0, 4] "
        "(refused when a judge decides: use its own knobs).",
    )
    pair_model_radius: float | None = Field(
        default=None,
        gt=0,
        le=MAX_DISTANCE,
        description="The pair-model stage: the distance inside which it judges candidates.",
    )
    pair_model_cut: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="The pair-model stage: the least probability a candidate needs to be "
        "served (0 serves the nearest candidate inside the radius and reports its confidence).",
    )
    verifier_radius: float | None = Field(
        default=None,
        gt=0,
        le=MAX_DISTANCE,
        description="The verifier stage: the distance inside which it judges candidates.",
    )
    ttl: int | None = Field(
        default=None, ge=0, le=MAX_TTL_S, description="Seconds the stored entry lives; 0: always."
    )
    ttl_policy: TtlPolicy | None = Field(
        default=None, description="What a HIT does to the stored entry's expiry."
    )
    verifier_cut: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="The verifier stage: the least probability a candidate needs to be served "
        "(0 serves the nearest candidate inside the radius and reports its confidence).",
    )
    cache: CacheMode = Field(
        default="default",
        description="default: lookup, else LLM and store; bypass: LLM only; refresh: LLM and "
        "overwrite; only: lookup, never the LLM.",
    )
    user: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_USER_CHARS,
        description="The end user (else the user header); with scope 'user', entries are "
        "theirs alone.",
    )
    max_wrong_rate: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Serve semantic HITs only as far as audits show this wrong-answer rate "
        "holds (default: the tenant's, else the service's, else no bound).",
    )
    scope: ScopeModeIn | None = Field(
        default=None,
        description="shared: the namespace's entries serve every user; user: only the "
        "asking user's (default: the tenant's, else the service's).",
    )
    mode: ServingMode | None = Field(
        default=None,
        description="serve: a HIT is served; shadow: the LLM answers and the cache only "
        "measures what it would have served (default: the X-Cache-Mode header, else the "
        "tenant's, else the service's).",
    )


class QueryResponse(BaseModel):
    response: str | None
    status: CacheStatus
    distance: float | None
    similarity: float | None
    matched_prompt: str | None
    entry_id: str | None
    latency_ms: float
    llm_latency_ms: float | None
    namespace: str
    created: float | None = Field(
        default=None, description="When the entry served (HIT) or stored (MISS) was stored."
    )
    expires_at: float | None = Field(
        default=None, description="When that entry expires (epoch s; null: never)."
    )
    confidence: float | None = Field(
        default=None, description="A judge in force: its probability that the candidate is right."
    )
    refused_by: str | None = Field(
        default=None,
        description="MISS with a near candidate: what refused it (threshold, a rule such as "
        "rule:numbers or rule:instruction, pair-model, verifier, feedback, max-age, bound).",
    )


class EntryFields(_Strict):
    """An entry as a client gives it: ``POST /v1/entries`` takes these fields, and
    ``dyna-cache import`` reads them in each line of an export, under the same schema (and
    the same limits in force, ``service/policy/validation.validate_entry``)."""

    prompt: str = Field(min_length=1)
    response: str
    model: str | None = Field(default=None, max_length=200)
    ttl: int | None = Field(default=None, ge=0, le=MAX_TTL_S)


class EntryIn(EntryFields):
    context: str | None = None


class EntriesRequest(_Strict):
    entries: list[EntryIn] = Field(min_length=1)
    overwrite: bool = Field(
        default=False,
        description="Replace the answer of an entry the namespace already holds for the same "
        "prompt. A tenant's key needs it (else 409, nothing changed); the admin token does not.",
    )


class StoredEntryOut(BaseModel):
    entry_id: str
    prompt: str


class EntriesResponse(BaseModel):
    stored: int
    entries: list[StoredEntryOut]


class DeletedResponse(BaseModel):
    deleted: int


class TenantSettings(_Strict):
    """Per-tenant overrides of the service's defaults (unset: the default applies)."""

    threshold: float | None = Field(
        default=None, gt=0, le=MAX_DISTANCE, description="The static stage's HIT threshold."
    )
    pair_model_radius: float | None = Field(default=None, gt=0, le=MAX_DISTANCE)
    pair_model_cut: float | None = Field(default=None, ge=0, le=1)
    verifier_radius: float | None = Field(default=None, gt=0, le=MAX_DISTANCE)
    default_ttl_s: int | None = Field(default=None, ge=0, le=MAX_TTL_S)
    ttl_policy: TtlPolicy | None = None
    ttl_max_s: int | None = Field(default=None, ge=1, le=MAX_TTL_S)
    eviction: Literal["lru", "lfu"] | None = None
    rate_limit_per_s: float | None = Field(default=None, ge=0.001, le=1e6, description="Per key.")
    rate_limit_burst: int | None = Field(default=None, ge=1, le=1_000_000)
    max_entries: int | None = Field(
        default=None, ge=1, description="Capacity: a new entry beyond it evicts one (eviction)."
    )
    verifier_cut: float | None = Field(
        default=None, ge=0, le=1, description="The verifier stage: the least probability to serve."
    )
    scope_mode: ScopeMode | None = Field(
        default=None, description="shared, or user: each end user's entries are their own."
    )
    audit_rate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="The share of semantic HITs audited against the LLM (0: none).",
    )
    max_wrong_rate: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="A bound on the audited wrong-answer rate of served semantic HITs.",
    )
    mode: ServingMode | None = Field(
        default=None,
        description="serve, or shadow: the LLM answers every request and the cache only "
        "measures what it would have served.",
    )


class TenantCreate(_Strict):
    namespace: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    settings: TenantSettings = Field(default_factory=TenantSettings)


class KeyIssue(_Strict):
    role: Literal["tenant"] = "tenant"


class KeyIssued(BaseModel):
    key: str = Field(description="Shown this once; only its SHA-256 is stored.")
    key_id: str
    namespace: str


class FeedbackIn(_Strict):
    entry_id: str = Field(description="The entry that was served (X-Cache-Entry).")
    prompt: str = Field(min_length=1, description="The query it was served for.")
    # a JSON boolean: "yes", "true" or 1 is a 422, never read as true
    correct: StrictBool = Field(description="Was the served answer right for that query?")


class FeedbackOut(BaseModel):
    entry_id: str
    correct: bool
    distance: float = Field(description="Squared L2 between the prompt and the entry.")
    feedback_radius: float | None = Field(
        description="Queries at this distance or farther are no longer served this entry."
    )
