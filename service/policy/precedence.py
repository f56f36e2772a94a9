"""The one precedence rule of every per-request choice: the request's value, else the
tenant's, else the service's default. A value is "set" unless it is None: 0 is a value
(a 0 threshold or a 0 TTL must never fall through to the default)."""

from typing import TypeVar

T = TypeVar("T")


def first_set(*values: T | None) -> T:
    """The first value that is set; the last one is the default and must be set."""
    for value in values:
        if value is not None:
            return value
    raise ValueError("no value is set, not even the default")
