"""Who is asking: API keys (``Authorization: Bearer`` or ``X-API-Key``), the admin token,
or nobody in open mode; and the per-key rate limit.

With ``DYNACACHE_ADMIN_TOKEN`` set, every /v1 endpoint needs a key: a tenant's key confines
the request to the tenant's namespace; the admin token opens the admin API (and the
``default`` namespace). Without it the service is open, in the ``default`` namespace only.
Keys and tokens are compared in constant time and never logged or echoed. While Redis does
not answer, keys verified in the last hour keep working (``TenantStore``) and the rate limit
is not applied (its buckets live in Redis); a key never verified is refused (503).
"""

import hmac
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from index.store.connection import STORE_UNAVAILABLE
from service.http.dependencies import runtime_of
from service.http.errors import ApiError
from service.policy.precedence import first_set
from service.runtime import Runtime
from service.schemas import TenantSettings
from service.tenancy.tenants import DEFAULT_NAMESPACE

_MAX_KEY_CHARS = 256

bearer_scheme = HTTPBearer(auto_error=False, description="An API key, or the admin token.")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")


@dataclass(frozen=True)
class Principal:
    ns: str
    role: Literal["open", "tenant", "admin"]
    key_id: str | None
    settings: TenantSettings | None


def _unauthorised(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
    header_key: str | None = Security(api_key_scheme),
) -> Principal:
    """The dependency (which also documents both schemes in OpenAPI)."""
    presented = bearer.credentials if bearer is not None else header_key
    return await principal_for(runtime_of(request), presented)


def presented_key(request: Request) -> str | None:
    """The key a request presents, read as the two schemes read it: ``Authorization: Bearer
    <key>`` first, else ``X-API-Key`` (for a route that skips the dependency's cost)."""
    scheme, _, credentials = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get("x-api-key")


# what a route that calls ``principal_for`` itself declares, to document its security
SECURITY_DOCUMENTED: dict[str, Any] = {
    "security": [{"HTTPBearer": []}, {"APIKeyHeader": []}],
}


async def principal_for(runtime: Runtime, presented: str | None) -> Principal:
    """Who presents this key (the admin, a tenant, or nobody in open mode); rate-limited."""
    admin_token = runtime.settings.admin_token
    if admin_token is None:
        return Principal(DEFAULT_NAMESPACE, "open", None, None)
    if not presented:
        raise _unauthorised("missing_key", "an API key is required (Authorization: Bearer ...)")
    if len(presented) > _MAX_KEY_CHARS or not presented.isprintable():
        raise _unauthorised("invalid_key", "the API key is malformed")
    if hmac.compare_digest(presented.encode(), admin_token.get_secret_value().encode()):
        return Principal(DEFAULT_NAMESPACE, "admin", None, None)
    record = await runtime.tenants.record_of(presented)
    if record is None or record.revoked:
        raise _unauthorised("invalid_key", "the API key is unknown or revoked")
    settings = await runtime.tenants.settings_of(record.ns)
    await _limit_rate(runtime, record.ns, record.key_id, settings)
    return Principal(record.ns, "tenant", record.key_id, settings)


async def require_admin(principal: Principal = Security(authenticate)) -> Principal:
    if principal.role == "open":
        raise ApiError(403, "admin_disabled", "the admin API needs DYNACACHE_ADMIN_TOKEN set")
    if principal.role != "admin":
        raise ApiError(403, "forbidden", "this endpoint needs the admin token")
    return principal


async def require_operator(principal: Principal = Security(authenticate)) -> Principal:
    """Replica internals: open mode, or the admin token."""
    if principal.role == "tenant":
        raise ApiError(403, "forbidden", "this endpoint needs the admin token")
    return principal


async def _limit_rate(
    runtime: Runtime, ns: str, key_id: str, settings: TenantSettings | None
) -> None:
    own = settings or TenantSettings()
    # 0: no limit (a configured rate is always above 0)
    rate = first_set(own.rate_limit_per_s, runtime.settings.default_rate_limit_per_s, 0.0)
    if rate <= 0:
        return
    burst = first_set(own.rate_limit_burst, runtime.settings.default_rate_limit_burst)
    try:
        wait_s = await runtime.rate_limiter.take(ns, key_id, rate, burst)
    except STORE_UNAVAILABLE:  # the buckets live in Redis: no limit while it is away
        return
    if wait_s > 0:
        retry_after = max(1, int(wait_s + 0.999))
        raise ApiError(
            429,
            "rate_limited",
            f"rate limit of {rate:g}/s exceeded",
            headers={"Retry-After": str(retry_after)},
        )
