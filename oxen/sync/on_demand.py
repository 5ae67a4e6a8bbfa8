"""Absent objects fetched from a clone's remote when a command needs them.

:func:`enable` makes every repository opened afterwards fetch what it lacks (nodes of
trees it did not clone, chunks of files it holds no data for) from its remote, ``origin``
or its only one.  The connection opens on the first miss, so a command that needs
nothing absent pays nothing (not even the import of the HTTP stack).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from oxen.core.on_demand import OnDemand
from oxen.core.repository import OnDemandFactory, Repository
from oxen.db.rows import FileRow
from oxen.progress import ProgressFactory, null_progress

if TYPE_CHECKING:
    from oxen.sync.protocol import Remote

JOBS = 4


def remote_name_of(repo: Repository) -> str | None:
    """The remote a clone's absent objects come from: ``origin``, or the only remote."""
    remotes = repo.config.remotes
    if "origin" in remotes:
        return "origin"
    return next(iter(remotes)) if len(remotes) == 1 else None


class RemoteOnDemand:
    def __init__(self, repo: Repository, name: str, progress: ProgressFactory) -> None:
        self.repo = repo
        self.name = name
        self.progress = progress
        self._stack = contextlib.AsyncExitStack()
        self._remote: Remote | None = None
        self.bytes_received = 0

    async def _connect(self) -> Remote:
        if self._remote is None:
            from oxen.sync import remotes  # the HTTP stack, only once something is absent

            url = remotes.remote_url(self.repo, self.name)
            self._remote = await self._stack.enter_async_context(remotes.connect(url, JOBS))
        return self._remote

    async def objects(self, ids: list[bytes]) -> None:
        from oxen.sync.transfer import fetch_ids

        remote = await self._connect()
        before = remote.bytes_received
        bar = null_progress("", None, "")
        await fetch_ids(self.repo.objects, remote, sorted(set(ids)), {}, JOBS, bar)
        self.bytes_received += remote.bytes_received - before

    async def files(self, rows: list[FileRow]) -> None:
        from oxen.sync.transfer import fetch_chunks, plan_data

        remote = await self._connect()
        before = remote.bytes_received
        bar = self.progress(f"fetching from {self.name}", None, "B")
        try:
            plan = await plan_data(self.repo, remote, rows, JOBS, bar)
            await fetch_chunks(self.repo, remote, plan, JOBS, bar)
        finally:
            bar.close()
        self.bytes_received += remote.bytes_received - before

    async def lacks(self, ids: list[bytes]) -> set[bytes]:
        return await (await self._connect()).missing(ids)

    async def close(self) -> None:
        await self._stack.aclose()
        self._remote = None


def factory(progress: ProgressFactory = null_progress) -> OnDemandFactory:
    """What gives a repository with a remote its :class:`RemoteOnDemand`."""

    def make(repo: Repository) -> OnDemand | None:
        name = remote_name_of(repo)
        return RemoteOnDemand(repo, name, progress) if name is not None else None

    return make


def enable(progress: ProgressFactory = null_progress) -> None:
    """From now on, repositories with a remote fetch what they lack from it."""
    Repository.on_demand_factory = factory(progress)
