"""The CLI's way to a running service: its URL and key, and one clear line on any failure."""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from index.store.connection import STORE_UNAVAILABLE
from service.redis_folder import URL_FILE, published_url

# the local service: DYNACACHE_URL overrides it, else DYNACACHE_PORT (as the service reads it)
DEFAULT_URL = f"http://127.0.0.1:{os.environ.get('DYNACACHE_PORT') or 8000}"


class CliError(Exception):
    """A failure the CLI reports as one line (``error: ...``) and a non-zero exit."""


console = Console()
errors = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr; the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn the failures a command expects into one line and exit status 1."""
    try:
        yield
    except CliError as error:
        raise fail(str(error)) from None
    except STORE_UNAVAILABLE as error:
        raise fail(f"Redis is not answering ({type(error).__name__}: {error})") from None
    except OSError as error:
        raise fail(f"{error.strerror or error}: {getattr(error, 'filename', '') or ''}") from None


class ServiceClient:
    """JSON calls to a Dyna-Cache service; every failure becomes a :class:`CliError`."""

    def __init__(self, url: str, key: str | None, timeout_s: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise CliError(f"cannot reach {self.url} ({type(error).__name__}: {error})") from None
        if response.status_code >= 400:
            raise CliError(f"{method} {path}: {response.status_code} {_reason(response)}")
        return response.json() if response.content else None

    def close(self) -> None:
        self.http.close()


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"{error.get('code')}: {error.get('message')}"
    return str(body)[:200]


Url = Annotated[str, typer.Option("--url", envvar="DYNACACHE_URL", help="The service's base URL.")]
Key = Annotated[
    str | None,
    typer.Option(
        "--key", envvar="DYNACACHE_KEY", show_default=False, help="An API key, or the admin token."
    ),
]
RedisUrl = Annotated[
    str | None,
    typer.Option(
        "--redis-url",
        envvar="DYNACACHE_REDIS_URL",
        show_default=False,
        help="The service's Redis (default: the one `make run` started, found through "
        "data/redis/url).",
    ),
]


def redis_url_of(given: str | None) -> str:
    """The Redis URL given, else the one a service running here wrote for its embedded
    Redis (``<DYNACACHE_REDIS_DATA_DIR or data/redis>/url``: it listens on a free port)."""
    if given:
        return given
    data_dir = Path(os.environ.get("DYNACACHE_REDIS_DATA_DIR") or "data/redis")
    written = data_dir / URL_FILE
    url = published_url(data_dir)
    if url is None:
        raise CliError(
            f"no Redis URL: pass --redis-url (or DYNACACHE_REDIS_URL), or run this beside a "
            f"service with an embedded Redis (it writes its URL to {written}; none there)"
        )
    return url
