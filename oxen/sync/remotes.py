"""Named remotes of a working copy (``origin`` -> URL, in its config) and connections to them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from oxen.core.repository import Repository
from oxen.errors import OxenError, RefError
from oxen.formats.refnames import check_branch_name
from oxen.sync.http import HttpRemote
from oxen.sync.protocol import RemoteURL


def remote_url(repo: Repository, name: str) -> RemoteURL:
    url = repo.config.remotes.get(name)
    if url is None:
        raise OxenError(f"no remote named {name!r}: add one with oxen remote add {name} URL")
    return RemoteURL.parse(url)


def check_remote_name(name: str) -> str:
    """A remote's name is one component of its tracking refs (``refs/remotes/NAME/...``):
    no ``/``, and nothing a branch name may not hold (spaces, ``..``, ...)."""
    try:
        if "/" in name:
            raise RefError(name)
        check_branch_name(name)
    except RefError:
        raise OxenError(
            f"invalid remote name: {name!r} (no '/', spaces or control characters)"
        ) from None
    return name


async def set_remote(repo: Repository, name: str, url: str) -> RemoteURL:
    """Add the remote ``name``, or point it at ``url`` if it exists."""
    check_remote_name(name)
    parsed = RemoteURL.parse(url)
    repo.config.remotes[name] = url
    await repo.save_config()
    return parsed


async def add_remote(repo: Repository, name: str, url: str) -> RemoteURL:
    """Add the remote ``name``; one that exists is refused."""
    check_remote_name(name)
    if name in repo.config.remotes:
        raise OxenError(
            f"remote {name} already exists ({repo.config.remotes[name]}); "
            f"change its URL with oxen config --set-remote {name} URL"
        )
    return await set_remote(repo, name, url)


async def remove_remote(repo: Repository, name: str) -> int:
    """Forget the remote ``name`` and its remote-tracking branches (how many)."""
    remote_url(repo, name)  # it exists
    del repo.config.remotes[name]
    await repo.save_config()
    return await repo.refs.drop_remote(name)


async def rename_remote(repo: Repository, old: str, new: str) -> int:
    """Call the remote ``old`` ``new``; its remote-tracking branches move along (how many)."""
    remote_url(repo, old)
    check_remote_name(new)
    if new in repo.config.remotes:
        raise OxenError(f"remote {new} already exists ({repo.config.remotes[new]})")
    moved = await repo.refs.rename_remote(old, new)
    repo.config.remotes = {new if n == old else n: u for n, u in repo.config.remotes.items()}
    await repo.save_config()
    return moved


@contextlib.asynccontextmanager
async def connect(
    url: RemoteURL, jobs: int = 4, operation: str | None = None
) -> AsyncIterator[HttpRemote]:
    """A client with enough connections for ``jobs`` packs in flight plus negotiation;
    ``operation`` (clone, fetch, pull) is named to the server (its metrics count them)."""
    client = HttpRemote(url, connections=max(4, jobs * 2), operation=operation)
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
