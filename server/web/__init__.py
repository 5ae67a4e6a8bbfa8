"""The web pages of ``oxen-server`` (docs/web.md): server-rendered HTML over
:mod:`oxen.serving.browsing`, on the API's port and with its tokens."""

from __future__ import annotations

from aiohttp import web

from oxen.server.web.guard import web_middleware
from oxen.server.web.render import STATIC, STATIC_PREFIX
from oxen.server.web.routes import routes
from oxen.server.web.session import WEB, WebState

__all__ = ["add_web", "web_middleware"]


def add_web(app: web.Application) -> None:
    """The pages and their assets (every one shipped in this package: nothing is loaded
    from another site). Their errors are answered by ``web_middleware``, which the
    application lists innermost."""
    app[WEB] = WebState()
    assets = {p.name: p for p in STATIC.iterdir() if p.is_file()}

    async def asset(request: web.Request) -> web.StreamResponse:
        """One of the shipped files, by name only; anything else is a JSON 404 (aiohttp's
        static route answered a bare 404 of its own for a missing file)."""
        path = assets.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound(reason="no such asset")
        return web.FileResponse(path)

    app.router.add_get(STATIC_PREFIX + "/{name}", asset)
    app.add_routes(routes)
