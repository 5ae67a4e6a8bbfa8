"""The synchronous facade: ``oxen.Repo`` runs each verb of :class:`AsyncRepo` in its own loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from oxen.inspect import FsckReport
from oxen.merge import MergeResult
from oxen.repo import AddResult, AsyncRepo, CommitInfo, DiffEntry
from oxen.status import Status
from oxen.worktree import find_root

T = TypeVar("T")


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

    def status(self) -> Status:
        return self._run(lambda r: r.status())

    def commit(self, message: str) -> str:
        return self._run(lambda r: r.commit(message)).hex()

    def log(self, rev: str | None = None, limit: int | None = None) -> list[CommitInfo]:
        return self._run(lambda r: r.log(rev, limit))

    def branches(self) -> dict[str, str]:
        return {k: v.hex() for k, v in self._run(lambda r: r.branches()).items()}

    def create_branch(self, name: str, start: str | None = None) -> str:
        return self._run(lambda r: r.create_branch(name, start)).hex()

    def delete_branch(self, name: str) -> None:
        self._run(lambda r: r.delete_branch(name))

    def checkout(self, target: str, create: bool = False) -> None:
        self._run(lambda r: r.checkout(target, create))

    def merge(self, branch: str) -> MergeResult:
        return self._run(lambda r: r.merge(branch))

    def merge_abort(self) -> None:
        self._run(lambda r: r.merge_abort())

    def diff(self, a: str | None = None, b: str | None = None) -> list[DiffEntry]:
        return self._run(lambda r: r.diff(a, b))

    def info(self, path: str) -> dict[str, Any]:
        return self._run(lambda r: r.info(path))

    def fsck(self) -> FsckReport:
        return self._run(lambda r: r.fsck())
