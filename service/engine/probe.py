"""One lookup as the client asked for it: what is searched for, where, how it is decided
(the request's choices, else the tenant's, else the service's) and how a miss's answer is
kept."""

import time
from dataclasses import dataclass, field

from index.decision.distance import resolve_threshold
from index.decision.judges import Judge
from index.decision.stage import DecisionStage
from index.decision.verdict import Terms
from index.store.records import Retention
from service.engine.audits import comparisons_off
from service.engine.stage_times import StageTimes
from service.engine.tracing import LookupSpan
from service.errors import InvalidInput
from service.keying.prompt_key import PromptKey, prompt_key
from service.keying.rag import RagSplitter
from service.llm.client import Produce
from service.policy.cache_control import CacheControl
from service.policy.precedence import first_set
from service.policy.user_scope import EndUser, ScopeAsked, end_user
from service.policy.validation import validate_context, validate_prompt
from service.schemas import CacheMode, QueryRequest, ServingMode, TenantSettings
from service.settings import Settings
from service.tenancy.tenants import effective_threshold, retention_for


@dataclass(frozen=True)
class Probe:
    """One lookup: what is searched for, where, how it is decided, how a miss is kept."""

    ns: str
    key: PromptKey
    model: str
    terms: Terms
    retention: Retention
    mode: CacheMode = "default"
    control: CacheControl = field(default_factory=CacheControl)
    audit_rate: float = 0.0  # the share of its semantic HITs audited (service/engine/audits)
    # the upstream request a MISS of this lookup sends, which an audit of its HIT sends
    # again (None: it cannot be replayed, and its HITs are not audited)
    replay: Produce | None = None
    personal: bool = False  # per-user scope: its prompt is not shown to others (insights)
    shadow: bool = False  # shadow mode: the LLM answers, the cache only measures (shadow.py)
    started: float = field(default_factory=time.perf_counter)
    times: StageTimes = field(default_factory=lambda: StageTimes(LookupSpan()))


@dataclass(frozen=True)
class Asks:
    """A request's own choices for one lookup (None: the tenant's, else the service's)."""

    mode: CacheMode = "default"
    threshold: float | None = None
    ttl: int | None = None
    ttl_policy: str | None = None
    verifier_cut: float | None = None
    max_wrong_rate: float | None = None
    replay: Produce | None = None
    personal: bool = False
    serving: ServingMode | None = None  # serve or shadow


class Probes:
    """Builds probes: the one place the request → tenant → service precedence is applied."""

    def __init__(self, settings: Settings, decision: DecisionStage, splitter: RagSplitter) -> None:
        self.settings = settings
        self.decision = decision
        self.splitter = splitter

    def probe(
        self,
        ns: str,
        key: PromptKey,
        model: str | None,
        tenant: TenantSettings | None,
        control: CacheControl,
        asks: Asks,
    ) -> Probe:
        """A lookup with the request's choices, else the tenant's, else the service's."""
        mode = "refresh" if control.no_cache and asks.mode == "default" else asks.mode
        return Probe(
            ns=ns,
            key=key,
            model=model or "",
            terms=self.terms(tenant, control, asks),
            retention=retention_for(self.settings, tenant, asks.ttl, asks.ttl_policy),
            mode=mode,
            control=control,
            audit_rate=first_set(tenant.audit_rate if tenant else None, self.settings.audit_rate),
            replay=asks.replay,
            personal=asks.personal,
            shadow=self.shadow(tenant, asks) and mode == "default",
        )

    def shadow(self, tenant: TenantSettings | None, asks: Asks) -> bool:
        """Whether the lookup only measures (shadow mode): the request's mode, else the
        tenant's, else the service's. The simulated LLM's answers are made up: shadow mode
        with it would measure nothing, and is refused."""
        serving = first_set(asks.serving, tenant.mode if tenant else None, self.settings.mode)
        off = comparisons_off(self.settings)
        if serving == "shadow" and off is not None:
            raise InvalidInput("shadow_needs_a_real_llm", f"shadow mode is off: {off}")
        return serving == "shadow"

    def terms(self, tenant: TenantSettings | None, control: CacheControl, asks: Asks) -> Terms:
        """How the lookup decides: the stage in force when it began, its radius and cut,
        the bound, the request's max-age."""
        judge = self.decision.judge
        cut = None
        if judge is not None:
            cut = first_set(
                asks.verifier_cut,
                tenant.verifier_cut if tenant else None,
                self.settings.verifier_cut,
                judge.cut,
            )
        bound = next(
            (
                b
                for b in (
                    asks.max_wrong_rate,
                    tenant.max_wrong_rate if tenant else None,
                    self.settings.max_wrong_rate,
                )
                if b is not None
            ),
            None,
        )
        radius = self.radius(asks.threshold, tenant, judge)
        return Terms(radius, judge, cut, bound, control.max_age)

    def radius(
        self, asked: float | None, tenant: TenantSettings | None, judge: Judge | None
    ) -> float:
        """The request's threshold, else the tenant's, else the service's (with ``judge``
        in force, the radius inside which it judges)."""
        default = self.settings.threshold
        if judge is not None:
            default = first_set(self.settings.verifier_radius, judge.radius)
        return resolve_threshold(asked, effective_threshold(default, tenant))

    def reach(self, tenant: TenantSettings | None) -> float:
        """How far this tenant's lookups look at candidates unless a request sets its own
        radius: the radius in force, and ``learn_radius`` (as far as a lookup under a bound
        looks; any request may name a bound)."""
        return max(self.radius(None, tenant, self.decision.judge), self.settings.learn_radius)

    def for_request(
        self,
        request: QueryRequest,
        ns: str,
        tenant: TenantSettings | None,
        control: CacheControl | None,
        who: EndUser | None,
    ) -> Probe:
        """The lookup a ``/v1/query`` body (or the library's call) asks for (``who``: whose
        entries serve it, as the request's body and headers say; None: as its body says)."""
        validate_prompt(request.prompt, self.settings.max_prompt_chars)
        validate_context(request.context, self.settings.max_prompt_chars)
        if who is None:
            asked = ScopeAsked(body_mode=request.scope, body_user=request.user)
            who = end_user(asked, tenant, self.settings.scope_mode)
        key = prompt_key(
            self.splitter, request.prompt, request.model, [request.context], user=who.partition
        )
        asks = Asks(
            "bypass" if who.unknown else request.cache,
            request.threshold,
            request.ttl,
            request.ttl_policy,
            request.verifier_cut,
            request.max_wrong_rate,
            personal=who.personal,
            serving=request.mode,
        )
        return self.probe(ns, key, request.model, tenant, control or CacheControl(), asks)
