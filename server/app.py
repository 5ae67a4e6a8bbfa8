"""The aiohttp application: app factory, typed state, error and auth middlewares."""

from __future__ import annotations

import logging
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
from oxen.server.auth import TokenStore
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


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Domain errors become JSON 4xx/5xx here, once, not in every handler."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return json_error(e.status, e.reason or e.text or "error")
    except Exception as e:
        for kind, status in STATUS_OF:
            if isinstance(e, kind):
                return json_error(status, str(e))
        log.exception("internal error on %s %s", request.method, request.path)
        return json_error(500, "internal server error")


READ_POSTS = ("/objects/missing", "/objects/fetch")


@web.middleware
async def auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every /api/repos route needs a bearer token that may use the route's namespace."""
    if not request.path.startswith("/api/repos"):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    grant = await request.app[TOKENS].lookup(token) if token else None
    if grant is None:
        return json_error(
            401, "missing or invalid token: set one with `oxen config --auth HOST TOKEN`"
        )
    namespace = request.match_info.get("namespace")
    if namespace is not None:
        writing = request.method in ("PUT", "DELETE") or (
            request.method == "POST" and not request.path.endswith(READ_POSTS)
        )
        allowed = grant.can_write(namespace) if writing else grant.can_read(namespace)
        if not allowed:
            return json_error(
                403, f"this token may not {'write to' if writing else 'read'} namespace {namespace}"
            )
    request[GRANT] = grant
    return await handler(request)


def create_app(settings: Settings, store: Store | None = None) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, auth_middleware, protocol_middleware],
        client_max_size=16 * 1024 * 1024,
    )
    app[SETTINGS] = settings

    async def resources(app: web.Application) -> AsyncIterator[None]:
        opened = store or open_store(settings.storage_url, **_store_options(settings))
        app[STORE] = opened
        app[TOKENS] = TokenStore(opened)
        app[REGISTRY] = RepoRegistry(opened, settings.data_dir / "cache")
        yield
        await app[REGISTRY].close()
        if store is None:
            await opened.close()

    app.cleanup_ctx.append(resources)
    app.on_response_prepare.append(stamp_version)
    app.add_routes(routes)
    return app


def _store_options(settings: Settings) -> dict[str, object]:
    if settings.storage_url.startswith("s3://") and settings.s3_endpoint:
        return {"endpoint_url": settings.s3_endpoint}
    return {}
