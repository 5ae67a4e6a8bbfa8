"""fetch-data and drop-data: widen or narrow what a partial clone holds.

``fetch-data PATH`` brings the data (and, in a subtree clone, the trees) of those paths
at HEAD, writes their files and holds them from then on; ``--rev`` brings another
revision's data into the store only, ``--all-history`` every revision's.  ``drop-data
PATH`` removes files whose data the remote holds from the working tree and from the
local store, and holds those paths no longer.
"""

from __future__ import annotations

from dataclasses import dataclass

from oxen.core.repository import Repository
from oxen.errors import DirtyWorkingTree, OxenError, PathError
from oxen.progress import ProgressFactory, null_progress
from oxen.sync.metadata import Fetched, fetch_trees
from oxen.sync.protocol import Remote
from oxen.sync.transfer import commit_rows, fetch_chunks, plan_data
from oxen.trees import history
from oxen.trees.tree import Change
from oxen.verbs.checkout import apply_tree_change, chunks_held
from oxen.verbs.status import status as working_status
from oxen.worktree.paths import is_under
from oxen.worktree.scope import Partial


@dataclass
class DataResult:
    files: int = 0  # files written into (or removed from) the working tree
    chunks: int = 0  # chunks fetched (or freed)
    bytes: int = 0  # bytes received (or freed)


async def fetch_data(
    repo: Repository,
    remote: Remote,
    paths: list[str],
    rev: str | None = None,
    all_history: bool = False,
    jobs: int = 4,
    progress: ProgressFactory = null_progress,
) -> DataResult:
    """Fetch the data of ``paths`` ('' or none: every path) at HEAD (and write those
    files), at ``rev`` (store only), or in every commit this clone holds."""
    if rev is not None and all_history:
        raise OxenError("--rev and --all-history: one or the other")
    targets = [p.strip("/") for p in paths] or [""]
    head = (await repo.head()).commit
    if head is None and rev is None:
        raise OxenError("this repository has no commits yet")
    commits = [await repo.resolve(rev)] if rev is not None else [head]  # type: ignore[list-item]
    if all_history:
        commits = await history.ancestors(repo.objects, await repo.refs.tips(), stop=())
    wanted = Partial(()).widened(targets)
    before = remote.bytes_received
    result = DataResult()
    bar = progress("fetching", None, "B")
    try:
        await fetch_trees(repo, remote, commits, jobs, bar, Fetched(), wanted.reaches)
        rows = [r for r in await commit_rows(repo, commits, wanted.reaches) if wanted.holds(r.path)]
        if not rows and not [c for c in commits if await _exists(repo, c, targets)]:
            raise PathError(f"no file at or below {', '.join(paths)} in {rev or 'HEAD'}")
        plan = await plan_data(repo, remote, rows, jobs, bar)
        await fetch_chunks(repo, remote, plan, jobs, bar)
        result.chunks = len(plan.wanted)
    finally:
        bar.close()
    result.bytes = remote.bytes_received - before
    if rev is None and head is not None:
        result.files = await _hold(repo, head, targets)
    return result


async def _exists(repo: Repository, commit: bytes, targets: list[str]) -> bool:
    tree = (await repo.read_commit(commit)).tree
    for t in targets:
        if not t or await repo.trees.lookup(tree, t) is not None:
            return True
    return False


async def _hold(repo: Repository, head: bytes, targets: list[str]) -> int:
    """Write HEAD's files below ``targets`` that the working tree lacks, and hold them."""
    partial = await repo.partial()
    wider = partial.widened(targets)
    if wider == partial:
        return 0
    tree = (await repo.read_commit(head)).tree
    if wider.all_trees and all(wider.holds(name) for name in await repo.trees.entries(tree)):
        wider = wider.but(paths=None)  # everything again: a whole clone
    new = [
        row
        for row in (await repo.trees.flatten(tree, within=wider.reaches)).values()
        if wider.holds(row.path) and not partial.holds(row.path)
    ]
    changes = {row.path: Change(None, row) for row in new}

    async def widen() -> None:
        await repo.set_partial(wider)

    await apply_tree_change(repo, changes, then=widen, scope=wider)
    return len(new)


async def drop_data(repo: Repository, remote: Remote, paths: list[str]) -> DataResult:
    """Remove the files below ``paths`` from the working tree and their data from the
    local store, once the remote is known to hold it; hold those paths no longer."""
    targets = [repo.repo_path(p) for p in paths]
    head = (await repo.head()).commit
    if head is None:
        raise OxenError("this repository has no commits yet")
    held = await repo.db.head_files()
    dropped = {p: r for p, r in held.items() if any(is_under(p, t) for t in targets)}
    if not dropped:
        raise PathError(f"this clone holds no file at or below {', '.join(paths)}")
    st = await working_status(repo)
    dirty = [
        p
        for p in (*st.modified, *st.staged_added, *st.staged_modified, *st.staged_removed)
        if any(is_under(p, t) for t in targets)
    ]
    if dirty:
        raise DirtyWorkingTree(
            f"uncommitted changes below {', '.join(paths)} (e.g. {sorted(dirty)[0]}): "
            "commit and push, or restore them, first"
        )
    kept = [r for p, r in held.items() if p not in dropped]
    lists = await chunks_held(repo, list(dropped.values()))
    kept_lists = await chunks_held(repo, kept) if kept else {}
    still_needed = {c for ids in kept_lists.values() for c in ids}
    freed = sorted({c for ids in lists.values() for c in ids} - still_needed)
    unheld = await remote.missing(freed)
    if unheld:
        raise OxenError(
            f"the remote lacks {len(unheld)} chunk(s) of these files: push first (nothing "
            "was changed)"
        )
    narrower = await _narrowed(repo, head, await repo.partial(), targets)
    changes = {p: Change(r, None) for p, r in dropped.items()}

    async def narrow() -> None:
        await repo.set_partial(narrower)

    await apply_tree_change(repo, changes, force=True, then=narrow, scope=Partial())
    freed_bytes = await repo.objects.drop(freed)
    return DataResult(files=len(dropped), chunks=len(freed), bytes=freed_bytes)


async def _narrowed(repo: Repository, head: bytes, partial: Partial, targets: list[str]) -> Partial:
    """``partial`` without ``targets``: a held folder above a target is replaced by its
    entries (read from HEAD's tree), level by level down to the target."""
    paths = list(partial.paths) if partial.paths is not None else [""]
    tree = (await repo.read_commit(head)).tree
    for target in targets:
        while True:
            above = next(
                (p for p in paths if p != target and (not p or target.startswith(p + "/"))),
                None,
            )
            if above is None:
                break
            paths.remove(above)
            entry_id = tree if not above else (await repo.trees.lookup(tree, above)).id  # type: ignore[union-attr]
            names = await repo.trees.entries(entry_id)
            paths.extend(f"{above}/{n}" if above else n for n in names)
    return partial.but(paths=tuple(sorted(paths))).narrowed(targets)
