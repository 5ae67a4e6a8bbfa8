"""fetch and pull: bring a remote's commits and trees, and the data of its branch tips.

By default only the tips' data is fetched (``all_data`` takes every commit's).  A pull
that is a fast-forward of a clean working tree writes the changed files as their chunks
arrive, as clone does; any other pull fetches, then merges.
"""

from __future__ import annotations

from oxen.core.refs import remote_ref
from oxen.core.repository import Repository
from oxen.db.rows import FileRow
from oxen.errors import NotFound, RefError
from oxen.progress import ProgressFactory, null_progress
from oxen.sync.metadata import fetch_history, parents_absent
from oxen.sync.protocol import Remote
from oxen.sync.transfer import (
    FetchResult,
    commit_rows,
    fetch_and_write,
    fetch_chunks,
    plan_data,
)
from oxen.verbs import merge_state
from oxen.verbs.checkout import apply_tree_change
from oxen.verbs.merge import MergeResult, merge, merge_base
from oxen.verbs.status import status as working_status
from oxen.worktree.paths import Written


async def fetch(
    repo: Repository,
    remote: Remote,
    remote_name: str,
    branch: str | None = None,
    all_data: bool = False,
    jobs: int = 4,
    progress: ProgressFactory = null_progress,
) -> FetchResult:
    received_before = remote.bytes_received
    refs = await remote.refs()
    if branch is not None:
        if branch not in refs:
            raise NotFound(f"the remote has no branch {branch}")
        refs = {branch: refs[branch]}
    result = FetchResult(branches=refs)
    bar = progress("fetching", None, "B")
    try:
        partial = await repo.partial()
        got = await fetch_history(repo, remote, list(refs.values()), jobs, bar, partial)
        result.nodes = got.nodes
        data_commits = sorted(got.commits) if all_data else list(dict.fromkeys(refs.values()))
        within = partial.reaches if partial.paths is not None else None
        rows = await commit_rows(repo, data_commits, within)
        rows = [r for r in rows if partial.holds(r.path)]
        plan = await plan_data(repo, remote, rows, jobs, bar)
        await fetch_chunks(repo, remote, plan, jobs, bar)
        result.nodes += plan.nodes_fetched
        result.chunks = len(plan.wanted)
    finally:
        bar.close()
    async with repo.db.transaction():
        await repo.refs.set_remotes(remote_name, refs)
        await note_shallow(repo, got.shallow)
    result.bytes_received = remote.bytes_received - received_before
    return result


async def pull(
    repo: Repository,
    remote: Remote,
    remote_name: str,
    branch: str | None = None,
    jobs: int = 4,
    progress: ProgressFactory = null_progress,
) -> tuple[FetchResult, MergeResult]:
    branch = branch or (await repo.head()).branch
    if branch is None:
        raise RefError("HEAD is detached: say which branch to pull")
    streamed = await _fast_forward_pull(repo, remote, remote_name, branch, jobs, progress)
    if streamed is not None:
        return streamed
    fetched = await fetch(repo, remote, remote_name, branch, jobs=jobs, progress=progress)
    tracking = remote_ref(remote_name, branch)
    merged = await merge(
        repo, tracking, progress, label=f"Merge branch '{branch}' of {remote_name}"
    )
    return fetched, merged


async def _fast_forward_pull(
    repo: Repository,
    remote: Remote,
    remote_name: str,
    branch: str,
    jobs: int,
    progress: ProgressFactory,
) -> tuple[FetchResult, MergeResult] | None:
    """A pull that is a fast-forward of a clean working tree writes the changed files as
    their chunks arrive, as clone does (to temporary names, renamed once complete).
    Returns None, having changed nothing but fetched history, when it is not that case:
    then the ordinary fetch + merge runs and says what is in the way."""
    refs = await remote.refs()
    if branch not in refs:
        raise NotFound(f"the remote has no branch {branch}")
    tip = refs[branch]
    received_before = remote.bytes_received
    head_branch, ours = await repo.head()
    if ours is None or ours == tip or await merge_state.merge_head(repo) is not None:
        return None
    bar = progress("fetching", None, "B")
    try:
        partial = await repo.partial()
        got = await fetch_history(repo, remote, [tip], jobs, bar, partial)
        await note_shallow(repo, got.shallow)
        if await merge_base(repo, ours, tip) != ours:
            return None  # diverged: a real merge
        if not (await working_status(repo)).clean:
            return None
        old_tree = (await repo.read_commit(ours)).tree
        new_tree = (await repo.read_commit(tip)).tree
        within = partial.reaches if partial.paths is not None else None
        changes = await repo.trees.diff(old_tree, new_tree, within=within)
        changes = {p: c for p, c in changes.items() if partial.holds(p)}
        writes = [c.new for c in changes.values() if c.new is not None]
        deletes = [p for p, c in changes.items() if c.new is None]
        if _file_becomes_dir(writes, deletes):
            return None
        rows = sorted(
            r
            for r in (await repo.trees.flatten(new_tree, within=within)).values()
            if partial.holds(r.path)
        )
        plans = []

        async def stream(files: list[FileRow]) -> list[Written]:
            plan, written = await fetch_and_write(
                repo, remote, rows, sorted(files), False, jobs, bar
            )
            plans.append(plan)
            return written

        async def advance() -> None:
            await repo.refs.set_remote(remote_name, branch, tip)
            await repo.move_head(head_branch, ours, tip)

        await apply_tree_change(repo, changes, stream=stream, then=advance)
    finally:
        bar.close()
    fetched = FetchResult(
        branches={branch: tip},
        nodes=got.nodes + plans[0].nodes_fetched,
        chunks=len(plans[0].wanted),
        bytes_received=remote.bytes_received - received_before,
    )
    return fetched, MergeResult("fast-forward", tip)


async def note_shallow(repo: Repository, reached: set[bytes]) -> None:
    """Add the commits a fetch stopped at to a shallow clone's boundary (a whole clone
    reaches every root and has none)."""
    partial = await repo.partial()
    if not reached and not partial.shallow:
        return
    boundary = await parents_absent(repo, partial.shallow | reached)
    await repo.set_partial(partial.but(shallow=boundary))


def _file_becomes_dir(writes: list[FileRow], deletes: list[str]) -> bool:
    """Whether a new file goes below a path that is a file now (it must be deleted first,
    which the streaming pull does last)."""
    gone = set(deletes)
    return any(
        "/".join(parts[:i]) in gone
        for parts in (row.path.split("/") for row in writes)
        for i in range(1, len(parts))
    )
