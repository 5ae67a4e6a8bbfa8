"""clone: a new repository holding a remote's history and its branch's latest data.

The branch's files are written as their chunks arrive (see ``stream_checkout``); a failed
or interrupted clone leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import TypeVar

from oxen.core.repository import Repository
from oxen.db.rows import FileRow
from oxen.errors import NotFound, OxenError, RefConflict
from oxen.progress import ProgressFactory, null_progress
from oxen.sync.protocol import Remote
from oxen.sync.transfer import FetchResult, commit_rows, fetch_and_write, fetch_history
from oxen.verbs.checkout import apply_tree_change
from oxen.worktree.paths import Written

ORIGIN = "origin"
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
        raise OxenError(f"destination exists and is not empty: {dest}")
    created = not await asyncio.to_thread(dest.exists)
    repo = await repo_class.init(dest)
    try:
        repo.config.remotes[ORIGIN] = url
        await repo.save_config()
        result = await _clone_into(repo, remote, branch, refs[branch], all_data, jobs, progress)
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


def _is_non_empty_dir(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))
