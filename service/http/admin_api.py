"""The admin API under /v1/admin/ (needs DYNACACHE_ADMIN_TOKEN): tenants, keys, settings."""

from typing import Any

from fastapi import APIRouter, Security

from service.http.auth import require_admin
from service.http.dependencies import RuntimeDep
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
async def create_tenant(runtime: RuntimeDep, body: TenantCreate) -> dict[str, Any]:
    """Create a tenant: a namespace of its own, with optional settings."""
    await runtime.tenants.create_tenant(body.namespace, body.settings)
    return {"namespace": body.namespace, "settings": body.settings.model_dump(exclude_none=True)}


@router.get("/tenants")
async def list_tenants(runtime: RuntimeDep) -> dict[str, Any]:
    tenants = await runtime.tenants.list_tenants()
    for tenant in tenants:
        tenant["entries"] = runtime.index.count(tenant["namespace"])
    return {"tenants": tenants}


@router.put("/tenants/{ns}/settings")
async def update_settings(runtime: RuntimeDep, ns: str, body: TenantSettings) -> dict[str, Any]:
    """Replace a tenant's settings (threshold, default TTL, rate limit, max entries)."""
    validate_namespace(ns)
    await runtime.tenants.update_settings(ns, body)
    return {"namespace": ns, "settings": body.model_dump(exclude_none=True)}


@router.post("/tenants/{ns}/keys", status_code=201, response_model=KeyIssued)
async def issue_key(runtime: RuntimeDep, ns: str, body: KeyIssue | None = None) -> KeyIssued:
    """Issue a key for a tenant. The key is in this answer only; keep it."""
    validate_namespace(ns)
    key, key_id = await runtime.tenants.issue_key(ns, (body or KeyIssue()).role)
    return KeyIssued(key=key, key_id=key_id, namespace=ns)


@router.get("/tenants/{ns}/keys")
async def list_keys(runtime: RuntimeDep, ns: str) -> dict[str, Any]:
    validate_namespace(ns)
    return {"keys": await runtime.tenants.list_keys(ns)}


@router.delete("/keys/{key_id}")
async def revoke_key(runtime: RuntimeDep, key_id: str) -> dict[str, Any]:
    """Revoke a key: every replica refuses it within a second."""
    await runtime.tenants.revoke_key(key_id)
    return {"key_id": key_id, "revoked": True}


@router.delete("/tenants/{ns}/entries", response_model=DeletedResponse)
async def flush_tenant(runtime: RuntimeDep, ns: str) -> DeletedResponse:
    """Delete every entry of a tenant's namespace (404: no such tenant)."""
    validate_namespace(ns)
    await runtime.tenants.require_tenant(ns)
    return DeletedResponse(deleted=await runtime.entries.flush(ns))
