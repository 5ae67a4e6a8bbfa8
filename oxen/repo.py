"""``oxen.AsyncRepo``: the async Python API, a :class:`Repository` with one method per verb.

Each method hands over to the verb's module (:mod:`oxen.verbs`, :mod:`oxen.sync`), where
the work is done; :mod:`oxen.api` wraps this class for callers without an event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, overload

from oxen.core.refs import Head
from oxen.core.repository import CommitInfo, OnDemandFactory, Repository
from oxen.progress import ProgressFactory, null_progress
from oxen.sync import clone as clone_mod
from oxen.sync import data, on_demand, remotes
from oxen.sync import download as download_mod
from oxen.sync import fetch as fetch_mod
from oxen.sync import push as push_mod
from oxen.sync.data import DataResult
from oxen.sync.download import DownloadResult
from oxen.sync.push import PushResult
from oxen.sync.transfer import FetchResult
from oxen.verbs import branches, checkout, dataframe, diff, inspection, merge, staging, table_diff
from oxen.verbs import commit as commit_mod
from oxen.verbs import gc as gc_verb
from oxen.verbs import schemas as schemas_verb
from oxen.verbs import status as status_verb
from oxen.verbs.diff import DiffEntry
from oxen.verbs.gc import GcReport
from oxen.verbs.inspection import FileInfo, FsckReport, NodeInfo, TreeRow
from oxen.verbs.merge import MergeResult
from oxen.verbs.schemas import FileSchema, SchemaChange
from oxen.verbs.table_diff import TableDiff

if TYPE_CHECKING:
    import pyarrow as pa
from oxen.verbs.staging import AddResult
from oxen.worktree.status import Status

__all__ = [
    "AddResult",
    "AsyncRepo",
    "CommitInfo",
    "DataResult",
    "DiffEntry",
    "DownloadResult",
    "FetchResult",
    "FileInfo",
    "FileSchema",
    "FsckReport",
    "GcReport",
    "Head",
    "MergeResult",
    "NodeInfo",
    "PushResult",
    "SchemaChange",
    "TableDiff",
    "TreeRow",
    "download",
]


async def download(
    url: str,
    path: str,
    rev: str | None = None,
    out: str | Path | None = None,
    force: bool = False,
    progress: ProgressFactory = null_progress,
) -> DownloadResult:
    """Write the file at ``path`` of the remote repository ``url``, at ``rev`` (a branch
    or a full commit id; default main), to ``out`` (default: its name, here), checked
    against its id. Needs no repository; refuses to overwrite a file unless ``force``."""
    async with remotes.connect(remotes.RemoteURL.parse(url), jobs=1) as client:
        return await download_mod.download(client, path, rev, out, force, progress)


class AsyncRepo(Repository):
    # a partial clone fetches what a verb needs from its remote (None: refuse instead)
    on_demand_factory: ClassVar[OnDemandFactory | None] = on_demand.factory()

    async def status(self, path: str = "") -> Status:
        return await status_verb.status(self, path)

    # -- staging and committing ----------------------------------------------------------
    async def add(
        self, paths: list[str], progress: ProgressFactory = null_progress, force: bool = False
    ) -> AddResult:
        return await staging.add(self, paths, progress, force)

    async def rm(
        self, paths: list[str], recursive: bool = False, staged_only: bool = False
    ) -> list[str]:
        return await staging.rm(self, paths, recursive, staged_only)

    async def restore(
        self,
        paths: list[str],
        staged: bool = False,
        source: str | None = None,
        progress: ProgressFactory = null_progress,
    ) -> list[str]:
        return await staging.restore(self, paths, staged, source, progress)

    async def commit(self, message: str, allow_empty: bool = False) -> bytes:
        return await commit_mod.commit(self, message, allow_empty)

    # -- history and branches ------------------------------------------------------------
    async def log(self, rev: str | None = None, limit: int | None = None) -> list[CommitInfo]:
        return await branches.log(self, rev, limit)

    async def branches(self) -> dict[str, bytes]:
        return await branches.branches(self)

    async def create_branch(self, name: str, start: str | None = None) -> bytes:
        return await branches.create_branch(self, name, start)

    async def delete_branch(self, name: str, force: bool = False) -> None:
        await branches.delete_branch(self, name, force)

    async def checkout(
        self, target: str, create: bool = False, progress: ProgressFactory = null_progress
    ) -> Head:
        return await checkout.checkout(self, target, create, progress)

    async def merge(self, name: str, progress: ProgressFactory = null_progress) -> MergeResult:
        return await merge.merge(self, name, progress)

    async def merge_abort(self) -> None:
        await merge.merge_abort(self)

    async def merge_base(self, a: bytes, b: bytes) -> bytes | None:
        return await merge.merge_base(self, a, b)

    @overload
    async def diff(self, a: str | None = None, b: str | None = None) -> list[DiffEntry]: ...

    @overload
    async def diff(
        self,
        a: str | None = None,
        b: str | None = None,
        *,
        path: str,
        keys: list[str] | None = None,
        compare: list[str] | None = None,
    ) -> TableDiff: ...

    async def diff(
        self,
        a: str | None = None,
        b: str | None = None,
        *,
        path: str | None = None,
        keys: list[str] | None = None,
        compare: list[str] | None = None,
    ) -> list[DiffEntry] | TableDiff:
        """The paths changed from ``a`` to ``b``; with ``path``, that tabular file's row
        diff (as :meth:`diff_table`)."""
        if path is not None:
            return await self.diff_table(path, a, b, keys, compare)
        return await diff.diff(self, a, b)

    # -- looking inside ------------------------------------------------------------------
    async def info(self, path: str, rev: str = "HEAD") -> FileInfo:
        return await inspection.info(self, path, rev)

    async def schemas(self, path: str = "", rev: str = "HEAD") -> list[FileSchema]:
        """Columns and row counts of the tabular files at or below ``path`` in ``rev``."""
        return await schemas_verb.schemas(self, self.repo_path(path) if path else "", rev)

    async def df(
        self,
        path: str,
        rev: str | None = None,
        *,
        head: int | None = None,
        tail: int | None = None,
        rows: tuple[int, int] | None = None,
        columns: list[str] | None = None,
        where: str | None = None,
        sql: str | None = None,
    ) -> pa.Table:
        """Rows of a tabular file as a pyarrow Table: the working tree's (``rev`` None) or
        that revision's; ``head``/``tail`` N rows, ``rows=(A, B)``, else all of them.
        ``where``: a SQL condition; ``sql``: a query over the table ``df``.
        (``.to_pandas()``, ``polars.from_arrow(...)`` where installed.)"""
        which = dataframe.Rows(
            head=head, tail=tail, start=rows[0] if rows else None, stop=rows[1] if rows else None
        )
        frame = await dataframe.df(self, self.repo_path(path), rev, which, columns, where, sql)
        return frame.table

    async def diff_table(
        self,
        path: str,
        a: str | None = None,
        b: str | None = None,
        keys: list[str] | None = None,
        compare: list[str] | None = None,
        output: str | Path | None = None,
    ) -> TableDiff:
        """Rows of a tabular file added, removed and modified from ``a`` (default HEAD) to
        ``b`` (default: the working tree), matched by ``keys`` (none: whole rows)."""
        return await table_diff.diff_table(
            self, self.repo_path(path), a, b, keys or [], compare, Path(output) if output else None
        )

    async def tree_rows(
        self, rev: str = "HEAD", files: bool = False, max_depth: int | None = None
    ) -> list[TreeRow]:
        return await inspection.tree_rows(self, rev, files, max_depth)

    async def node(self, id_hex: str) -> NodeInfo:
        return await inspection.node(self, id_hex)

    async def fsck(self) -> FsckReport:
        return await inspection.fsck(self)

    async def gc(self, dry_run: bool = False) -> GcReport:
        """Remove stored objects nothing here reaches (see :mod:`oxen.verbs.gc`)."""
        return await gc_verb.gc(self, dry_run)

    # -- remotes -------------------------------------------------------------------------
    def remotes(self) -> dict[str, str]:
        return dict(self.config.remotes)

    async def set_remote(self, name: str, url: str) -> None:
        await remotes.set_remote(self, name, url)

    async def add_remote(self, name: str, url: str) -> None:
        await remotes.add_remote(self, name, url)

    async def remove_remote(self, name: str) -> int:
        """Forget a remote and its remote-tracking branches (returns how many)."""
        return await remotes.remove_remote(self, name)

    async def rename_remote(self, old: str, new: str) -> int:
        """Rename a remote; its remote-tracking branches move along (returns how many)."""
        return await remotes.rename_remote(self, old, new)

    async def push(
        self,
        remote: str = "origin",
        branch: str | None = None,
        jobs: int = 4,
        progress: ProgressFactory = null_progress,
        merge: bool = True,
    ) -> PushResult:
        """Push ``branch``; onto a remote branch that moved, a merge made of trees alone
        when the sides changed different paths (``merge=False``: refuse instead)."""
        branch = await push_mod.branch_to_push(self, branch)
        async with remotes.connect(remotes.remote_url(self, remote), jobs) as client:
            return await push_mod.push(self, client, remote, branch, jobs, progress, merge)

    async def delete_remote_branch(self, remote: str, branch: str) -> None:
        async with remotes.connect(remotes.remote_url(self, remote)) as client:
            await push_mod.delete_remote_branch(self, client, branch, remote)

    async def fetch(
        self,
        remote: str = "origin",
        branch: str | None = None,
        all_data: bool = False,
        jobs: int = 4,
        progress: ProgressFactory = null_progress,
    ) -> FetchResult:
        url = remotes.remote_url(self, remote)
        async with remotes.connect(url, jobs, operation="fetch") as client:
            return await fetch_mod.fetch(self, client, remote, branch, all_data, jobs, progress)

    async def pull(
        self,
        remote: str = "origin",
        branch: str | None = None,
        jobs: int = 4,
        progress: ProgressFactory = null_progress,
    ) -> tuple[FetchResult, MergeResult]:
        url = remotes.remote_url(self, remote)
        async with remotes.connect(url, jobs, operation="pull") as client:
            return await fetch_mod.pull(self, client, remote, branch, jobs, progress)

    @classmethod
    async def clone(
        cls,
        url: str,
        dest: str | Path | None = None,
        branch: str | None = None,
        all_data: bool = False,
        jobs: int = 4,
        progress: ProgressFactory = null_progress,
        *,
        depth: int | None = None,
        subtrees: Sequence[str] = (),
        no_data: bool = False,
    ) -> tuple[AsyncRepo, FetchResult]:
        """Clone ``url`` into ``dest`` (default: the repository's name, here): the
        branch's latest data, or every version's (``all_data``), only some folders'
        (``subtrees``), none (``no_data``); all history or the last ``depth`` commits."""
        mode = clone_mod.CloneMode(all_data, depth, tuple(subtrees), no_data)
        parsed = remotes.RemoteURL.parse(url)
        target = Path(dest if dest is not None else parsed.name)
        async with remotes.connect(parsed, jobs, operation="clone") as client:
            repo, result = await clone_mod.clone(
                str(parsed), target, client, branch, mode, jobs, progress, cls
            )
        return repo, result

    async def fetch_data(
        self,
        paths: Sequence[str] = (),
        rev: str | None = None,
        all_history: bool = False,
        jobs: int = 4,
        progress: ProgressFactory = null_progress,
    ) -> DataResult:
        """Bring the data of ``paths`` (default: all) this partial clone lacks: at HEAD
        (writing the files, held from now on), at ``rev`` or in every commit."""
        name = on_demand.remote_name_of(self) or "origin"
        targets = [self.repo_path(p) for p in paths]
        async with remotes.connect(remotes.remote_url(self, name), jobs) as client:
            return await data.fetch_data(self, client, targets, rev, all_history, jobs, progress)

    async def drop_data(self, paths: Sequence[str]) -> DataResult:
        """Free the files below ``paths`` and their local data, which the remote holds."""
        name = on_demand.remote_name_of(self) or "origin"
        async with remotes.connect(remotes.remote_url(self, name)) as client:
            return await data.drop_data(self, client, list(paths))
