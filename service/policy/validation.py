"""Input checks shared by every endpoint that takes prompts (a failed check changes nothing)."""

import math
import re
from typing import Any, Protocol, TypeVar

from service.errors import InvalidInput
from service.settings import Settings

Choice = TypeVar("Choice", bound=str)


def one_of(
    requested: str | None, choices: tuple[Choice, ...], code: str, what: str
) -> Choice | None:
    """A choice a request named, in any case and padding (None: none named); another is a
    422 ``code`` naming ``what`` was asked and the choices."""
    if requested is None:
        return None
    for choice in choices:
        if requested.strip().lower() == choice:
            return choice
    raise InvalidInput(code, f"unknown {what} {requested[:40]!r}: use one of {', '.join(choices)}")


class Entry(Protocol):
    """What ``validate_entry`` reads of an entry (``service.schemas.EntryFields``, which
    imports this module's limits)."""

    prompt: str
    response: str


_NAMESPACE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# whitespace, control and zero-width characters: a prompt of only these says nothing (and
# every such prompt embeds alike)
_NOTHING_TO_READ = re.compile(
    r"[\s\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff]*"
)
# control characters: they separate the parts of a scope, so a name carrying one could
# read as another name plus more
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_USER_CHARS = 256  # an end user's id, wherever it is named
MAX_JSON_DEPTH = 64  # a JSON Schema of tools nests ~10 deep; orjson stops at 254
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1  # what a JSON encoder can write back


def validate_text(text: str, field: str) -> None:
    """Text that can be stored and forwarded as UTF-8 (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            "invalid_text", f"{field} is not valid Unicode (it has a lone surrogate)"
        ) from None


def validate_prompt(prompt: str, max_chars: int, field: str = "prompt") -> None:
    validate_text(prompt, field)
    if _NOTHING_TO_READ.fullmatch(prompt):
        raise InvalidInput(
            "empty_prompt",
            f"{field} is empty, or only whitespace, control or zero-width characters",
        )
    if len(prompt) > max_chars:
        raise InvalidInput(
            "prompt_too_long",
            f"{field} has {len(prompt)} characters; the limit is {max_chars}",
        )


def validate_context(context: str | None, max_chars: int) -> None:
    if context is not None:
        validate_text(context, "context")
    if context is not None and len(context) > max_chars:
        raise InvalidInput(
            "context_too_long",
            f"context has {len(context)} characters; the limit is {max_chars}",
        )


def validate_namespace(ns: str) -> None:
    if not _NAMESPACE.match(ns):
        raise InvalidInput("invalid_namespace", "namespace must match [A-Za-z0-9_-]{1,64}")


def client_name(value: str, field: str, most: int) -> str | None:
    """A name a client gives (an end user, a cache namespace), trimmed; None when blank. A
    name longer than ``most`` characters or holding a control character is a 422 naming
    ``field``: names compare as given, so " ann" and "ann" are one user, and a name is
    never cut short (two long ones sharing a beginning would become one)."""
    name = value.strip()
    if len(name) > most:
        raise InvalidInput("invalid_name", f"{field} has {len(name)} characters; at most {most}")
    if _CONTROL.search(name):
        raise InvalidInput("invalid_name", f"{field} has a control character")
    return name or None


def validate_response(response: str, max_chars: int, field: str = "response") -> None:
    validate_text(response, field)
    if len(response) > max_chars:
        raise InvalidInput(
            "response_too_long",
            f"{field} has {len(response)} characters; the limit is {max_chars}",
        )


def validate_entry(entry: Entry, settings: Settings, where: str = "") -> None:
    """What an entry must be beyond its schema, under the limits in force: a prompt with
    something to read and at most ``max_prompt_chars``, a response of at most
    ``max_response_chars`` (``POST /v1/entries`` and ``dyna-cache import`` alike; ``where``
    prefixes the field's name, ``entries[3].``)."""
    validate_prompt(entry.prompt, settings.max_prompt_chars, f"{where}prompt")
    validate_response(entry.response, settings.max_response_chars, f"{where}response")


def validate_json(value: Any, field: str = "body") -> None:
    """A JSON document the service can hash, store and forward: nested at most
    ``MAX_JSON_DEPTH`` deep, numbers finite (no NaN, Infinity or a float past 1e308, which
    no JSON encoder can write back), integers within 64 bits, text valid Unicode. A
    refusal names the field (``body.metadata.a``); iterative, so a hostile depth cannot
    exhaust the stack."""
    pending: list[tuple[Any, str, int]] = [(value, field, 1)]
    while pending:
        item, where, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidInput("too_deep", f"{field} nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            for name, inner in item.items():
                validate_text(str(name), where)
                pending.append((inner, f"{where}.{name}", depth + 1))
        elif isinstance(item, list):
            pending.extend((inner, f"{where}[{i}]", depth + 1) for i, inner in enumerate(item))
        elif isinstance(item, str):
            validate_text(item, where)
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidInput(
                "number_out_of_range",
                f"{where} is {item!r}: JSON numbers must be finite (no NaN or Infinity, "
                "at most about 1.8e308)",
            )
        elif (
            isinstance(item, int)
            and not isinstance(item, bool)
            and not (_INT64_MIN <= item <= _UINT64_MAX)
        ):
            raise InvalidInput("number_out_of_range", f"{where} is an integer past 64 bits")
