"""The ASGI layer around the API: API keys, the request-body limit, and requests that end badly.

- ``/v1/...`` and ``/mcp...`` need a key when keys are configured (401 otherwise); the OpenAPI document and
  the root stay public, as in Pyserini's server.
- A body over the limit gets 413, whether announced by ``Content-Length`` or found while reading it.
- A client that disconnects mid-request is logged and forgotten.
- Any other exception is a 500 whose body names nothing internal; its traceback goes to the server's log.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qpr_pyserini.serve.auth import ApiKeys

log = logging.getLogger(__name__)

PROTECTED = ("/v1/", "/mcp")
UNAUTHORIZED = "Unauthorized: send an API key as 'X-API-Key: KEY' or 'Authorization: Bearer KEY'"
INTERNAL = "Internal server error"


class BodyTooLarge(Exception):
    """The request body passed the limit while it was being read."""


class Guard:
    """Wraps the app (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, keys: ApiKeys, body_bytes: int) -> None:
        self.app = app
        self.keys = keys
        self.body_bytes = body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.keys and scope["path"].startswith(PROTECTED) and not self.keys.accepts(scope["headers"]):
            await send_error(send, 401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.body_bytes:
            await send_error(send, 413, self._too_large())
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.body_bytes:
                raise BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await send_error(send, 413, self._too_large())
        except ClientDisconnect:
            log.info("client disconnected during %s %s", scope["method"], scope["path"])
        except Exception:
            log.exception("internal error in %s %s", scope["method"], scope["path"])
            if not started:
                await send_error(send, 500, INTERNAL)

    def _too_large(self) -> str:
        return f"Request body is larger than {self.body_bytes} bytes"


async def send_error(send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """Answer ``{"error": message}`` with ``status`` (a raw ASGI response)."""
    body = json.dumps({"error": message}).encode()
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
