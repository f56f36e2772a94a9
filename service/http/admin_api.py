"""The admin API under /v1/admin/ (needs DYNACACHE_ADMIN_TOKEN): tenants, keys, settings."""

from typing import Any

from fastapi import APIRouter, Request, Security

from service.http.auth import require_admin
from service.http.dependencies import runtime_of
from service.http.errors import CALLER_ERRORS, documented
from service.policy.validation import validate_namespace
from service.schemas import DeletedResponse, KeyIssue, KeyIssued, TenantCreate, TenantSettings

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[Security(require_admin)],
    responses=documented(*CALLER_ERRORS, 403, 404, 409, 503),
)


@router.post("/tenants", status_code=201)
async def create_tenant(body: TenantCreate, request: Request) -> dict[str, Any]:
    """Create a tenant: a namespace of its own, with optional settings."""
    await runtime_of(request).tenants.create_tenant(body.namespace, body.settings)
    return {"namespace": body.namespace, "settings": body.settings.model_dump(exclude_none=True)}


@router.get("/tenants")
async def list_tenants(request: Request) -> dict[str, Any]:
    runtime = runtime_of(request)
    tenants = await runtime.tenants.list_tenants()
    for tenant in tenants:
        tenant["entries"] = runtime.index.count(tenant["namespace"])
    return {"tenants": tenants}


@router.put("/tenants/{ns}/settings")
async def update_settings(ns: str, body: TenantSettings, request: Request) -> dict[str, Any]:
    """Replace a tenant's settings (threshold, default TTL, rate limit, max entries)."""
    validate_namespace(ns)
    await runtime_of(request).tenants.update_settings(ns, body)
    return {"namespace": ns, "settings": body.model_dump(exclude_none=True)}


@router.post("/tenants/{ns}/keys", status_code=201, response_model=KeyIssued)
async def issue_key(ns: str, request: Request, body: KeyIssue | None = None) -> KeyIssued:
    """Issue a key for a tenant. The key is in this answer only; keep it."""
    validate_namespace(ns)
    key, key_id = await runtime_of(request).tenants.issue_key(ns, (body or KeyIssue()).role)
    return KeyIssued(key=key, key_id=key_id, namespace=ns)


@router.get("/tenants/{ns}/keys")
async def list_keys(ns: str, request: Request) -> dict[str, Any]:
    validate_namespace(ns)
    return {"keys": await runtime_of(request).tenants.list_keys(ns)}


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: str, request: Request) -> dict[str, Any]:
    """Revoke a key: every replica refuses it within a second."""
    await runtime_of(request).tenants.revoke_key(key_id)
    return {"key_id": key_id, "revoked": True}


@router.delete("/tenants/{ns}/entries", response_model=DeletedResponse)
async def flush_tenant(ns: str, request: Request) -> DeletedResponse:
    """Delete every entry of a tenant's namespace."""
    validate_namespace(ns)
    return DeletedResponse(deleted=await runtime_of(request).entries.flush(ns))
