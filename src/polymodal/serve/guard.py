"""The first thing every request meets: a pure-ASGI guard that checks the API key and
bounds a request body in size, arrival time and number in flight, before any route
reads a byte of it."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from fastapi import HTTPException

MAX_UPLOAD_BYTES = 10 * 2**20
#: room for a form's other fields and boundaries on top of the upload limit
FORM_OVERHEAD_BYTES = 64 * 1024
#: paths that answer without the API key: the health probe and the static page (which
#: holds no library data and is where the key is typed)
OPEN_PATHS = frozenset({"/health", "/"})


#: seconds a request body may take to arrive whole (10 MB at 350 kB/s)
BODY_TIMEOUT_S = 30.0
#: requests whose bodies may be arriving at once; more are answered 503 at once, so a
#: few slow clients cannot hold every worker
MAX_BODIES_IN_FLIGHT = 16


class BodyTooLarge(HTTPException):
    """A request body that went over the limit while it was being received."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over the limit of {limit:,} bytes")


class BodyTooSlow(HTTPException):
    """A request body that did not arrive whole within the time allowed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"request body did not arrive within {seconds:g} s")


async def _send_json(send: Any, status: int, detail: str) -> None:
    import json

    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """The first thing every request meets (pure ASGI, before any body is read):

    - with an API key set, every path but :data:`OPEN_PATHS` needs ``X-API-Key``
      (compared in constant time), the OpenAPI schema and docs included;
    - a body whose ``Content-Length`` is over ``limit`` is refused with 413 before a
      byte of it is read; a body without one (chunked) is counted as it arrives and
      refused with 413 the moment it goes over, so no request makes the server hold or
      spool more than ``limit`` bytes;
    - a body must arrive whole within ``body_timeout`` seconds (else 408), and at most
      ``max_bodies`` requests may be receiving one at a time (else 503 at once): a
      client that sends a byte a second holds a slot for seconds, not forever.
    """

    def __init__(self, app: Any, *, limit: int, api_key: str | None,
                 body_timeout: float = BODY_TIMEOUT_S,
                 max_bodies: int = MAX_BODIES_IN_FLIGHT) -> None:
        self.app, self.limit, self.api_key = app, limit, api_key
        self.body_timeout, self.max_bodies = body_timeout, max_bodies
        self.bodies_in_flight = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if self.api_key and scope.get("path", "") not in OPEN_PATHS:
            given = headers.get(b"x-api-key", b"").decode("latin-1")
            if not secrets.compare_digest(given.encode(), self.api_key.encode()):
                await _send_json(send, 401, "missing or wrong X-API-Key")
                return
        length = headers.get(b"content-length")
        if length is not None:
            if not length.strip().isdigit():
                await _send_json(send, 400, "Content-Length is not a number")
                return
            if int(length) > self.limit:
                await _send_json(send, 413, f"request body over the limit of "
                                            f"{self.limit:,} bytes")
                return
        has_body = scope.get("method") in ("POST", "PUT", "PATCH") or \
            (length is not None and int(length) > 0)
        if has_body and self.bodies_in_flight >= self.max_bodies:
            await _send_json(send, 503, "too many uploads in progress; try again shortly")
            return
        received = 0
        done = False  # a GET's first receive returns its empty body at once
        deadline = asyncio.get_running_loop().time() + self.body_timeout

        async def counted() -> dict[str, Any]:
            nonlocal received, done
            if done:  # the body is in: later calls wait for a disconnect, unbounded
                return await receive()
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(left, 0.0))
            except TimeoutError:
                raise BodyTooSlow(self.body_timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
                done = not message.get("more_body", False)
            else:
                done = True
            return message

        self.bodies_in_flight += has_body
        try:
            await self.app(scope, counted, send)
        finally:
            self.bodies_in_flight -= has_body
