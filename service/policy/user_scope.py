"""Per-end-user scope (opt-in): whose entries a request may be served.

``shared`` (the default): a namespace's entries serve every end user of its tenant.
``user``: the end user joins the scope, so an answer is served only to the user it was
made for: "what is my account balance?" asked by one user never gets another's answer.
The mode is the request's (``scope`` on ``/v1/query``, the ``X-Cache-Scope`` header on
chat), else the tenant's ``scope_mode``, else the service's ``DYNACACHE_SCOPE_MODE``. The
user is the request's ``user`` field (OpenAI's), else the user header
(``DYNACACHE_USER_HEADER``, ``X-User-Id``). In ``user`` mode a request that names no user
is not cached at all (it passes through): there is nobody to keep its answer for.
"""

from dataclasses import dataclass

from service.errors import InvalidInput
from service.policy.precedence import first_set
from service.schemas import ScopeMode, TenantSettings

SCOPE_HEADER = "X-Cache-Scope"
_MODES: tuple[ScopeMode, ...] = ("shared", "user")


def scope_mode(requested: str | None) -> ScopeMode | None:
    """A requested scope mode, in any case and padding (None: none requested)."""
    if requested is None:
        return None
    for mode in _MODES:
        if requested.strip().lower() == mode:
            return mode
    raise InvalidInput(
        "invalid_scope", f"unknown cache scope {requested[:40]!r}: use one of {', '.join(_MODES)}"
    )


@dataclass(frozen=True)
class EndUser:
    mode: ScopeMode = "shared"
    user: str | None = None
    # a cache namespace the request asked for (LiteLLM's ``cache.namespace``): entries of
    # another never serve it; within the tenant, whose namespace the API key decides
    cache_namespace: str | None = None

    @property
    def partition(self) -> str:
        """What joins the scope: the user in ``user`` mode, and the request's cache
        namespace; else nothing."""
        user = self.user or "" if self.mode == "user" else ""
        if self.cache_namespace is None:
            return user
        return f"{user}\x1dcache-namespace\x1d{self.cache_namespace}"

    @property
    def unknown(self) -> bool:
        """``user`` mode without a user: such a request is not cached."""
        return self.mode == "user" and not self.user


def end_user(
    requested: str | None,
    tenant: TenantSettings | None,
    service_mode: ScopeMode,
    user: str | None,
) -> EndUser:
    """The request's scope mode (request, else tenant, else service) and user. A mode
    named in any case is that mode; an unknown one is refused (never the default: a
    misspelt ``User`` used to fall back to ``shared`` and serve one user's answer to
    another)."""
    mode: ScopeMode = first_set(
        scope_mode(requested), tenant.scope_mode if tenant else None, service_mode
    )
    return EndUser(mode, user.strip() if user and user.strip() else None)
