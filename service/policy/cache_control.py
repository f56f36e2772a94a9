"""The request's ``Cache-Control`` header, as far as a cache in front of an LLM honours it.

``no-cache``: do not serve from the cache, ask the LLM and store the new answer (= refresh).
``no-store``: answer, but store nothing. ``max-age=N``: only a cached answer younger than
N seconds may be served. Other directives are ignored.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class CacheControl:
    no_cache: bool = False
    no_store: bool = False
    max_age: int | None = None

    def fresh_enough(self, age_s: float) -> bool:
        return self.max_age is None or age_s <= self.max_age


def parse_cache_control(header: str | None) -> CacheControl:
    if not header:
        return CacheControl()
    no_cache = no_store = False
    max_age: int | None = None
    for directive in header.lower().split(","):
        name, _, value = directive.strip().partition("=")
        if name == "no-cache":
            no_cache = True
        elif name == "no-store":
            no_store = True
        elif name == "max-age" and value.strip().strip('"').isdigit():
            max_age = int(value.strip().strip('"'))
    return CacheControl(no_cache, no_store, max_age)
