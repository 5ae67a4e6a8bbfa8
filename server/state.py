"""Typed application state shared by the app factory and the route handlers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from oxen.server.auth import TokenGrant, TokenStore
from oxen.serving.registry import RepoRegistry
from oxen.storage import Store


@dataclass(frozen=True)
class Settings:
    storage_url: str
    data_dir: Path
    s3_endpoint: str | None = None


REGISTRY = web.AppKey("registry", RepoRegistry)
TOKENS = web.AppKey("tokens", TokenStore)
SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
GRANT = "grant"  # request key holding the caller's TokenGrant


def grant_of(request: web.Request) -> TokenGrant:
    return request[GRANT]
