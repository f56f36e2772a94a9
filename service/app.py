"""The FastAPI app: its routes and middleware, and a lifespan that opens the runtime
(``service/assembly.py``) and closes it at shutdown."""

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from service.assembly import open_runtime
from service.http import admin_api, api, dashboard
from service.http.body_limit import BodySizeLimit
from service.http.errors import install_error_handlers
from service.llm.client import SIMULATED_NOTE
from service.settings import Settings
from service.version import __version__

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            runtime = await open_runtime(settings, stack)
            app.state.runtime = runtime
            log.info("replica %s serving", settings.replica_id)
            if settings.llm == "simulated":
                log.warning("LLM: %s", SIMULATED_NOTE)
            if settings.admin_token is None:
                log.warning("no DYNACACHE_ADMIN_TOKEN: running OPEN (no API keys), one namespace")
            yield

    app = FastAPI(
        title="Dyna-Cache",
        version=__version__,
        description="Semantic cache for LLM applications.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(api.router)
    app.include_router(admin_api.router)
    app.include_router(dashboard.router)
    app.mount("/dashboard/static", dashboard.static_files, name="dashboard-static")
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
