"""The ``cache`` object LiteLLM's clients put in a request body, read as cache controls.

LiteLLM proxy users control caching per request in the body, through the SDK's
``extra_body``: ``{"cache": {"no-cache": true}}``, ``{"no-store": true}``, ``{"ttl": 600}``,
``{"s-maxage": 60}``, ``{"namespace": "x"}``. The object is taken out of the body before it
is scoped or forwarded (left in, it made every such request a miss of its own, and went to
the upstream): ``no-cache`` asks the LLM and stores its answer (as ``Cache-Control:
no-cache``), ``no-store`` stores nothing, ``ttl`` is how long the stored answer lives,
``s-maxage`` serves only entries younger than that (as ``max-age``), and ``namespace`` joins
the scope: entries of another cache namespace never serve. It cannot reach another tenant's
entries: the tenant is the API key's.
"""

from dataclasses import dataclass, replace
from typing import Any

from service.errors import InvalidInput
from service.policy.cache_control import CacheControl
from service.policy.validation import client_name
from service.schemas import MAX_TTL_S

FIELD = "cache"
MAX_NAMESPACE_CHARS = 128


@dataclass(frozen=True)
class BodyCacheControls:
    control: CacheControl  # no-cache, no-store, s-maxage
    ttl: int | None = None  # seconds the stored answer lives (0: always)
    namespace: str | None = None  # joins the scope


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput("invalid_cache_control", f"body.cache.{name} must be true or false")
    return value


def _seconds(value: Any, name: str, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise InvalidInput(
            "invalid_cache_control", f"body.cache.{name} must be whole seconds in [0, {most}]"
        )
    return value


def _namespace(value: Any) -> str:
    """A cache namespace, trimmed and checked as an end user's id is (blank is refused)."""
    named = None
    if isinstance(value, str):
        named = client_name(value, "body.cache.namespace", MAX_NAMESPACE_CHARS)
    if named is None:
        raise InvalidInput(
            "invalid_cache_control",
            f"body.cache.namespace must be a string of 1 to {MAX_NAMESPACE_CHARS} characters",
        )
    return named


def take_body_cache_controls(
    body: dict[str, Any],
) -> tuple[dict[str, Any], BodyCacheControls | None]:
    """The body without its ``cache`` object, and what the object asked (None: it had
    none). An unknown control or a value of the wrong kind is a 422 naming it."""
    if FIELD not in body:
        return body, None
    rest = {name: value for name, value in body.items() if name != FIELD}
    asked = body[FIELD]
    if not isinstance(asked, dict):
        raise InvalidInput("invalid_cache_control", "body.cache must be an object")
    known = {"no-cache", "no-store", "ttl", "s-maxage", "namespace"}
    unknown = sorted(set(asked) - known)
    if unknown:
        raise InvalidInput(
            "invalid_cache_control",
            f"unknown cache control body.cache.{unknown[0]}: use {', '.join(sorted(known))}",
        )
    namespace = asked.get("namespace")
    max_age = asked.get("s-maxage")
    controls = BodyCacheControls(
        CacheControl(
            no_cache=_flag(asked.get("no-cache", False), "no-cache"),
            no_store=_flag(asked.get("no-store", False), "no-store"),
            max_age=None if max_age is None else _seconds(max_age, "s-maxage", MAX_TTL_S),
        ),
        ttl=None if asked.get("ttl") is None else _seconds(asked["ttl"], "ttl", MAX_TTL_S),
        namespace=None if namespace is None else _namespace(namespace),
    )
    return rest, controls


def merged(header: CacheControl, body: BodyCacheControls | None) -> CacheControl:
    """The header's controls and the body's together: either asks, it holds; of two ages,
    the younger."""
    if body is None:
        return header
    ages = [age for age in (header.max_age, body.control.max_age) if age is not None]
    return replace(
        header,
        no_cache=header.no_cache or body.control.no_cache,
        no_store=header.no_store or body.control.no_store,
        max_age=min(ages) if ages else None,
    )
