"""The aiohttp application: app factory, typed state, error and auth middlewares."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TextIO

from aiohttp import web

from oxen.errors import IncompletePush, MergeConflict
from oxen.server.auth import TokenStore, format_time, required_role
from oxen.server.health import routes as health_routes
from oxen.server.metrics import METRICS, MeasuredStore, Metrics
from oxen.server.metrics import routes as metrics_routes
from oxen.server.observe import OBSERVER, AccessLog, Observer, observe_middleware
from oxen.server.protocol import protocol_middleware, stamp_version
from oxen.server.routes import routes
from oxen.server.state import (
    AUTH_FAILURE,
    CLIENT_GONE,
    GRANT,
    REGISTRY,
    SETTINGS,
    STORE,
    TOKENS,
    USER,
    Settings,
)
from oxen.server.statuses import status_of
from oxen.server.web import add_web, web_middleware
from oxen.server.workspaces import routes as workspace_routes
from oxen.serving.registry import RepoRegistry
from oxen.storage import Store, open_store

log = logging.getLogger("oxen.server")


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status)


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Domain errors become JSON 4xx/5xx here, once, not in every handler. A client that
    disconnects mid-request is one line of log, not a traceback."""
    try:
        return await handler(request)
    except asyncio.CancelledError:
        if client_gone(request):
            _log_gone(request, "cancelled")
        raise
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return json_error(e.status, e.reason or e.text or "error")
    except Exception as e:
        if isinstance(e, ConnectionError) and client_gone(request):
            _log_gone(request, f"{type(e).__name__}: {e}")
            return web.Response(status=CLIENT_GONE)
        if isinstance(e, MergeConflict):  # the paths, for a client to show or act on
            return web.json_response(
                {"error": str(e), "status": 409, "paths": e.paths[:1000]}, status=409
            )
        if isinstance(e, IncompletePush):  # the client sends what is missing and retries
            return web.json_response(
                {"error": str(e), "status": 400, "incomplete": True}, status=400
            )
        status = status_of(e)
        if status is not None:
            return json_error(status, str(e))
        log.exception("internal error on %s %s", request.method, request.path)
        return json_error(500, "internal server error")


def _log_gone(request: web.Request, reason: str) -> None:
    log.info(
        "client disconnected: %s %s from %s (%s)",
        request.method,
        request.path,
        request.remote,
        reason,
    )


@web.middleware
async def auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every /api/repos route needs a bearer token whose role and namespaces allow the
    route's namespace (the role each route needs is marked on it in routes.py)."""
    if not request.path.startswith("/api/repos"):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    grant = await request.app[TOKENS].lookup(token) if token else None
    if grant is None:
        request[AUTH_FAILURE] = "invalid" if token else "missing"
        return json_error(
            401, "missing or invalid token: set one with `oxen config --auth HOST TOKEN`"
        )
    request[USER] = grant.email
    if grant.expired(time.time()):
        request[AUTH_FAILURE] = "expired"
        return json_error(
            401, f"this token expired on {format_time(grant.expires)}: ask for a new one"
        )
    namespace = request.match_info.get("namespace")
    if namespace is not None:
        role = required_role(request.match_info.handler)
        if not grant.allows(namespace, role):
            return json_error(403, grant.refusal(namespace, role))
    request[GRANT] = grant
    return await handler(request)


def create_app(
    settings: Settings,
    store: Store | None = None,
    clock: Callable[[], float] = time.monotonic,
    access_log: TextIO | None = None,
) -> web.Application:
    """The application; ``store`` (else opened from the settings) and ``clock`` (the grant
    cache's) are given by tests. Each request is written to ``access_log`` as a JSON line
    (none when None)."""
    app = web.Application(
        middlewares=[
            observe_middleware,
            error_middleware,
            auth_middleware,
            protocol_middleware,
            web_middleware,
        ],
        client_max_size=16 * 1024 * 1024,
    )
    app[SETTINGS] = settings
    metrics = Metrics() if settings.metrics else None
    app[OBSERVER] = Observer(metrics, None if access_log is None else AccessLog(access_log))
    if metrics is not None:
        app[METRICS] = metrics
        app.add_routes(metrics_routes)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        opened = store or open_store(settings.storage_url, **settings.store_options())
        used = opened if metrics is None else MeasuredStore(opened, metrics)
        app[STORE] = used
        app[TOKENS] = TokenStore(used, recheck=settings.token_recheck, clock=clock)
        app[REGISTRY] = RepoRegistry(
            used, settings.data_dir / "cache", max_open=settings.max_open_repos
        )
        if metrics is not None:
            metrics.watch_packs(app[REGISTRY].pack_slots)
        yield
        await app[REGISTRY].close()
        if store is None:
            await opened.close()

    app.cleanup_ctx.append(resources)
    app.on_response_prepare.append(stamp_version)
    app.add_routes(health_routes)
    app.add_routes(routes)
    app.add_routes(workspace_routes)
    add_web(app)  # last: its /{namespace}/... patterns match only what no route above does
    return app
