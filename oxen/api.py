"""``oxen.Repo``: the synchronous API, each verb of :class:`oxen.AsyncRepo` run in its own loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from oxen.config import load_repo_config
from oxen.remote import AsyncRemoteRepo, AsyncWorkspace
from oxen.repo import (
    AddResult,
    AsyncRepo,
    CommitInfo,
    DataResult,
    DiffEntry,
    DownloadResult,
    FetchResult,
    FileInfo,
    FileSchema,
    FsckReport,
    GcReport,
    MergeResult,
    NodeInfo,
    PushResult,
    TableDiff,
    TreeRow,
)
from oxen.repo import download as download_async
from oxen.sync.workspace import Staged
from oxen.worktree.paths import OXEN_DIR, find_root
from oxen.worktree.scope import Partial
from oxen.worktree.status import Status

if TYPE_CHECKING:
    import pyarrow as pa

T = TypeVar("T")


def download(
    url: str,
    path: str,
    rev: str | None = None,
    out: str | Path | None = None,
    force: bool = False,
) -> DownloadResult:
    """Write one file of a remote repository to ``out`` (see :func:`oxen.repo.download`)."""
    return asyncio.run(download_async(url, path, rev, out, force))


class Repo:
    """A repository for scripts and notebooks; every method blocks until done."""

    def __init__(self, path: str | Path = ".") -> None:
        self.root = find_root(path)

    @classmethod
    def init(cls, path: str | Path = ".", storage_url: str | None = None) -> Repo:
        async def go() -> None:
            repo = await AsyncRepo.init(path, storage_url)
            await repo.close()

        asyncio.run(go())
        return cls(path)

    @classmethod
    def clone(
        cls,
        url: str,
        dest: str | Path | None = None,
        branch: str | None = None,
        all_data: bool = False,
        jobs: int = 4,
        *,
        depth: int | None = None,
        subtrees: Sequence[str] = (),
        no_data: bool = False,
    ) -> Repo:
        """A clone (see :meth:`AsyncRepo.clone` for the partial ones)."""

        async def go() -> Path:
            repo, _ = await AsyncRepo.clone(
                url, dest, branch, all_data, jobs, depth=depth, subtrees=subtrees, no_data=no_data
            )
            await repo.close()
            return repo.root

        return cls(asyncio.run(go()))

    def fetch_data(
        self, *paths: str | Path, rev: str | None = None, all_history: bool = False
    ) -> DataResult:
        return self._run(lambda r: r.fetch_data([str(p) for p in paths], rev, all_history))

    def drop_data(self, *paths: str | Path) -> DataResult:
        return self._run(lambda r: r.drop_data([str(p) for p in paths]))

    def partial(self) -> Partial:
        """What this clone holds (``paths`` None: every path; ``shallow``: where its
        history stops)."""
        return self._run(lambda r: r.partial())

    def _run(self, verb: Callable[[AsyncRepo], Awaitable[T]]) -> T:
        async def go() -> T:
            async with await AsyncRepo.open(self.root) as repo:
                return await verb(repo)

        return asyncio.run(go())

    def add(self, *paths: str | Path, force: bool = False) -> AddResult:
        return self._run(lambda r: r.add([str(p) for p in paths], force=force))

    def rm(self, *paths: str | Path, recursive: bool = False, staged: bool = False) -> list[str]:
        return self._run(lambda r: r.rm([str(p) for p in paths], recursive, staged))

    def restore(
        self, *paths: str | Path, staged: bool = False, source: str | None = None
    ) -> list[str]:
        return self._run(lambda r: r.restore([str(p) for p in paths], staged, source))

    def status(self, path: str = "") -> Status:
        return self._run(lambda r: r.status(path))

    def commit(self, message: str) -> str:
        return self._run(lambda r: r.commit(message)).hex()

    def log(self, rev: str | None = None, limit: int | None = None) -> list[CommitInfo]:
        return self._run(lambda r: r.log(rev, limit))

    def branches(self) -> dict[str, str]:
        return {k: v.hex() for k, v in self._run(lambda r: r.branches()).items()}

    def create_branch(self, name: str, start: str | None = None) -> str:
        return self._run(lambda r: r.create_branch(name, start)).hex()

    def delete_branch(self, name: str, force: bool = False) -> None:
        self._run(lambda r: r.delete_branch(name, force))

    def checkout(self, target: str, create: bool = False) -> None:
        self._run(lambda r: r.checkout(target, create))

    def merge(self, branch: str) -> MergeResult:
        return self._run(lambda r: r.merge(branch))

    def merge_abort(self) -> None:
        self._run(lambda r: r.merge_abort())

    def diff(
        self,
        a: str | None = None,
        b: str | None = None,
        *,
        path: str | Path | None = None,
        keys: list[str] | None = None,
        compare: list[str] | None = None,
    ) -> list[DiffEntry] | TableDiff:
        """The paths changed from ``a`` to ``b``; with ``path``, that tabular file's row
        diff by ``keys`` (a :class:`TableDiff`)."""
        if path is not None:
            return self.diff_table(path, a, b, keys=keys, compare=compare)
        return self._run(lambda r: r.diff(a, b))

    def info(self, path: str, rev: str = "HEAD") -> FileInfo:
        return self._run(lambda r: r.info(path, rev))

    def schemas(self, path: str | Path = "", rev: str = "HEAD") -> list[FileSchema]:
        """Columns and row counts of the tabular files at or below ``path`` in ``rev``."""
        return self._run(lambda r: r.schemas(str(path), rev))

    def df(self, path: str | Path, rev: str | None = None, **options: Any) -> pa.Table:
        """Rows of a tabular file as a pyarrow Table (see :meth:`AsyncRepo.df`)."""
        return self._run(lambda r: r.df(str(path), rev, **options))

    def diff_table(
        self, path: str | Path, a: str | None = None, b: str | None = None, **options: Any
    ) -> TableDiff:
        """Rows added, removed and modified (see :meth:`AsyncRepo.diff_table`)."""
        return self._run(lambda r: r.diff_table(str(path), a, b, **options))

    def tree_rows(self, rev: str = "HEAD", files: bool = False) -> list[TreeRow]:
        return self._run(lambda r: r.tree_rows(rev, files))

    def node(self, id_hex: str) -> NodeInfo:
        return self._run(lambda r: r.node(id_hex))

    def fsck(self) -> FsckReport:
        return self._run(lambda r: r.fsck())

    def gc(self, dry_run: bool = False) -> GcReport:
        return self._run(lambda r: r.gc(dry_run))

    def remotes(self) -> dict[str, str]:
        return dict(load_repo_config(self.root / OXEN_DIR).remotes)

    def set_remote(self, name: str, url: str) -> None:
        self._run(lambda r: r.set_remote(name, url))

    def add_remote(self, name: str, url: str) -> None:
        self._run(lambda r: r.add_remote(name, url))

    def remove_remote(self, name: str) -> int:
        return self._run(lambda r: r.remove_remote(name))

    def rename_remote(self, old: str, new: str) -> int:
        return self._run(lambda r: r.rename_remote(old, new))

    def push(self, remote: str = "origin", branch: str | None = None, jobs: int = 4) -> PushResult:
        return self._run(lambda r: r.push(remote, branch, jobs))

    def fetch(
        self, remote: str = "origin", branch: str | None = None, all_data: bool = False
    ) -> FetchResult:
        return self._run(lambda r: r.fetch(remote, branch, all_data))

    def pull(self, remote: str = "origin", branch: str | None = None) -> MergeResult:
        return self._run(lambda r: r.pull(remote, branch))[1]


class RemoteRepo:
    """A repository on a server, used without a clone; every method blocks until done
    (each opens its own connection: see :class:`oxen.remote.AsyncRemoteRepo`)."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.token = token

    def _run(self, verb: Callable[[AsyncRemoteRepo], Awaitable[T]]) -> T:
        async def go() -> T:
            async with AsyncRemoteRepo(self.url, self.token) as repo:
                return await verb(repo)

        return asyncio.run(go())

    def create(self) -> None:
        self._run(lambda r: r.create())

    def branches(self) -> dict[str, str]:
        return self._run(lambda r: r.branches())

    def download(
        self, path: str, out: str | Path | None = None, rev: str | None = None, force: bool = False
    ) -> DownloadResult:
        return self._run(lambda r: r.download(path, out, rev, force))

    def upload(
        self, paths: Sequence[str | Path], message: str, branch: str = "main", dst: str = ""
    ) -> str:
        return self._run(lambda r: r.upload(list(paths), message, branch, dst))

    def delete_file(self, path: str, message: str, branch: str = "main") -> str:
        return self._run(lambda r: r.delete_file(path, message, branch))

    def create_workspace(self, branch: str = "main", name: str | None = None) -> Workspace:
        found = self._run(lambda r: r.create_workspace(branch, name))
        return Workspace(self, found.id, found.branch, found.name)

    def workspace(self, id_or_name: str) -> Workspace:
        found = self._run(lambda r: r.workspace(id_or_name))
        return Workspace(self, found.id, found.branch, found.name)

    def workspaces(self) -> list[dict[str, Any]]:
        return self._run(lambda r: r.workspaces())


