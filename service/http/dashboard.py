"""``/dashboard``: a page the service serves itself (HTML, CSS and JS in ``static/``, no
build step, no CDN), reading ``/v1/dashboard`` every two seconds.

The page holds no data; ``/v1/dashboard`` does, and answers the admin token only when keys
are on (open mode: anyone who can reach the service), like the other replica internals.
"""

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Security
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from service.engine.insights import insights
from service.http.auth import require_operator
from service.http.dependencies import RuntimeDep
from service.http.errors import CALLER_ERRORS, documented
from service.http.stats_view import stats_view

STATIC = Path(__file__).parent / "static"
# the page loads only what the service serves; it builds its tables with textContent
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "Cache-Control": "no-cache",
}

router = APIRouter()
static_files = StaticFiles(directory=STATIC)


@router.get("/dashboard", tags=["dashboard"], response_class=FileResponse)
async def dashboard_page() -> FileResponse:
    """The dashboard (asks for the admin token when keys are on)."""
    return FileResponse(STATIC / "dashboard.html", headers=_PAGE_HEADERS)


@router.get(
    "/v1/dashboard",
    tags=["dashboard"],
    dependencies=[Security(require_operator)],
    responses=documented(*CALLER_ERRORS, 403, 503),
)
async def dashboard_data(runtime: RuntimeDep) -> dict[str, Any]:
    """What the dashboard shows: ``/v1/stats`` for every namespace, and ``/v1/insights``."""
    stats = await stats_view(runtime, None)
    namespaces = sorted(stats["namespaces"])
    shown = await insights(runtime.store, namespaces, runtime.settings.show_personal_prompts)
    return {"stats": stats, "insights": shown}
