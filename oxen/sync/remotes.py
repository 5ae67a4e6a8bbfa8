"""Named remotes of a working copy (``origin`` -> URL, in its config) and connections to them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from oxen.core.repository import Repository
from oxen.errors import OxenError
from oxen.sync.http import HttpRemote
from oxen.sync.protocol import RemoteURL


def remote_url(repo: Repository, name: str) -> RemoteURL:
    url = repo.config.remotes.get(name)
    if url is None:
        raise OxenError(
            f"no remote named {name!r}: add one with oxen config --set-remote {name} URL"
        )
    return RemoteURL.parse(url)


async def set_remote(repo: Repository, name: str, url: str) -> RemoteURL:
    parsed = RemoteURL.parse(url)
    repo.config.remotes[name] = url
    await repo.save_config()
    return parsed


@contextlib.asynccontextmanager
async def connect(url: RemoteURL, jobs: int = 4) -> AsyncIterator[HttpRemote]:
    """A client with enough connections for ``jobs`` packs in flight plus negotiation."""
    client = HttpRemote(url, connections=max(4, jobs * 2))
    try:
        yield client
    finally:
        await client.close()


async def create_remote(url: str) -> RemoteURL:
    """Create the repository ``url`` names on its server."""
    parsed = RemoteURL.parse(url)
    async with connect(parsed) as client:
        await client.create()
    return parsed
