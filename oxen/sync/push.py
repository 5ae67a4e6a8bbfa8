"""push: send the remote what it lacks, then move its branch by compare-and-swap.

Negotiation walks from the commit down, asking the remote in batches which ids it lacks
and descending only into those.  All chunks go first (several packs in flight), then the
nodes, deepest level first and commits last, one pack at a time, so a node the remote has
always has its whole subtree there too: an interrupted push, re-run, sends only the rest.
Every object sent is looked up in the local index once.

A branch that moved on the remote is merged into, from trees alone, when the two sides
changed different paths (see :func:`merge_onto_remote`); a branch that moves again while
that push runs is merged onto again, up to ``MERGE_ATTEMPTS`` times, after a random wait
that grows with each try (two clients pushing in a loop would otherwise keep landing in
each other's window).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import NamedTuple

from oxen.core.repository import Repository
from oxen.db.rows import Location
from oxen.errors import IncompletePush, NonFastForward, NotFound, PathError, RefError
from oxen.faults import crash_point
from oxen.formats.nodes import encode_with_id
from oxen.objects.temp_files import temp_path
from oxen.progress import Progress, ProgressFactory, null_progress
from oxen.sync.metadata import Fetched, fetch_commits, fetch_trees
from oxen.sync.protocol import Remote, pack_groups
from oxen.trees import history
from oxen.trees.history import is_ancestor
from oxen.trees.merge import merged_tree, three_way
from oxen.trees.walk import Follow, walk_levels
from oxen.verbs.commit import new_commit

MERGE_ATTEMPTS = 12
RETRY_WAIT = 0.05  # seconds; the n-th retry waits up to RETRY_WAIT * 2**n, at most RETRY_MAX
RETRY_MAX = 3.0


@dataclass(frozen=True)
class PushResult:
    branch: str
    old: bytes | None
    new: bytes
    commits: int
    nodes: int
    chunks: int
    packs: int
    bytes_sent: int
    merged: RemoteMerge | None = None  # the branch had moved: pushed as this merge

    @property
    def up_to_date(self) -> bool:
        return self.old == self.new


async def branch_to_push(repo: Repository, branch: str | None) -> str:
    """``branch``, or the current one; a detached HEAD must say which."""
    branch = branch or (await repo.head()).branch
    if branch is None:
        raise RefError("HEAD is detached: say which branch to push")
    return branch


async def push(
    repo: Repository,
    remote: Remote,
    remote_name: str,
    branch: str,
    jobs: int = 4,
    progress: ProgressFactory = null_progress,
    merge: bool = True,
) -> PushResult:
    """Send ``branch`` and move the remote's to it.  If the remote's moved on and the two
    sides changed different paths, the push is of a merge made without their file data
    (``merge=False`` refuses instead); the local branch stays where it is (a pull brings
    the merge and their files)."""
    tip = await repo.refs.get(branch)
    if tip is None:
        raise RefError(f"no local branch {branch} (commit something first)")
    sent_before = remote.bytes_sent
    totals = Sent(0, 0, 0, 0)
    resent = False
    for attempt in range(MERGE_ATTEMPTS):
        remote_tip = (await remote.refs()).get(branch)
        if remote_tip == tip:
            await repo.refs.set_remote(remote_name, branch, tip)
            return PushResult(branch, tip, tip, 0, 0, 0, 0, 0)
        new, merged = tip, None
        if remote_tip is not None and not await _descends(repo, remote_tip, tip):
            if not merge:
                raise NonFastForward(
                    f"the remote's {branch} has commits you do not have: "
                    f"oxen pull {remote_name} {branch}, then push again"
                )
            merged = await merge_onto_remote(
                repo, remote, remote_name, branch, tip, remote_tip, jobs, progress
            )
            new = merged.commit
        sent = await send_objects(repo, remote, new, jobs, progress)
        totals = Sent(*(a + b for a, b in zip(totals, sent, strict=True)))
        try:
            await remote.update_ref(branch, remote_tip, new)
        except IncompletePush:
            # objects the server said it had were collected meanwhile (its gc): ask
            # again, send them, once
            if resent or attempt == MERGE_ATTEMPTS - 1:
                raise
            resent = True
            continue
        except NonFastForward:
            if not merge or attempt == MERGE_ATTEMPTS - 1:
                raise
            # the branch moved while we sent: merge onto its new tip, after a while
            await asyncio.sleep(random.uniform(0, min(RETRY_MAX, RETRY_WAIT * 2**attempt)))
            continue
        await repo.refs.set_remote(remote_name, branch, new)
        return PushResult(
            branch,
            remote_tip,
            new,
            totals.commits,
            totals.nodes,
            totals.chunks,
            totals.packs,
            remote.bytes_sent - sent_before,
            merged,
        )
    raise AssertionError("unreachable")


async def _descends(repo: Repository, ancestor: bytes, tip: bytes) -> bool:
    return bool(await repo.db.locate([ancestor])) and await is_ancestor(repo.objects, ancestor, tip)


@dataclass(frozen=True)
class RemoteMerge:
    """A push onto a branch that moved: the merge commit made of trees alone."""

    commit: bytes
    theirs: bytes  # the remote's tip it was made on
    taken: list[str]  # paths their side changed, now in the merge


async def merge_onto_remote(
    repo: Repository,
    remote: Remote,
    remote_name: str,
    branch: str,
    tip: bytes,
    remote_tip: bytes,
    jobs: int,
    progress: ProgressFactory,
) -> RemoteMerge:
    """Merge the remote's ``branch`` (at ``remote_tip``) into ``tip`` without its file
    data: its commits and the tree of its tip are fetched (only nodes this clone lacks),
    the trees merged, and the merge commit written here.  Paths both sides changed are
    refused, as a pull would stop on them."""
    bar = progress("fetching trees", None, "nodes")
    try:
        got = Fetched()
        partial = await repo.partial()
        await fetch_commits(repo, remote, [remote_tip], jobs, bar, got, None, partial.shallow)
        await fetch_trees(repo, remote, [remote_tip], jobs, bar, got)
    finally:
        bar.close()
    base = await history.merge_base(repo.objects, tip, remote_tip)
    if base is None:
        raise NonFastForward(
            f"the remote's {branch} shares no history with yours: nothing to merge onto"
        )
    trees = [(await repo.read_commit(c)).tree for c in (base, tip, remote_tip)]
    merged = await three_way(repo.trees, *trees)
    if merged.conflicts:
        shown = ", ".join(merged.conflicts[:5])
        more = f" and {len(merged.conflicts) - 5} more" if len(merged.conflicts) > 5 else ""
        raise NonFastForward(
            f"the remote's {branch} changed paths you changed too ({shown}{more}): "
            f"oxen pull {remote_name} {branch}, resolve, then push again"
        )
    try:
        tree, nodes = await merged_tree(repo.trees, trees[1], merged)
    except PathError as e:
        raise NonFastForward(
            f"the remote's {branch} cannot be merged without a pull: {e}"
        ) from None
    message = f"Merge {remote_name}/{branch} into {branch} (pushed without a pull)"
    commit_id, data = encode_with_id(new_commit(tree, (tip, remote_tip), message))
    await repo.objects.write_nodes([*nodes, (commit_id, data)])
    return RemoteMerge(commit_id, remote_tip, sorted(merged.take))


async def delete_remote_branch(
    repo: Repository, remote: Remote, branch: str, remote_name: str | None = None
) -> bytes:
    """Delete ``branch`` on the remote (compare-and-swap on what it holds now), and the
    remote-tracking branch that mirrored it."""
    old = (await remote.refs()).get(branch)
    if old is None:
        raise NotFound(f"the remote has no branch {branch}")
    await remote.delete_ref(branch, old)
    if remote_name is not None:
        await repo.refs.forget_remote(remote_name, branch)
    return old


class Sent(NamedTuple):
    commits: int
    nodes: int
    chunks: int
    packs: int


async def send_objects(
    repo: Repository,
    remote: Remote,
    tip: bytes,
    jobs: int = 4,
    progress: ProgressFactory = null_progress,
) -> Sent:
    """Negotiate and upload everything ``tip`` reaches that the remote lacks (no ref moves)."""
    commits = await _missing_commits(repo, remote, tip)
    levels, chunks = await _missing_objects(repo, remote, commits)
    # Chunks go in parallel; nodes (a small share of the bytes) one pack at a time, deepest
    # level first and commits last, so the remote never holds a node without its subtree.
    nodes_in_order = [oid for level in reversed(levels) for oid in level] + commits
    locations = await repo.db.locate([*chunks, *nodes_in_order])
    bar = progress("pushing", sum(loc.length for loc in locations.values()), "B")
    try:
        packs = await _send(repo, remote, chunks, locations, jobs, bar)
        packs += await _send(repo, remote, nodes_in_order, locations, 1, bar)
    finally:
        bar.close()
    return Sent(len(commits), sum(len(level) for level in levels), len(chunks), packs)


async def _lacking(remote: Remote, level: list[bytes]) -> list[bytes]:
    absent = await remote.missing(level)
    return [oid for oid in level if oid in absent]


async def _missing_commits(repo: Repository, remote: Remote, tip: bytes) -> list[bytes]:
    out: list[bytes] = []
    select = lambda level: _lacking(remote, level)  # noqa: E731
    async for level in walk_levels(repo.objects, [tip], Follow.PARENTS, select=select):
        out.extend(level.ids)
    return out


async def _missing_objects(
    repo: Repository, remote: Remote, commits: list[bytes]
) -> tuple[list[list[bytes]], list[bytes]]:
    """Node ids the remote lacks, by tree level, and the chunk ids it lacks."""
    levels: list[list[bytes]] = []
    chunk_candidates: set[bytes] = set()
    trees = [(await repo.read_commit(c)).tree for c in commits]
    select = lambda level: _lacking(remote, level)  # noqa: E731
    follow = Follow.TREES | Follow.CHUNK_LISTS
    async for level in walk_levels(repo.objects, trees, follow, select=select):
        levels.append(level.ids)
        chunk_candidates |= level.chunks
    chunks = sorted(await remote.missing(sorted(chunk_candidates))) if chunk_candidates else []
    return [lvl for lvl in levels if lvl], chunks


async def _send(
    repo: Repository,
    remote: Remote,
    ids: list[bytes],
    locations: dict[bytes, Location],
    jobs: int,
    bar: Progress,
) -> int:
    """Pack ``ids`` into ~16 MiB packs and upload them, ``jobs`` at a time."""
    if not ids:
        return 0
    groups = pack_groups(ids, lambda oid: locations[oid].length if oid in locations else 0)
    limit = asyncio.Semaphore(jobs)
    tmp = repo.objects.tmp_dir

    async def one(group: list[bytes]) -> None:
        async with limit:
            path = temp_path(tmp, "push", ".pack")
            try:
                await repo.objects.write_pack_of(group, path, locations)
                await remote.upload_pack(path)
                crash_point("push-pack-sent")
                bar.update(sum(locations[o].length for o in group if o in locations))
            finally:
                await asyncio.to_thread(path.unlink, missing_ok=True)

    await asyncio.gather(*(one(g) for g in groups))
    return len(groups)
