"""The aiohttp application: app factory, typed state, error and auth middlewares."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from oxen.errors import (
    AlreadyExists,
    CorruptObject,
    InvalidInput,
    MissingObject,
    NonFastForward,
    NotFound,
    OxenError,
    PathError,
    RefConflict,
    RefError,
)
from oxen.server.auth import TokenStore, format_time, required_role
from oxen.server.protocol import protocol_middleware, stamp_version
from oxen.server.routes import routes
from oxen.server.state import GRANT, REGISTRY, SETTINGS, STORE, TOKENS, Settings
from oxen.serving.registry import RepoRegistry
from oxen.storage import InvalidKey, Store, StoreUnavailable, open_store

log = logging.getLogger("oxen.server")


STATUS_OF: list[tuple[type[Exception], int]] = [
    (NotFound, 404),
    (AlreadyExists, 409),
    (RefConflict, 409),
    (NonFastForward, 409),
    (InvalidInput, 400),
    (CorruptObject, 400),
    (MissingObject, 400),
    (PathError, 400),
    (RefError, 400),
    (InvalidKey, 400),
    (StoreUnavailable, 503),
    (OxenError, 400),
]


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status)


# Answered when the client has gone (nginx's "client closed request"): no one reads it,
# but the access log shows it.
CLIENT_GONE = 499


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
        for kind, status in STATUS_OF:
            if isinstance(e, kind):
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
        return json_error(
            401, "missing or invalid token: set one with `oxen config --auth HOST TOKEN`"
        )
    if grant.expired(time.time()):
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
    settings: Settings, store: Store | None = None, clock: Callable[[], float] = time.monotonic
) -> web.Application:
    """The application; ``store`` (else opened from the settings) and ``clock`` (the grant
    cache's) are given by tests."""
    app = web.Application(
        middlewares=[error_middleware, auth_middleware, protocol_middleware],
        client_max_size=16 * 1024 * 1024,
    )
    app[SETTINGS] = settings

    async def resources(app: web.Application) -> AsyncIterator[None]:
        opened = store or open_store(settings.storage_url, **settings.store_options())
        app[STORE] = opened
        app[TOKENS] = TokenStore(opened, recheck=settings.token_recheck, clock=clock)
        app[REGISTRY] = RepoRegistry(
            opened, settings.data_dir / "cache", max_open=settings.max_open_repos
        )
        yield
        await app[REGISTRY].close()
        if store is None:
            await opened.close()

    app.cleanup_ctx.append(resources)
    app.on_response_prepare.append(stamp_version)
    app.add_routes(routes)
    return app
