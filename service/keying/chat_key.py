"""What a Chat Completions request is cached under.

Only the last user message's question (RAG blocks cut out) is embedded. A HIT also needs the
same scope: the model, the context blocks, the conversation around the question (system and
developer prompts, earlier turns, and any assistant tool calls and tool results after it),
and every output-affecting parameter (temperature, top_p, max tokens, n, stop, seed, tools,
tool_choice, response_format, and any parameter this list does not know). Tool call ids are
left out of the conversation: they are random per call and change nothing in the answer.

Some requests are not cached at all (``bypass``): ``n > 1`` (the caller wants several
different answers), a temperature above the configured cap, no user message, or a last user
message with non-text parts.
"""

from dataclasses import dataclass
from typing import Any

import orjson

from service.keying.normalise import collapse_whitespace
from service.keying.prompt_key import PromptKey, prompt_key
from service.keying.rag import RagSplitter

# Request fields that change how the answer travels or is billed, not what it says.
NOT_IN_SCOPE = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
    }
)


@dataclass(frozen=True)
class ChatKey:
    key: PromptKey | None  # None when the request bypasses the cache
    bypass_reason: str | None = None


def chat_key(
    splitter: RagSplitter, body: dict[str, Any], max_temperature: float, user: str = ""
) -> ChatKey:
    """``user``: the end user whose entries these are (per-user scope), "" for shared."""
    if int(body.get("n") or 1) > 1:
        return ChatKey(None, "n > 1")
    temperature = body.get("temperature")
    if temperature is not None and float(temperature) > max_temperature:
        return ChatKey(None, f"temperature above {max_temperature}")
    messages: list[dict[str, Any]] = body["messages"]
    users = [i for i, message in enumerate(messages) if message.get("role") == "user"]
    if not users:
        return ChatKey(None, "no user message")
    last_user = users[-1]
    question = _plain_text(messages[last_user].get("content"))
    if question is None:
        return ChatKey(None, "the last user message has non-text parts")
    key = prompt_key(
        splitter,
        question,
        str(body["model"]),
        conversation=_conversation(messages, last_user),
        params=_params(body),
        user=user,
    )
    return ChatKey(key)


def _plain_text(content: Any) -> str | None:
    """A message's text; None when it carries anything else (images, audio, files)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                return None
            texts.append(str(part.get("text", "")))
        return "\n".join(texts)
    return "" if content is None else None


def _conversation(messages: list[dict[str, Any]], question_at: int) -> str:
    """Everything but the question, in order, with the question's place marked; "" for a
    conversation that is only the question (so it shares entries with ``/v1/query``)."""
    if len(messages) == 1:
        return ""
    canonical = [
        {"question": True} if position == question_at else _canonical(message)
        for position, message in enumerate(messages)
    ]
    return orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS).decode()


def _canonical(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    text = _plain_text(content)
    canonical: dict[str, Any] = {
        "role": message.get("role"),
        "content": collapse_whitespace(text) if text is not None else content,
    }
    if message.get("name"):
        canonical["name"] = message["name"]
    if message.get("tool_calls"):
        canonical["tool_calls"] = [
            {"type": call.get("type"), "function": call.get("function")}
            for call in message["tool_calls"]
        ]
    return canonical


def _params(body: dict[str, Any]) -> str:
    params = {k: v for k, v in body.items() if k not in NOT_IN_SCOPE and v is not None}
    if params.get("n") == 1:  # the default, said or not
        del params["n"]
    return orjson.dumps(params, option=orjson.OPT_SORT_KEYS).decode() if params else ""
