"""The studio's guard on request bodies: bounded in size (413 past the bound, whether announced or
streamed), and of a JSON content type on POSTs (YAML on the import), 415 otherwise. A page of another
site cannot send those types without the browser asking first, and the studio never allows it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pipeline.config import MAX_CONFIG_BYTES

MAX_BODY_BYTES = 256 * 1024  # a config with every extra is a few kilobytes
MAX_UPLOAD_BYTES = MAX_CONFIG_BYTES  # an imported YAML file: the bound every config file has
JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/x-yaml", "application/yaml", "text/yaml", "text/x-yaml")
IMPORT_PATH = "/api/import"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyGuard:
    """ASGI middleware: the bounds and content types above, checked before the application runs."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        is_import = scope["path"] == IMPORT_PATH
        limit = MAX_UPLOAD_BYTES if is_import else MAX_BODY_BYTES
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        accepted = YAML_TYPES if is_import else JSON_TYPES
        if kind not in accepted:
            await _reply(
                send, 415, f"expected a body of type {' or '.join(accepted)}, but got {kind or 'none'!r}"
            )
            return
        announced = headers.get("content-length", "")
        if announced.isdigit() and int(announced) > limit:
            await _reply(
                send, 413, f"request body of {int(announced):,} bytes is over the limit of {limit:,}"
            )
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > limit:
                await _reply(send, 413, f"request body is over the limit of {limit:,} bytes")
                return
            if not message.get("more_body"):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _reply(send: Send, status: int, detail: str) -> None:
    payload = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
