"""A fake OpenAI-compatible upstream: a real HTTP server on 127.0.0.1 whose next answers a
test scripts (``ok``, an HTTP status such as ``500``, ``slow:<seconds>[:<step>]``,
``garbage``)."""

import asyncio
from collections import deque
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from tests.helpers import ServerThread


class FakeUpstream(ServerThread):
    def __init__(self) -> None:
        self.plan: deque[str] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def complete(request: Request) -> Response:
            body = await request.json()
            self.requests.append(body)
            self.headers.append(dict(request.headers))
            step = self.plan.popleft() if self.plan else "ok"
            if step.startswith("slow:"):  # slow:<seconds>[:<then what>]
                _, seconds, *then = step.split(":")
                await asyncio.sleep(float(seconds))
                step = then[0] if then else "ok"
            if step == "garbage":
                return PlainTextResponse("not json at all")
            if step.isdigit():
                headers = {"Retry-After": "0"} if step == "429" else {}
                return JSONResponse({"error": {"message": "boom"}}, int(step), headers=headers)
            question = body["messages"][-1]["content"]
            return JSONResponse(
                {
                    "id": f"chatcmpl-{len(self.requests)}",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {
                                "role": "assistant",
                                "content": f"Upstream says: {question}",
                            },
                        }
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
                }
            )

        super().__init__(app)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"
