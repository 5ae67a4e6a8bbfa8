"""The protocol version: stamped on every answer, required of every /api/repos request.

A client of another protocol version (an older one sends none) gets one clear line, not
a confusing failure deep inside a push.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from oxen.sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION

_OURS = str(PROTOCOL_VERSION)


@web.middleware
async def protocol_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.path.startswith("/api/repos"):
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
