"""``oxen.AsyncRemoteRepo`` and ``oxen.AsyncWorkspace``: a repository on a server, used
without a clone (Oxen's ``RemoteRepo`` and ``Workspace``); :mod:`oxen.api` wraps them for
blocking use.

    async with AsyncRemoteRepo("http://127.0.0.1:3000/team/images") as repo:
        ws = await repo.create_workspace("main")
        await ws.add(["labels.csv"], dst="meta")
        await ws.commit("new labels")
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from oxen.progress import ProgressFactory, null_progress
from oxen.sync import workspace as ws_verbs
from oxen.sync.download import DownloadResult
from oxen.sync.download import download as download_file
from oxen.sync.http import HttpRemote
from oxen.sync.protocol import RemoteURL
from oxen.worktree.paths import check_repo_path


class AsyncRemoteRepo:
    """One repository on a server; holds a connection pool until :meth:`close`."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = RemoteURL.parse(url)
        self.client = HttpRemote(self.url, token)

    async def __aenter__(self) -> AsyncRemoteRepo:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.client.close()

    async def create(self) -> None:
        """Create the repository on its server (409 if it exists)."""
        await self.client.create()

    async def branches(self) -> dict[str, str]:
        """Branch -> commit id (hex)."""
        return {b: c.hex() for b, c in (await self.client.refs()).items()}

    async def download(
        self,
        path: str,
        out: str | Path | None = None,
        rev: str | None = None,
        force: bool = False,
        progress: ProgressFactory = null_progress,
    ) -> DownloadResult:
        """One file, checked against its id before it is put in place."""
        return await download_file(self.client, path, rev, out, force, progress)

    async def upload(
        self,
        paths: list[str | Path],
        message: str,
        branch: str = "main",
        dst: str = "",
        progress: ProgressFactory = null_progress,
    ) -> str:
        """Files or folders committed to ``branch`` under ``dst``: the new commit (hex)."""
        sources = [str(p) for p in paths]
        commit, _ = await ws_verbs.upload(self.client, sources, message, branch, dst, progress)
        return commit

    async def delete_file(self, path: str, message: str, branch: str = "main") -> str:
        """Remove a file (or a folder) from ``branch`` in one commit: the new commit."""
        ws = await self.create_workspace(branch)
        try:
            await ws.rm([path])
            return await ws.commit(message)
        finally:
            await ws.delete()

    async def create_workspace(
        self, branch: str = "main", name: str | None = None
    ) -> AsyncWorkspace:
        found = await ws_verbs.create(self.client, branch, name)
        return AsyncWorkspace(self, str(found["id"]), found)

    async def workspace(self, id_or_name: str) -> AsyncWorkspace:
        """An existing workspace."""
        found = await ws_verbs.status(self.client, id_or_name)
        return AsyncWorkspace(self, str(found["id"]), found)

    async def workspaces(self) -> list[dict[str, Any]]:
        return await ws_verbs.list_all(self.client)


class AsyncWorkspace:
    """Changes staged on the server for one branch, committed there."""

    def __init__(self, repo: AsyncRemoteRepo, id: str, summary: dict[str, Any]) -> None:
        self.repo = repo
        self.id = id
        self.name: str | None = summary.get("name")
        self.branch: str = summary["branch"]

    @property
    def _client(self) -> HttpRemote:
        return self.repo.client

    async def add(
        self, paths: list[str | Path], dst: str = "", progress: ProgressFactory = null_progress
    ) -> ws_verbs.Staged:
        """Upload files or folders (only the chunks the server lacks) and stage them."""
        return await ws_verbs.add(self._client, self.id, [str(p) for p in paths], dst, progress)

    async def add_bytes(self, path: str, data: bytes) -> ws_verbs.Staged:
        """Stage ``data`` as the file at ``path`` in the repository."""
        check_repo_path(path)
        folder, _, name = path.rpartition("/")
        with tempfile.TemporaryDirectory(prefix="oxen-bytes-") as tmp:
            local = Path(tmp) / name
            await asyncio.to_thread(local.write_bytes, data)
            return await ws_verbs.add(self._client, self.id, [str(local)], folder)

    async def rm(self, paths: list[str]) -> dict[str, Any]:
        return await ws_verbs.remove(self._client, self.id, paths)

    async def unstage(self, paths: list[str]) -> dict[str, Any]:
        return await ws_verbs.unstage(self._client, self.id, paths)

    async def status(self) -> dict[str, Any]:
        return await ws_verbs.status(self._client, self.id)

    async def ls(self, path: str = "") -> list[dict[str, Any]]:
        return list((await ws_verbs.listing(self._client, self.id, path))["entries"])

    async def df(
        self,
        path: str,
        offset: int = 0,
        limit: int = 100,
        columns: list[str] | None = None,
        where: str | None = None,
    ) -> dict[str, Any]:
        """A page of rows of the workspace's version of a tabular file."""
        return await ws_verbs.rows(self._client, self.id, path, offset, limit, columns, where)

    async def append_rows(self, path: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return await ws_verbs.edit_rows(self._client, self.id, path, append=rows)

    async def update_rows(
        self, path: str, keys: list[str], rows: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Set the columns each row names, in the rows whose ``keys`` match."""
        return await ws_verbs.edit_rows(self._client, self.id, path, keys, update=rows)

    async def delete_rows(
        self, path: str, keys: list[str], rows: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Delete the rows whose ``keys`` match those of ``rows``."""
        return await ws_verbs.edit_rows(self._client, self.id, path, keys, delete=rows)

    async def commit(self, message: str) -> str:
        """Commit on the server (on top of the branch if it moved and the changes do not
        overlap; MergeConflict naming the paths otherwise): the new commit (hex)."""
        return str((await ws_verbs.commit(self._client, self.id, message))["commit"])

    async def delete(self) -> None:
        await ws_verbs.delete(self._client, self.id)
