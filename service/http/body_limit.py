"""Refuses request bodies over a size (413), by Content-Length and while they stream.

The body is read here, whole, before the app sees it: a limit raised from inside the app's
own ``receive`` was turned into a 400 by the framework's body parsing (a chunked body over
the limit got "invalid JSON"). Bodies are at most ``max_bytes`` (a few MB), so holding one
costs little; the app then reads it from memory, and later ``receive`` calls (a stream
watching for the client to leave) go to the server as before.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.errors import error_response


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: nothing to answer
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "body_too_large", f"request body over {self.max_bytes} bytes"
        )
        await response(scope, receive, send)
