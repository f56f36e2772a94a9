"""Input checks shared by every endpoint that takes prompts (a failed check changes nothing)."""

import re

from service.errors import InvalidInput

_NAMESPACE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def validate_prompt(prompt: str, max_chars: int, field: str = "prompt") -> None:
    if not prompt.strip():
        raise InvalidInput("empty_prompt", f"{field} is empty or only whitespace")
    if len(prompt) > max_chars:
        raise InvalidInput(
            "prompt_too_long",
            f"{field} has {len(prompt)} characters; the limit is {max_chars}",
        )


def validate_context(context: str | None, max_chars: int) -> None:
    if context is not None and len(context) > max_chars:
        raise InvalidInput(
            "context_too_long",
            f"context has {len(context)} characters; the limit is {max_chars}",
        )


def validate_namespace(ns: str) -> None:
    if not _NAMESPACE.match(ns):
        raise InvalidInput("invalid_namespace", "namespace must match [A-Za-z0-9_-]{1,64}")
