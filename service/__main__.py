"""``python -m service``: serve one replica (with an embedded Redis when no URL is set)."""

import logging

import uvicorn

from service.app import create_app
from service.settings import Settings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def main() -> None:
    settings = Settings()
    if settings.admin_token is None and settings.host not in LOOPBACK and not settings.allow_open:
        raise SystemExit(
            f"refusing to serve {settings.host} open: set DYNACACHE_ADMIN_TOKEN (API keys), "
            "or DYNACACHE_ALLOW_OPEN=1 to serve without keys anyway"
        )
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
