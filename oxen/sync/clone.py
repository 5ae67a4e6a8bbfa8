"""clone: a new repository holding a remote's history and its branch's latest data.

Or less (:class:`CloneMode`): the last N commits (``depth``), only some folders' trees
and data (``subtrees``), every commit and tree but no file data (``no_data``); or more:
every version's data (``all_data``).  What a partial clone holds is recorded
(:class:`oxen.worktree.scope.Partial`); what it lacks is fetched when a command needs it.

The branch's files are written as their chunks arrive (see ``stream_checkout``); a failed
or interrupted clone leaves nothing behind, and one killed where it could not clean up is
removed and started over by the next clone into the same place.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from oxen.core.repository import Repository
from oxen.db.rows import FileRow
from oxen.errors import NotFound, OxenError, RefConflict
from oxen.faults import crash_point
from oxen.progress import ProgressFactory, null_progress
from oxen.sync.metadata import fetch_history
from oxen.sync.protocol import Remote
from oxen.sync.transfer import FetchResult, commit_rows, fetch_and_write
from oxen.verbs.checkout import apply_tree_change
from oxen.worktree.paths import OXEN_DIR, Written, check_repo_path
from oxen.worktree.scope import Partial

ORIGIN = "origin"
# Inside the new repository's .oxen from the clone's first step to its last: a clone killed
# where it could not clean up (SIGKILL, power loss) is known by it, and a clone run again
# into the same place removes what it left and starts over.
INCOMPLETE = f"{OXEN_DIR}/clone-incomplete"
R = TypeVar("R", bound=Repository)


@dataclass(frozen=True)
class CloneMode:
    """How much of the remote a clone holds (the default: history, and the tip's data)."""

    all_data: bool = False  # every version's data
    depth: int | None = None  # only the last N commits (and their trees)
    subtrees: tuple[str, ...] = ()  # only these folders' trees and data
    no_data: bool = False  # every commit and tree, no file data

    def __post_init__(self) -> None:
        if self.no_data and (self.all_data or self.subtrees):
            raise OxenError("--no-data holds no file data: not with --all or --subtree")
        if self.depth is not None and self.depth < 1:
            raise OxenError("--depth must be at least 1")
        for path in self.subtrees:
            check_repo_path(path.strip("/"))

    def partial(self) -> Partial:
        if self.no_data:
            return Partial(())
        if self.subtrees:
            return Partial((), all_trees=False).widened(self.subtrees)
        return Partial()


async def clone(
    url: str,
    dest: Path,
    remote: Remote,
    branch: str | None = None,
    mode: CloneMode = CloneMode(),
    jobs: int = 4,
    progress: ProgressFactory = null_progress,
    repo_class: type[R] = Repository,  # type: ignore[assignment]
) -> tuple[R, FetchResult]:
    """A new repository at ``dest`` with ``origin`` = ``url``, on ``branch`` (default: main).
    ``repo_class`` is what is opened there (the facades pass themselves)."""
    refs = await remote.refs()
    if not refs:
        raise NotFound(f"{url} has no branches yet (push to it first)")
    if branch is None:
        branch = "main" if "main" in refs else sorted(refs)[0]
    if branch not in refs:
        raise NotFound(f"{url} has no branch {branch}")
    if await asyncio.to_thread(_is_non_empty_dir, dest):
        if not await asyncio.to_thread(_interrupted_clone, dest):
            raise OxenError(f"destination exists and is not empty: {dest}")
        await asyncio.to_thread(_remove_clone, dest, False)  # what a killed clone left
    created = not await asyncio.to_thread(dest.exists)
    await asyncio.to_thread(_mark_incomplete, dest)
    repo = await repo_class.init(dest)
    try:
        repo.config.remotes[ORIGIN] = url
        await repo.save_config()
        repo.go_online()  # now that it has a remote
        result = await _clone_into(repo, remote, branch, refs[branch], mode, jobs, progress)
        await asyncio.to_thread((dest / INCOMPLETE).unlink)
    except BaseException:
        await repo.close()
        await asyncio.to_thread(_remove_clone, dest, created)
        raise
    return repo, result


async def _clone_into(
    repo: Repository,
    remote: Remote,
    branch: str,
    tip: bytes,
    mode: CloneMode,
    jobs: int,
    progress: ProgressFactory,
) -> FetchResult:
    received_before = remote.bytes_received
    result = FetchResult(branches={branch: tip})
    bar = progress("fetching", None, "B")
    partial = mode.partial()
    try:
        got = await fetch_history(repo, remote, [tip], jobs, bar, partial, mode.depth)
        result.nodes = got.nodes
        partial = partial.but(shallow=got.shallow)
        await repo.set_partial(partial)  # before any file: what is written follows it
        crash_point("clone-history")
        within = partial.reaches if partial.paths is not None else None
        tree = (await repo.read_commit(tip)).tree
        changes = await repo.trees.diff(None, tree, within=within)
        others = []
        if mode.all_data:
            others = [
                r
                for r in await commit_rows(repo, sorted(got.commits), within)
                if partial.holds(r.path)
            ]

        async def stream(files: list[FileRow]) -> list[Written]:
            rows = sorted(files)
            plan, written = await fetch_and_write(
                repo, remote, rows + others, rows, True, jobs, bar
            )
            result.nodes += plan.nodes_fetched
            result.chunks = len(plan.wanted)
            return written

        async def check_out_branch() -> None:
            await repo.refs.set_remote(ORIGIN, branch, tip)
            if not await repo.refs.set_if_equals(branch, None, tip):
                raise RefConflict(f"branch {branch} appeared while cloning")
            await repo.refs.set_head(branch)

        await apply_tree_change(repo, changes, force=True, stream=stream, then=check_out_branch)
    finally:
        bar.close()
    result.bytes_received = remote.bytes_received - received_before
    return result


def _remove_clone(dest: Path, created: bool) -> None:
    """A failed or interrupted clone leaves nothing behind (``dest`` was empty or absent)."""
    if created:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _mark_incomplete(dest: Path) -> None:
    marker = dest / INCOMPLETE
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def _interrupted_clone(dest: Path) -> bool:
    """Whether ``dest`` holds only what a killed clone left: its marker, or nothing but
    the empty .oxen folder it makes first."""
    if not dest.is_dir():
        return False
    if (dest / INCOMPLETE).is_file():
        return True
    oxen_dir = dest / OXEN_DIR
    only_it = [p.name for p in dest.iterdir()] == [OXEN_DIR] and oxen_dir.is_dir()
    return only_it and not any(oxen_dir.iterdir())


def _is_non_empty_dir(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))
