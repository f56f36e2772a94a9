"""Serve, or shadow: whether a request's HIT is served, or the LLM answers it and the cache
only measures what it would have served (``docs/shadow.md``). A request says so in the
``X-Cache-Mode`` header (any API; ``/v1/query``'s body ``mode`` field first), else the
tenant's ``mode`` holds, else the service's ``DYNACACHE_MODE``."""

from service.policy.validation import one_of
from service.schemas import ServingMode

MODE_HEADER = "X-Cache-Mode"
_MODES: tuple[ServingMode, ...] = ("serve", "shadow")


def serving_mode(requested: str | None) -> ServingMode | None:
    """A requested mode, in any case and padding (None: none requested)."""
    return one_of(requested, _MODES, "invalid_cache_mode", MODE_HEADER)
