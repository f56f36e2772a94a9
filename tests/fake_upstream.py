"""A fake OpenAI-compatible upstream: a real HTTP server on 127.0.0.1 whose next answers a
test scripts. Steps: ``ok``, an HTTP status such as ``500``, ``slow:<seconds>[:<step>]``,
``garbage``, ``tool`` (a tool call to the request's first tool), and for streamed requests
``gated`` (the first chunk, then the rest once ``release`` is called), ``drop`` (two chunks,
then the connection breaks) and ``error`` (two chunks, then an error event).

It also answers the OpenAI Responses API (``/v1/responses``) and the Anthropic Messages API
(``/v1/messages``), whole and streamed, with the steps ``ok``, an HTTP status, ``gated``
and ``tool``."""

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
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

        @app.post("/v1/responses")
        async def respond(request: Request) -> Response:
            return await self._other_api(request, "responses")

        @app.post("/v1/messages")
        async def message(request: Request) -> Response:
            return await self._other_api(request, "messages")

        super().__init__(app)

    async def _other_api(self, request: Request, api: str) -> Response:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        step = self.plan.popleft() if self.plan else "ok"
        if step.isdigit():
            return JSONResponse({"error": {"message": "boom"}}, int(step))
        text = f"Upstream says: {other_api_question(body, api)}"
        events = (responses_events if api == "responses" else messages_events)(
            body, text, step == "tool"
        )
        if not body.get("stream"):
            return JSONResponse(events[-1]["response"] if api == "responses" else _message(events))
        return StreamingResponse(self._sse(events, step), media_type="text/event-stream")

    async def _sse(self, events: list[dict[str, Any]], step: str) -> AsyncIterator[bytes]:
        for position, event in enumerate(events):
            if position == 3 and step == "gated":
                while not self._gate.is_set():
                    await asyncio.sleep(0.005)
            yield f"event: {event['type']}\ndata: ".encode() + orjson.dumps(event) + b"\n\n"
        self.streams_finished += 1

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
            if step == "multiline":  # the SSE format as a whole: data over several lines,
                # an id, a comment (each data line's text joins the others with a newline)
                lines = orjson.dumps(chunk, option=orjson.OPT_INDENT_2).split(b"\n")
                data = b"".join(b"data: " + line + b"\n" for line in lines)
                return b": keep-alive\n" + data + f"id: {answer_id}\n\n".encode()
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


def other_api_question(body: dict[str, Any], api: str) -> str:
    """The last user text of a Responses or Messages request."""
    if api == "responses" and isinstance(body.get("input"), str):
        return str(body["input"])
    turns = body.get("input") if api == "responses" else body.get("messages")
    user = [t for t in turns or [] if t.get("role") == "user"][-1]["content"]
    if isinstance(user, list):
        return " ".join(part.get("text", "") for part in user)
    return str(user)


def responses_events(body: dict[str, Any], text: str, tool: bool) -> list[dict[str, Any]]:
    part = {"type": "output_text", "text": text, "annotations": []}
    item: dict[str, Any] = {"id": "msg_1", "type": "message", "status": "completed",
                            "role": "assistant", "content": [part]}  # fmt: skip
    output = [item]
    if tool:
        output.append({"id": "fc_1", "type": "function_call", "status": "completed",
                       "call_id": "call_1", "name": "get_weather", "arguments": "{}"})  # fmt: skip
    done = {"id": "resp_1", "object": "response", "created_at": 1, "status": "completed",
            "model": body["model"], "output": output,
            "usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}}  # fmt: skip
    started = {**done, "status": "in_progress", "output": []}
    at = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {**item, "status": "in_progress", "content": []}},
        *({"type": "response.output_text.delta", **at, "delta": word + " "}
          for word in text.split(" ")),
        {"type": "response.output_text.done", **at, "text": text},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": done},
    ]  # fmt: skip
    return [{**event, "sequence_number": n} for n, event in enumerate(events)]


def messages_events(body: dict[str, Any], text: str, tool: bool) -> list[dict[str, Any]]:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
               "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": 5, "output_tokens": 1}}  # fmt: skip
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        *({"type": "content_block_delta", "index": 0,
           "delta": {"type": "text_delta", "text": word + " "}} for word in text.split(" ")),
        {"type": "content_block_stop", "index": 0},
    ]  # fmt: skip
    if tool:
        events += [
            {"type": "content_block_start", "index": 1, "content_block":
             {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}},
            {"type": "content_block_delta", "index": 1,
             "delta": {"type": "input_json_delta", "partial_json": "{}"}},
            {"type": "content_block_stop", "index": 1},
        ]  # fmt: skip
    events += [
        {"type": "message_delta", "delta": {"stop_reason": "tool_use" if tool else "end_turn",
                                            "stop_sequence": None}, "usage": {"output_tokens": 7}},
        {"type": "message_stop"},
    ]  # fmt: skip
    return events


def _message(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole message a Messages stream spells out."""
    message = dict(events[0]["message"])
    blocks: dict[int, dict[str, Any]] = {}
    for event in events:
        if event["type"] == "content_block_start":
            blocks[event["index"]] = dict(event["content_block"])
        elif event["type"] == "content_block_delta" and event["delta"]["type"] == "text_delta":
            blocks[event["index"]]["text"] += event["delta"]["text"]
        elif event["type"] == "message_delta":
            message.update(event["delta"])
            message["usage"] = {**message["usage"], **event["usage"]}
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return message


class MeaningUpstream(ServerThread):
    """An OpenAI-compatible upstream that answers by meaning: ``answers(question)`` gives
    the variants of a question's answer (one meaning, several wordings), and each call
    answers with one of them at random, so an exact comparison of answers is not enough.
    ``topics`` builds such a function from topic words. A system prompt named in
    ``instructed`` is obeyed: its own function answers (an answer in another language, say).
    It records the questions asked, and each request's body."""

    def __init__(
        self, answers: Callable[[str], list[str]], seed: int = 3,
        instructed: Mapping[str, Callable[[str], list[str]]] | None = None,
    ) -> None:  # fmt: skip
        import random

        self.answers = answers
        self.instructed = dict(instructed or {})
        self.asked: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        rng = random.Random(seed)
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def complete(request: Request) -> Response:
            body = await request.json()
            question = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
            self.asked.append(question)
            self.bodies.append(body)
            system = [m["content"] for m in body["messages"] if m["role"] == "system"]
            answers = self.instructed.get(system[0], self.answers) if system else self.answers
            text = rng.choice(answers(question))
            return JSONResponse({
                "id": f"chatcmpl-{len(self.asked)}", "object": "chat.completion", "created": 1,
                "model": body.get("model", "meaning"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
            })  # fmt: skip

        super().__init__(app)

    @staticmethod
    def topics(answers: dict[str, list[str]]) -> Callable[[str], list[str]]:
        """Answers by topic word (in the question, any case); others get their own."""

        def answer(question: str) -> list[str]:
            words = set(question.lower().replace("?", " ").split())
            topic = next((t for t in answers if t in words), None)
            return answers[topic] if topic else [f"About {question}: no idea."]

        return answer

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"
