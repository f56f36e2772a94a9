"""Whose entries serve a request: its scope mode and end user, as its body and headers say
(``service/policy/user_scope.py`` holds the rules)."""

from fastapi import Request

from service.errors import InvalidInput
from service.policy.user_scope import SCOPE_HEADER, EndUser, ScopeAsked, end_user
from service.runtime import Runtime
from service.schemas import TenantSettings


def one_header(request: Request, name: str) -> str | None:
    """A header that may be given once (None: not given). Twice is a 422, never the first
    one's word: a client's copy sent before a gateway's must not speak for it."""
    values = request.headers.getlist(name)
    if len(values) > 1:
        raise InvalidInput("duplicate_header", f"{name} is given {len(values)} times: give it once")
    return values[0] if values else None


def end_user_of(
    request: Request,
    runtime: Runtime,
    tenant: TenantSettings | None,
    body_mode: str | None,
    body_user: str | None,
) -> EndUser:
    """The request's scope mode and end user, from its body (``body_mode``, ``body_user``)
    and its headers (``X-Cache-Scope``, the user header)."""
    settings = runtime.settings
    asked = ScopeAsked(
        body_mode,
        one_header(request, SCOPE_HEADER),
        body_user,
        one_header(request, settings.user_header),
    )
    return end_user(asked, tenant, settings.scope_mode, settings.user_header_authoritative)
