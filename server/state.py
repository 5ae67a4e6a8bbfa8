"""Typed application state shared by the app factory and the route handlers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from oxen.server.auth import TOKEN_RECHECK_SECONDS, TokenGrant, TokenStore
from oxen.serving.registry import MAX_OPEN_REPOS, RepoRegistry
from oxen.serving.workspaces import IDLE_SECONDS
from oxen.storage import Store

# Seconds a request body may go without a byte arriving before the request is answered
# 408 and its connection closed: a slow link still sends something every few seconds,
# a client that announced a body and never sends it no longer holds a connection for ever.
BODY_IDLE_TIMEOUT = 60.0
# Bytes of a request body that is not a pack (JSON, id lists: 100,000 ids are ~1.6 MB).
SMALL_BODY_MAX = 16 * 1024 * 1024
# Answered when the client has gone mid-request (nginx's "client closed request"): no one
# reads it, but the access log and the metrics show it.
CLIENT_GONE = 499


@dataclass(frozen=True)
class Settings:
    storage_url: str
    data_dir: Path
    s3_endpoint: str | None = None
    body_idle_timeout: float = BODY_IDLE_TIMEOUT
    # Seconds a grant read from the store is trusted before it is read again: the bound on
    # how long a revoked token keeps working on this server.
    token_recheck: float = TOKEN_RECHECK_SECONDS
    # Repositories kept open at once (each holds a thread and three files); more only
    # while more are in use by requests.
    max_open_repos: int = MAX_OPEN_REPOS
    # Seconds a workspace may go unchanged before it is removed.
    workspace_idle: float = IDLE_SECONDS
    # GET /metrics, and the store's calls timed for it.
    metrics: bool = True
    # Clients PUT packs straight to the store by presigned URLs (an s3:// store only).
    direct_uploads: bool = False
    # Clients read the objects they fetch straight from the store (an s3:// store only).
    direct_downloads: bool = False

    def store_options(self) -> dict[str, object]:
        if self.storage_url.startswith("s3://") and self.s3_endpoint:
            return {"endpoint_url": self.s3_endpoint}
        return {}


REGISTRY = web.AppKey("registry", RepoRegistry)
TOKENS = web.AppKey("tokens", TokenStore)
SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
GRANT = web.RequestKey("grant", TokenGrant)  # the caller's grant
# The email of the grant the request's token names (allowed or not), for the access log.
USER = web.RequestKey("user", str)
# Why a request's token was refused with a 401: missing, invalid or expired (metrics).
AUTH_FAILURE = web.RequestKey("auth_failure", str)


def grant_of(request: web.Request) -> TokenGrant:
    return request[GRANT]