class Workspace:
    """Changes staged on the server for one branch (see :class:`oxen.remote.AsyncWorkspace`)."""

    def __init__(self, repo: RemoteRepo, id: str, branch: str, name: str | None) -> None:
        self.repo = repo
        self.id = id
        self.branch = branch
        self.name = name

    def _run(self, verb: Callable[[AsyncWorkspace], Awaitable[T]]) -> T:
        async def on(repo: AsyncRemoteRepo) -> T:
            return await verb(
                AsyncWorkspace(repo, self.id, {"branch": self.branch, "name": self.name})
            )

        return self.repo._run(on)

    def add(self, *paths: str | Path, dst: str = "") -> Staged:
        return self._run(lambda w: w.add(list(paths), dst))

    def add_bytes(self, path: str, data: bytes) -> Staged:
        return self._run(lambda w: w.add_bytes(path, data))

    def rm(self, *paths: str) -> dict[str, Any]:
        return self._run(lambda w: w.rm(list(paths)))

    def unstage(self, *paths: str) -> dict[str, Any]:
        return self._run(lambda w: w.unstage(list(paths)))

    def status(self) -> dict[str, Any]:
        return self._run(lambda w: w.status())

    def ls(self, path: str = "") -> list[dict[str, Any]]:
        return self._run(lambda w: w.ls(path))

    def df(self, path: str, offset: int = 0, limit: int = 100, **options: Any) -> dict[str, Any]:
        """A page of rows (``columns=``, ``where=``) of the workspace's version of a file."""
        return self._run(lambda w: w.df(path, offset, limit, **options))

    def append_rows(self, path: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return self._run(lambda w: w.append_rows(path, rows))

    def update_rows(self, path: str, keys: list[str], rows: list[dict[str, Any]]) -> dict[str, Any]:
        return self._run(lambda w: w.update_rows(path, keys, rows))

    def delete_rows(self, path: str, keys: list[str], rows: list[dict[str, Any]]) -> dict[str, Any]:
        return self._run(lambda w: w.delete_rows(path, keys, rows))

    def commit(self, message: str) -> str:
        return self._run(lambda w: w.commit(message))

    def delete(self) -> None:
        self._run(lambda w: w.delete())
