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
    app.router.add_static(STATIC_PREFIX, STATIC)
    app.add_routes(routes)
