"""A fake OpenAI-compatible upstream: a real HTTP server on 127.0.0.1 whose next answers a
test scripts. Steps: ``ok``, an HTTP status such as ``500``, ``slow:<seconds>[:<step>]``,
``garbage``, ``tool`` (a tool call to the request's first tool), and for streamed requests
``gated`` (the first chunk, then the rest once ``release`` is called), ``drop`` (two chunks,
then the connection breaks) and ``error`` (two chunks, then an error event)."""

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from tests.helpers import ServerThread


def answer_text(body: dict[str, Any]) -> str:
    """What the fake answers: the last user message, echoed."""
    user = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    if isinstance(user, list):
        user = " ".join(part.get("text", "") for part in user)
    return f"Upstream says: {user}"


class FakeUpstream(ServerThread):
    def __init__(self) -> None:
        self.plan: deque[str] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.streams_finished = 0  # streams sent to the end
        self.streams_abandoned = 0  # streams whose reader went away before the end
        self._gate = threading.Event()
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def complete(request: Request) -> Response:
            body = await request.json()
            self.requests.append(body)
            self.headers.append(dict(request.headers))
            step = self.plan.popleft() if self.plan else "ok"
            if step.startswith("held"):  # held[:<then what>]: until release(), at most 30 s
                await asyncio.to_thread(self._gate.wait, 30)
                step = step.partition(":")[2] or "ok"
            if step.startswith("slow:"):  # slow:<seconds>[:<then what>]
                _, seconds, *then = step.split(":")
                await asyncio.sleep(float(seconds))
                step = then[0] if then else "ok"
            if step == "garbage":
                return PlainTextResponse("not json at all")
            if step.isdigit():
                headers = {"Retry-After": "0"} if step == "429" else {}
                return JSONResponse({"error": {"message": "boom"}}, int(step), headers=headers)
            message, finish = self._message(body, step)
            answer_id = f"chatcmpl-{len(self.requests)}"
            if body.get("stream"):
                return StreamingResponse(
                    self._stream(answer_id, body, message, finish, step),
                    media_type="text/event-stream",
                )
            return JSONResponse(
                {
                    "id": answer_id,
                    "object": "chat.completion",
                    "created": 1,
                    "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": finish, "message": message}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
                }
            )

        super().__init__(app)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def release(self) -> None:
        """Let a ``gated`` stream or a ``held`` answer go on."""
        self._gate.set()

    def _message(self, body: dict[str, Any], step: str) -> tuple[dict[str, Any], str]:
        if step == "tool":
            name = body["tools"][0]["function"]["name"]
            call = {
                "id": f"call_{len(self.requests)}",
                "type": "function",
                "function": {"name": name, "arguments": '{"city": "Paris"}'},
            }
            return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
        return {"role": "assistant", "content": answer_text(body)}, "stop"

    async def _stream(
        self, answer_id: str, body: dict[str, Any], message: dict[str, Any], finish: str,
        step: str,
    ) -> AsyncIterator[bytes]:  # fmt: skip
        def event(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            chunk = {
                "id": answer_id, "object": "chat.completion.chunk", "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }  # fmt: skip
            return b"data: " + orjson.dumps(chunk) + b"\n\n"

        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        for word in (message.get("content") or "").split(" "):
            deltas.append({"content": word + " "})
        for index, call in enumerate(message.get("tool_calls") or []):
            arguments = call["function"]["arguments"]
            half = len(arguments) // 2
            deltas.append({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                           "function": {"name": call["function"]["name"],
                                        "arguments": arguments[:half]}}]})  # fmt: skip
            deltas.append({"tool_calls": [{"index": index,
                           "function": {"arguments": arguments[half:]}}]})  # fmt: skip
        finished = False
        try:
            for position, delta in enumerate(deltas):
                if position == 1 and step == "gated":
                    while not self._gate.is_set():
                        await asyncio.sleep(0.005)
                if position == 2 and step == "drop":
                    raise ConnectionResetError("upstream dropped the stream")
                if position == 2 and step == "error":
                    yield b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'
                    return
                yield event(delta)
            yield event({}, finish)
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
                yield b"data: " + orjson.dumps(
                    {"id": answer_id, "object": "chat.completion.chunk", "created": 1,
                     "model": body["model"], "choices": [], "usage": usage}
                ) + b"\n\n"  # fmt: skip
            yield b"data: [DONE]\n\n"
            finished = True
        finally:
            if finished:
                self.streams_finished += 1
            elif step not in ("drop", "error"):
                self.streams_abandoned += 1
