"""``python -m service``: serve one replica (with an embedded Redis when no URL is set)."""

import logging

import uvicorn

from service.app import create_app
from service.settings import Settings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def refusal(settings: Settings) -> str | None:
    """Why these settings must not serve, or None: open mode (no keys) beyond loopback
    needs DYNACACHE_ALLOW_OPEN."""
    if settings.admin_token is None and settings.host not in LOOPBACK and not settings.allow_open:
        return (
            f"refusing to serve {settings.host} open: set DYNACACHE_ADMIN_TOKEN (API keys), "
            "or DYNACACHE_ALLOW_OPEN=1 to serve without keys anyway"
        )
    return None


def main() -> None:
    settings = Settings()
    refused = refusal(settings)
    if refused is not None:
        raise SystemExit(refused)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
