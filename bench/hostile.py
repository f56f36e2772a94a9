"""Hostile request bodies: what broke a replica once (issue 15), for the fuzz run and the
chaos suite. Each is ``(name, path, raw JSON body)``; the service must answer each with a
4xx in its error shape (or a 2xx where the input is merely odd), promptly, without a 5xx."""

import json
from typing import Any

MAX_PROMPT = 32_000
CHAT = {"model": "m", "messages": [{"role": "user", "content": "What is the capital of France?"}]}


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = {"a": value}
    return value


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()  # Python's json: integers of any size, as sent


def hostile_bodies() -> list[tuple[str, str, bytes]]:
    layout = "context:" + " " * (MAX_PROMPT - 9) + "x"  # cubic backtracking in Python's re
    return [
        ("RAG layout backtracking", "/v1/query", _json({"prompt": layout})),
        ("RAG backtracking in bulk", "/v1/entries",
         _json({"entries": [{"prompt": layout, "response": "x"}] * 20})),
        ("RAG backtracking in chat", "/v1/chat/completions",
         _json({**CHAT, "messages": [{"role": "user", "content": layout}]})),
        ("seed past 64 bits", "/v1/chat/completions", _json({**CHAT, "seed": 2**64})),
        ("max_tokens past 64 bits", "/v1/chat/completions", _json({**CHAT, "max_tokens": 2**70})),
        ("extra parameter 300 deep", "/v1/chat/completions",
         _json({**CHAT, "metadata": _nested(300)})),
        ("JSON 100,000 deep", "/v1/chat/completions",
         b'{"model": "m", "messages": [], "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("lone surrogate in chat", "/v1/chat/completions",
         b'{"model": "m", "messages": [{"role": "user", "content": "hi \\ud800"}]}'),
        ("lone surrogate in a query", "/v1/query", b'{"prompt": "hi \\udfff there"}'),
        ("only zero-width characters", "/v1/query", _json({"prompt": "\u200b\u200c\u200d"})),
        ("only NUL characters", "/v1/query", _json({"prompt": "\x00" * 10})),
        ("long prompt differing past the window", "/v1/query",
         _json({"prompt": "word " * 2_000 + "refund?"})),
    ]  # fmt: skip


def non_finite_bodies() -> list[tuple[str, str, bytes]]:
    """NaN, Infinity and numbers past 1e308 (Python reads them as floats; no JSON encoder
    writes them back) in pass-through fields of every client API, whole and streamed."""
    question = "What is the capital of France?"
    heads = {
        "/v1/chat/completions": {"model": "m", "messages": [{"role": "user", "content": question}]},
        "/v1/responses": {"model": "m", "input": question},
        "/v1/messages": {"model": "m", "max_tokens": 50,
                         "messages": [{"role": "user", "content": question}]},
    }  # fmt: skip
    fields = [
        ("huge number", '"foo": 1e400'),
        ("NaN", '"foo": NaN'),
        ("Infinity", '"foo": Infinity'),
        ("NaN in metadata", '"metadata": {"a": NaN}'),
        ("tool schema maximum 1e400", '"tools": [{"type": "function", "name": "f", "parameters":'
         ' {"type": "object", "properties": {"x": {"type": "number", "maximum": 1e400}}}}]'),
    ]  # fmt: skip
    bodies = []
    for path, head in heads.items():
        opened = json.dumps(head)[:-1]
        for name, field in fields:
            for stream in ("", ', "stream": true'):
                label = f"{name}{' streamed' if stream else ''} ({path})"
                bodies.append((label, path, f"{opened}, {field}{stream}}}".encode()))
    n_two = json.dumps(heads["/v1/chat/completions"])[:-1] + ', "n": 2, "seed": NaN}'
    bodies.append(("NaN with n=2 (pass-through)", "/v1/chat/completions", n_two.encode()))
    return bodies
