"""clone: a new repository holding a remote's history and its branch's latest data.

The branch's files are written as their chunks arrive (see ``stream_checkout``); a failed
or interrupted clone leaves nothing behind, and one killed where it could not clean up is
removed and started over by the next clone into the same place.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import TypeVar

from oxen.core.repository import Repository
from oxen.db.rows import FileRow
from oxen.errors import NotFound, OxenError, RefConflict
from oxen.faults import crash_point
from oxen.progress import ProgressFactory, null_progress
from oxen.sync.protocol import Remote
from oxen.sync.transfer import FetchResult, commit_rows, fetch_and_write, fetch_history
from oxen.verbs.checkout import apply_tree_change
from oxen.worktree.paths import OXEN_DIR, Written

ORIGIN = "origin"
# Inside the new repository's .oxen from the clone's first step to its last: a clone killed
# where it could not clean up (SIGKILL, power loss) is known by it, and a clone run again
# into the same place removes what it left and starts over.
INCOMPLETE = f"{OXEN_DIR}/clone-incomplete"
R = TypeVar("R", bound=Repository)


async def clone(
    url: str,
    dest: Path,
    remote: Remote,
    branch: str | None = None,
    all_data: bool = False,
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
        result = await _clone_into(repo, remote, branch, refs[branch], all_data, jobs, progress)
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
    all_data: bool,
    jobs: int,
    progress: ProgressFactory,
) -> FetchResult:
    received_before = remote.bytes_received
    result = FetchResult(branches={branch: tip})
    bar = progress("fetching", None, "B")
    try:
        commits, result.nodes = await fetch_history(repo, remote, [tip], jobs, bar)
        crash_point("clone-history")
        tree = (await repo.read_commit(tip)).tree
        changes = await repo.trees.diff(None, tree)
        others = await commit_rows(repo, sorted(commits)) if all_data else []

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
