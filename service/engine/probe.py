"""One lookup as the client asked for it: what is searched for, where, how it is decided
(the request's choices, else the tenant's, else the service's) and how a miss's answer is
kept."""

import time
from dataclasses import dataclass, field

from index.decision.judges import StageName
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
from service.tenancy.tenants import retention_for


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


# each stage's own knobs: (its radius, its cut); the static stage has no cut
KNOBS: dict[StageName, tuple[str, str | None]] = {
    "static": ("threshold", None),
    "pair-model": ("pair_model_radius", "pair_model_cut"),
    "verifier": ("verifier_radius", "verifier_cut"),
}


@dataclass(frozen=True)
class Asks:
    """A request's own choices for one lookup (None: the tenant's, else the service's)."""

    mode: CacheMode = "default"
    threshold: float | None = None  # the static stage's
    ttl: int | None = None
    ttl_policy: str | None = None
    verifier_cut: float | None = None
    max_wrong_rate: float | None = None
    replay: Produce | None = None
    personal: bool = False
    pair_model_radius: float | None = None
    pair_model_cut: float | None = None
    verifier_radius: float | None = None
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
        """How the lookup decides: the stage in force when it began, its own radius and cut
        (the request's, else the tenant's, else the service's, else the build's), the bound,
        the request's max-age. A request naming another stage's knob is refused."""
        judge = self.decision.judge
        stage: StageName = judge.name if judge is not None else "static"
        _refuse_other_stages(asks, stage)
        radius_knob, cut_knob = KNOBS[stage]
        radius = self._knob(radius_knob, asks, tenant, judge.radius if judge else None)
        cut = self._knob(cut_knob, asks, tenant, judge.cut) if judge and cut_knob else None
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
        return Terms(radius, judge, cut, bound, control.max_age)

    def _knob(
        self, name: str, asks: Asks, tenant: TenantSettings | None, built: float | None
    ) -> float:
        """A stage's knob: the request's, else the tenant's, else the service's setting,
        else (a judge's) its build's."""
        values: list[float | None] = [
            getattr(asks, name),
            getattr(tenant, name, None),
            getattr(self.settings, name),
            built,
        ]
        return first_set(*values)

    def reach(self, tenant: TenantSettings | None) -> float:
        """How far this tenant's lookups look at candidates unless a request sets its own
        radius: the radius in force, and ``learn_radius`` (as far as a lookup under a bound
        looks; any request may name a bound)."""
        terms = self.terms(tenant, CacheControl(), Asks())
        return max(terms.radius, self.settings.learn_radius)

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
            mode="bypass" if who.unknown else request.cache,
            threshold=request.threshold,
            ttl=request.ttl,
            ttl_policy=request.ttl_policy,
            verifier_cut=request.verifier_cut,
            max_wrong_rate=request.max_wrong_rate,
            personal=who.personal,
            pair_model_radius=request.pair_model_radius,
            pair_model_cut=request.pair_model_cut,
            verifier_radius=request.verifier_radius,
            serving=request.mode,
        )
        return self.probe(ns, key, request.model, tenant, control or CacheControl(), asks)


def _refuse_other_stages(asks: Asks, stage: StageName) -> None:
    """A request's knob tunes one stage: naming one of a stage not in force is an error,
    never a silent replacement of the stage in force's own."""
    for other, knobs in KNOBS.items():
        named = [knob for knob in knobs if knob is not None and getattr(asks, knob) is not None]
        if other != stage and named:
            own = " / ".join(k for k in KNOBS[stage] if k is not None)
            raise InvalidInput(
                "knob_not_in_force",
                f"{', '.join(named)} tunes the {other} stage; the {stage} stage decides here "
                f"(its knobs: {own})",
            )
