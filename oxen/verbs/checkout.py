"""checkout, and the one step every change of the working tree between trees goes through.

:func:`apply_tree_change` is used by checkout, merge, the fast-forward pull and clone
alike: refuse (changing nothing) if a path it would touch holds uncommitted work, write
and delete the files, then record the result in one transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from enum import Enum

from oxen.core.refs import Head
from oxen.core.repository import Repository
from oxen.db.rows import FileRow
from oxen.errors import DirtyWorkingTree, MissingObject, OxenError, RefError
from oxen.progress import ProgressFactory, null_progress
from oxen.trees.tree import Change
from oxen.verbs.status import status as working_status
from oxen.worktree.materialize import Materializer, remove_files
from oxen.worktree.paths import Written
from oxen.worktree.scope import Partial

# Writes the given files into the working tree as their data arrives (clone, pull).
StreamWrite = Callable[[list[FileRow]], Awaitable[list[Written]]]


class Record(Enum):
    """Where a tree change is recorded."""

    HEAD = "head"  # HEAD's file table: the working tree now holds another commit
    STAGE = "stage"  # the staging area: the change is to be committed (a merge)


async def apply_tree_change(
    repo: Repository,
    changes: dict[str, Change],
    progress: ProgressFactory = null_progress,
    *,
    force: bool = False,
    record: Record = Record.HEAD,
    stream: StreamWrite | None = None,
    then: Callable[[], Awaitable[None]] | None = None,
    scope: Partial | None = None,
) -> list[Written]:
    """Make the working tree hold each change's new side, and record it.

    Unless ``force``, nothing changes if a touched path has uncommitted changes or an
    untracked file stands in the way.  Files come from the local store, or from
    ``stream`` (which fetches as it writes; removals then wait until it is done).
    ``then`` runs inside the recording transaction (moving refs, merge state).  Only
    the paths a partial clone holds are written (``scope``: that scope, when the caller
    is changing it; else the recorded one)."""
    staged_changes = changes
    partial = scope if scope is not None else await repo.partial()
    if partial.paths is not None:  # the working tree holds only the paths in scope
        changes = {p: c for p, c in changes.items() if partial.holds(p)}
    if not force:
        await refuse_overwrites(repo, changes)
    writes = [c.new for c in changes.values() if c.new is not None]
    deletes = [p for p, c in changes.items() if c.new is None]
    if stream is None:
        lists = await chunks_held(repo, writes)  # refuses before anything is deleted
        await asyncio.to_thread(remove_files, repo.root, deletes)
        written = await write_files(repo, writes, progress, lists)
    else:
        written = await stream(writes)
        await asyncio.to_thread(remove_files, repo.root, deletes)
    async with repo.db.transaction():
        if record is Record.HEAD:
            await repo.db.update_head_files(writes, deletes)
            await repo.db.unstage(list(await repo.db.staged(list(changes))))
        else:
            # a merge commits every path, held here or not
            await repo.db.stage(
                [
                    c.new if c.new is not None else FileRow(p, None, 0, None, 0)
                    for p, c in staged_changes.items()
                ]
            )
        await repo.db.delete_stats(deletes)
        await repo.remember_stats(written)
        if then is not None:
            await then()
    return written


async def write_files(
    repo: Repository,
    rows: list[FileRow],
    progress: ProgressFactory = null_progress,
    lists: dict[bytes, list[bytes]] | None = None,
) -> list[Written]:
    """Write files from the local store (each through a temporary file and a rename);
    MissingObject, before anything is written, if the store lacks data of any of them
    (a clone holds the data of its branch tips, not of every version). ``lists``: what
    :func:`chunks_held` gave for these rows, if the caller asked already."""
    if lists is None:
        lists = await chunks_held(repo, rows)
    bar = progress("writing", sum(r.size for r in rows), "B")
    try:
        return await Materializer(repo.root, repo.objects, repo.db, bar).write(rows, lists)
    finally:
        bar.close()


async def chunks_held(repo: Repository, rows: list[FileRow]) -> dict[bytes, list[bytes]]:
    """Each row's chunk ids, once the local store holds every one of them: what it lacks
    is fetched from the remote (a partial clone), or refused before anything changes."""
    chunks, lacking = await _lacking(repo, rows)
    if lacking and repo.on_demand is not None:
        await repo.on_demand.files(lacking)
        chunks, lacking = await _lacking(repo, rows)
    if not lacking:
        return chunks
    first = sorted(r.path for r in lacking)[0]
    raise MissingObject(
        f"this clone does not hold the data of {len(lacking)} file(s) this needs "
        f"(e.g. {first}); nothing was changed: run it online (with a remote, without "
        "--offline), or `oxen fetch-data --all-history` first"
    )


async def _lacking(
    repo: Repository, rows: list[FileRow]
) -> tuple[dict[bytes, list[bytes]], list[FileRow]]:
    """(each row's chunk ids, the rows whose data the store lacks some of)."""
    quiet = null_progress("", None, "")
    try:
        chunks = await Materializer(repo.root, repo.objects, repo.db, quiet).chunk_ids(rows)
    except MissingObject:  # a chunk list absent: which rows it belongs to is not known
        return {}, list(rows)
    wanted = {c for ids in chunks.values() for c in ids}
    held = await repo.db.locate(wanted)
    if len(held) == len(wanted):
        return chunks, []
    return chunks, [r for r in rows if any(c not in held for c in chunks.get(r.id, ()))]  # type: ignore[arg-type]


async def refuse_overwrites(repo: Repository, changes: dict[str, Change]) -> None:
    """DirtyWorkingTree, naming the paths, if applying ``changes`` would lose work."""
    status = await working_status(repo)
    touched = set(changes)
    blocked = sorted(
        touched
        & (
            set(status.modified)
            | set(status.staged_added)
            | set(status.staged_modified)
            | set(status.staged_removed)
        )
    )
    # an untracked file where the target has a file is in the way unless it is that file
    in_the_way = sorted(set(status.untracked) & touched)
    if in_the_way:
        ids = await asyncio.to_thread(
            lambda: [repo.chunker().file_id_of(str(repo.root / p)) for p in in_the_way]
        )
        for p, oid in zip(in_the_way, ids, strict=True):
            new = changes[p].new
            if new is None or oid != new.id:
                blocked.append(p)
    if blocked:
        shown = ", ".join(blocked[:5]) + (
            f" and {len(blocked) - 5} more" if len(blocked) > 5 else ""
        )
        raise DirtyWorkingTree(
            f"uncommitted changes would be overwritten: {shown}; commit them or restore first"
        )


async def switch_to(
    repo: Repository,
    current: bytes | None,
    target: bytes,
    progress: ProgressFactory = null_progress,
    *,
    then: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Change]:
    """Make the working tree and HEAD's file table hold ``target``'s tree."""
    old_tree = (await repo.read_commit(current)).tree if current else None
    new_tree = (await repo.read_commit(target)).tree
    partial = await repo.partial()
    within = partial.reaches if partial.paths is not None else None
    changes = await repo.trees.diff(old_tree, new_tree, within=within)
    await apply_tree_change(repo, changes, progress, then=then)
    return changes


async def checkout(
    repo: Repository, target: str, create: bool = False, progress: ProgressFactory = null_progress
) -> Head:
    """Switch to a branch (or a detached commit); with ``create``, make a new branch here."""
    if await repo.db.get_state("MERGE_HEAD") is not None:
        raise OxenError("a merge is in progress: commit it or run oxen merge --abort first")
    current = (await repo.head()).commit
    if create:
        if current is None:
            if await repo.refs.get(target) is not None:
                raise RefError(f"a branch named {target!r} already exists")
        elif not await repo.refs.set_if_equals(target, None, current):
            raise RefError(f"a branch named {target!r} already exists")
        await repo.refs.set_head(target)
        return Head(target, current)
    new_branch: str | None = target
    new_commit = await repo.refs.get(target)
    from_remote = None
    if new_commit is None:
        # only a remote has it: a local branch of that name starts there (git's DWIM)
        held = {
            r: c for r in sorted(repo.config.remotes) if (c := await repo.refs.remote(r, target))
        }
        if len(held) == 1:
            from_remote, new_commit = next(iter(held.items()))
        elif len(held) > 1:
            raise RefError(
                f"{target!r} is a branch of several remotes ({', '.join(held)}): "
                f"oxen checkout -b {target} REMOTE/{target}"
            )
    if new_commit is None:
        try:
            new_commit = await repo.resolve(target)
        except RefError:
            raise RefError(f"no branch or commit named {target!r}") from None
        new_branch = None

    async def move_head() -> None:
        if from_remote is not None and not await repo.refs.set_if_equals(target, None, new_commit):
            raise RefError(f"a branch named {target!r} appeared meanwhile")
        await repo.refs.set_head(new_branch, new_commit)

    if new_commit != current:
        await switch_to(repo, current, new_commit, progress, then=move_head)
    else:
        await move_head()
    return Head(new_branch, new_commit)
