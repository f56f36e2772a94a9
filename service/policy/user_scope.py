"""Per-end-user scope (opt-in): whose entries a request may be served.

``shared`` (the default): a namespace's entries serve every end user of its tenant;
``user``: the end user joins the scope, so one user's "what is my balance?" never gets
another's answer. The mode is the request's (body ``scope``, ``X-Cache-Scope``), else the
tenant's, else ``DYNACACHE_SCOPE_MODE``. The user is the body's (``user``, Anthropic's
``metadata.user_id``), else the user header (alone when it is authoritative). In ``user``
mode a request naming no user passes through uncached.
"""

from dataclasses import dataclass
from typing import Any

from service.errors import InvalidInput
from service.policy.precedence import first_set
from service.policy.validation import MAX_USER_CHARS, client_name, one_of
from service.schemas import ScopeMode, TenantSettings

SCOPE_HEADER = "X-Cache-Scope"
BODY_FIELD = "scope"  # a client API body's own scope field: the cache's, never forwarded
_MODES: tuple[ScopeMode, ...] = ("shared", "user")


def scope_mode(requested: str | None) -> ScopeMode | None:
    """A requested scope mode, in any case and padding (None: none requested)."""
    return one_of(requested, _MODES, "invalid_scope", "cache scope")


def take_body_scope(body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A client API body without its ``scope`` field, and the mode it named (None: none).
    Left in, it went to the upstream as if it were a model parameter, and asked nothing."""
    if BODY_FIELD not in body:
        return body, None
    asked = body[BODY_FIELD]
    if asked is not None and not isinstance(asked, str):
        raise InvalidInput("invalid_scope", f"body.scope must be one of {', '.join(_MODES)}")
    return {name: value for name, value in body.items() if name != BODY_FIELD}, asked


@dataclass(frozen=True)
class ScopeAsked:
    """What a request says about whose entries serve it, where it says it."""

    body_mode: str | None = None  # the body's ``scope``
    header_mode: str | None = None  # X-Cache-Scope
    body_user: str | None = None  # the body's ``user`` (``metadata.user_id``)
    header_user: str | None = None  # the user header


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
    def personal(self) -> bool:
        """Kept for one end user: such prompts are not shown to others (insights)."""
        return self.mode == "user"

    @property
    def unknown(self) -> bool:
        """``user`` mode without a user: such a request is not cached."""
        return self.mode == "user" and not self.user


def end_user(
    asked: ScopeAsked,
    tenant: TenantSettings | None,
    service_mode: ScopeMode,
    header_authoritative: bool = False,
) -> EndUser:
    """The request's scope mode (the request's, else the tenant's, else the service's) and
    user. A mode named in any case is that mode; an unknown one is refused (never the
    default: a misspelt ``User`` used to fall back to ``shared`` and serve one user's answer
    to another). Marked personal in any of its ways, a request is personal."""
    modes = {scope_mode(asked.body_mode), scope_mode(asked.header_mode)}
    requested: ScopeMode | None = (
        "user" if "user" in modes else "shared" if "shared" in modes else None
    )
    mode: ScopeMode = first_set(requested, tenant.scope_mode if tenant else None, service_mode)
    body_user = None if header_authoritative else asked.body_user
    if body_user is not None and body_user.strip():
        user = client_name(body_user, "the body's end user", MAX_USER_CHARS)
    elif asked.header_user is not None:
        user = client_name(asked.header_user, "the user header", MAX_USER_CHARS)
    else:
        user = None
    return EndUser(mode, user)
