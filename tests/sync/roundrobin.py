"""A round-robin HTTP proxy for tests: each request goes to the next server in turn.

Per request, not per connection: a client keeps its connections alive, so a proxy that
picked a server per connection would send a whole push to one server.  Here one push's
ref read, negotiation, packs and branch update land on different servers, which is the
worst a load balancer without stickiness can do.  Bodies are streamed both ways, so a
pack is never held whole in the proxy.  It runs its own event loop on a thread, so a
test may drive the real CLI with blocking subprocess calls while it serves.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter
from collections.abc import Sequence

import aiohttp
from aiohttp import web

# Headers that describe one hop, not the request: never forwarded (RFC 9110 7.6.1).
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
    )
)
PIECE = 1 << 20


class RoundRobinProxy:
    """Listens on a free loopback port; ``host`` is its ``host:port``.  ``served``
    counts the requests each upstream (``host:port``) answered."""

    def __init__(self, upstreams: Sequence[str]) -> None:
        if not upstreams:
            raise ValueError("no upstream servers")
        self.upstreams = list(upstreams)
        self.served: Counter[str] = Counter()
        self.host = ""
        self._next = itertools.cycle(self.upstreams)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def __enter__(self) -> RoundRobinProxy:
        self._thread.start()
        self.host = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    def url(self, repo: str) -> str:
        return f"http://{self.host}/{repo}"

    async def _start(self) -> str:
        # no automatic decompression: bytes go through as the server sent them
        self._session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None)
        )
        app = web.Application(client_max_size=0)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"127.0.0.1:{self._runner.addresses[0][1]}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        upstream = next(self._next)
        self.served[upstream] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = request.content.iter_chunked(PIECE) if request.body_exists else None
        async with self._session.request(
            request.method,
            f"http://{upstream}{request.rel_url}",
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as answer:
            response = web.StreamResponse(status=answer.status, reason=answer.reason)
            for k, v in answer.headers.items():
                if k.lower() not in HOP_BY_HOP:
                    response.headers.add(k, v)
            if answer.content_length is not None:
                response.content_length = answer.content_length
            await response.prepare(request)
            async for piece in answer.content.iter_chunked(PIECE):
                await response.write(piece)
            await response.write_eof()
            return response
