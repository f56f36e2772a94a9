"""The one error shape of the API: ``{"error": {"code", "message"}}`` with a fitting status.

The engine and the stores raise domain errors (``service/errors.py``), the LLM clients
``UpstreamFailed``/``UpstreamTimedOut``, and redis-py its own when Redis does not answer;
the handlers here are the one place where each becomes a status."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from index.store.connection import STORE_UNAVAILABLE
from index.store.redis_store import StoreConflict
from service.errors import CacheError, Conflict, InvalidInput, NotFound, PartlyStored
from service.llm.client import UpstreamFailed, UpstreamTimedOut
from service.schemas import ErrorBody

log = logging.getLogger(__name__)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, all with the error body."""
    return {status: {"model": ErrorBody, "description": _MEANING[status]} for status in statuses}


_MEANING = {
    400: "Malformed JSON",
    401: "Missing, unknown or revoked API key",
    403: "Not allowed with this key",
    404: "No such entry, namespace, tenant or key (for this caller)",
    409: "Conflict: exists already, or the namespace is full",
    413: "Request body too large",
    422: "Invalid request",
    429: "Rate limited (see Retry-After)",
    502: "The LLM failed",
    503: "Redis is unavailable",
    504: "The LLM timed out",
}
CALLER_ERRORS = (400, 401, 413, 422, 429)


# each domain error's status
_STATUS_OF: dict[type[CacheError], int] = {InvalidInput: 422, NotFound: 404, Conflict: 409}


class ApiError(Exception):
    """An HTTP-only refusal (authentication, rate limit, a route's own checks)."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _describe_validation(error: RequestValidationError) -> tuple[int, str, str]:
    problems = error.errors()
    if any(problem.get("type") == "json_invalid" for problem in problems):
        return 400, "invalid_json", "request body is not valid JSON"
    parts = []
    for problem in problems[:5]:
        location = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
        parts.append(f"{location or 'body'}: {problem.get('msg', 'invalid')}")
    return 422, "invalid_request", "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, error.headers)

    @app.exception_handler(PartlyStored)
    async def _partly_stored(_: Request, error: PartlyStored) -> JSONResponse:
        body = {
            "error": {"code": error.code, "message": error.message},
            "stored": [{"index": index, "entry_id": entry_id} for index, entry_id in error.stored],
            "failed": error.failed,
        }
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(CacheError)
    async def _domain_error(_: Request, error: CacheError) -> JSONResponse:
        status = next(
            (status for kind, status in _STATUS_OF.items() if isinstance(error, kind)), 400
        )
        return error_response(status, error.code, error.message)

    @app.exception_handler(UpstreamTimedOut)
    async def _upstream_timeout(_: Request, error: UpstreamTimedOut) -> JSONResponse:
        return error_response(504, "upstream_timeout", str(error))

    @app.exception_handler(UpstreamFailed)
    async def _upstream_failed(_: Request, error: UpstreamFailed) -> JSONResponse:
        return error_response(502, "upstream_error", str(error))

    async def _store_unavailable(_: Request, error: Exception) -> JSONResponse:
        return error_response(
            503, "redis_unavailable", f"Redis is unavailable ({type(error).__name__})"
        )

    for kind in STORE_UNAVAILABLE:
        app.add_exception_handler(kind, _store_unavailable)

    @app.exception_handler(StoreConflict)
    async def _contended(_: Request, error: StoreConflict) -> JSONResponse:
        return error_response(503, "store_contended", str(error), {"Retry-After": "1"})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(*_describe_validation(error))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400:  # FastAPI could not read the body: bad UTF-8, too deep
            return error_response(
                400, "invalid_json", f"request body is not valid JSON ({error.detail})"
            )
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return error_response(error.status_code, code, str(error.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error")
