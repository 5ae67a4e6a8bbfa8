"""The protocol version: stamped on every answer, required of every /api/repos request
(but of the routes marked :func:`plain_http`, from clients that send none).

A client of another protocol version (an older one sends none) gets one clear line, not
a confusing failure deep inside a push.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from oxen.sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION

_OURS = str(PROTOCOL_VERSION)
PLAIN_HTTP = "oxen_plain_http"
H = TypeVar("H")


def plain_http(handler: H) -> H:
    """Mark a route that plain HTTP clients (curl, a browser) may use without the protocol
    header: its answer is a file's bytes, the same in every protocol version."""
    setattr(handler, PLAIN_HTTP, True)
    return handler


@web.middleware
async def protocol_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    plain = getattr(request.match_info.handler, PLAIN_HTTP, False)
    if request.path.startswith("/api/repos") and not (
        plain and PROTOCOL_HEADER not in request.headers
    ):
        theirs = request.headers.get(PROTOCOL_HEADER, "1")
        if theirs != _OURS:
            newer = theirs.isdigit() and int(theirs) > PROTOCOL_VERSION
            raise web.HTTPBadRequest(
                reason=(
                    f"this server speaks oxen protocol {_OURS} (32-byte BLAKE3 ids) and your "
                    f"client speaks {theirs[:10]!r}: "
                    + ("upgrade the server" if newer else "upgrade oxen")
                )
            )
    return await handler(request)


async def stamp_version(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer, errors and streams included, names the version."""
    response.headers[PROTOCOL_HEADER] = _OURS
