"""push: send the remote what it lacks, then move its branch by compare-and-swap.

Negotiation walks from the commit down, asking the remote in batches which ids it lacks
and descending only into those.  All chunks go first (several packs in flight), then the
nodes, deepest level first and commits last, one pack at a time, so a node the remote has
always has its whole subtree there too: an interrupted push, re-run, sends only the rest.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass

from oxen.errors import NonFastForward, RefError
from oxen.faults import crash_point
from oxen.nodes import ChunkIndex, ChunkList, CommitNode, DirEntry, DirNode, VNode
from oxen.progress import Progress, ProgressFactory, null_progress
from oxen.reachability import is_ancestor
from oxen.repo import AsyncRepo
from oxen.sync.protocol import PACK_TARGET, Remote

HEADS = "refs/heads/"


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

    @property
    def up_to_date(self) -> bool:
        return self.old == self.new


async def push(
    repo: AsyncRepo,
    remote: Remote,
    remote_name: str,
    branch: str,
    jobs: int = 4,
    progress: ProgressFactory = null_progress,
) -> PushResult:
    tip = await repo.db.get_ref(HEADS + branch)
    if tip is None:
        raise RefError(f"no local branch {branch} (commit something first)")
    remote_tip = (await remote.refs()).get(branch)
    sent_before = remote.bytes_sent
    if remote_tip == tip:
        await repo.db.force_ref(f"refs/remotes/{remote_name}/{branch}", tip)
        return PushResult(branch, tip, tip, 0, 0, 0, 0, 0)
    if remote_tip is not None and (
        not await repo.db.locate([remote_tip])
        or not await is_ancestor(repo.objects, remote_tip, tip)
    ):
        raise NonFastForward(
            f"the remote's {branch} has commits you do not have: "
            f"oxen pull {remote_name} {branch}, then push again"
        )
    sent = await send_objects(repo, remote, tip, jobs, progress)
    await remote.update_ref(branch, remote_tip, tip)
    await repo.db.force_ref(f"refs/remotes/{remote_name}/{branch}", tip)
    return PushResult(
        branch,
        remote_tip,
        tip,
        sent.commits,
        sent.nodes,
        sent.chunks,
        sent.packs,
        remote.bytes_sent - sent_before,
    )


@dataclass(frozen=True)
class Sent:
    commits: int
    nodes: int
    chunks: int
    packs: int


async def send_objects(
    repo: AsyncRepo,
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
    sizes = await repo.db.locate([*chunks, *nodes_in_order])
    bar = progress("pushing", sum(loc.length for loc in sizes.values()), "B")
    try:
        packs = await _send(repo, remote, chunks, jobs, bar)
        packs += await _send(repo, remote, nodes_in_order, 1, bar)
    finally:
        bar.close()
    return Sent(len(commits), sum(len(level) for level in levels), len(chunks), packs)


async def _missing_commits(repo: AsyncRepo, remote: Remote, tip: bytes) -> list[bytes]:
    out: list[bytes] = []
    seen: set[bytes] = set()
    level = [tip]
    while level:
        lacking = await remote.missing(level)
        nxt: list[bytes] = []
        for cid in level:
            if cid in lacking and cid not in seen:
                seen.add(cid)
                out.append(cid)
                nxt.extend((await repo.read_commit(cid)).parents)
        level = [c for c in dict.fromkeys(nxt) if c not in seen]
    return out


async def _missing_objects(
    repo: AsyncRepo, remote: Remote, commits: list[bytes]
) -> tuple[list[list[bytes]], list[bytes]]:
    """Node ids the remote lacks, by tree level, and the chunk ids it lacks."""
    levels: list[list[bytes]] = []
    chunk_candidates: set[bytes] = set()
    seen: set[bytes] = set()
    level = list(dict.fromkeys([(await repo.read_commit(c)).tree for c in commits]))
    while level:
        absent = await remote.missing(level)
        lacking = [oid for oid in level if oid in absent]
        seen.update(level)
        levels.append(lacking)
        nodes = await repo.objects.read_nodes(lacking)
        nxt: set[bytes] = set()
        for node in nodes.values():
            if isinstance(node, DirNode):
                nxt.update(node.vnodes)
            elif isinstance(node, VNode):
                for e in node.entries:
                    if isinstance(e, DirEntry):
                        nxt.add(e.id)
                    elif e.chunks is not None:
                        nxt.add(e.chunks)
                    else:
                        chunk_candidates.add(e.id)
            elif isinstance(node, ChunkList):
                chunk_candidates.update(node.ids)
            elif isinstance(node, ChunkIndex):
                nxt.update(node.lists)
            elif isinstance(node, CommitNode):  # pragma: no cover - trees hold no commits
                pass
        level = [oid for oid in nxt if oid not in seen]
    chunks = sorted(await remote.missing(sorted(chunk_candidates))) if chunk_candidates else []
    return [lvl for lvl in levels if lvl], chunks


async def _send(repo: AsyncRepo, remote: Remote, ids: list[bytes], jobs: int, bar: Progress) -> int:
    """Pack ``ids`` into ~16 MiB packs and upload them, ``jobs`` at a time."""
    if not ids:
        return 0
    locations = await repo.db.locate(ids)
    groups: list[list[bytes]] = [[]]
    size = 0
    for oid in ids:
        if size >= PACK_TARGET:
            groups.append([])
            size = 0
        groups[-1].append(oid)
        size += locations[oid].length if oid in locations else 0
    limit = asyncio.Semaphore(jobs)
    tmp = repo.oxen_dir / "tmp"

    async def one(group: list[bytes]) -> None:
        async with limit:
            path = tmp / f"push-{os.getpid()}-{uuid.uuid4().hex}.pack"
            try:
                await repo.objects.write_pack_of(group, path)
                await remote.upload_pack(path)
                crash_point("push-pack-sent")
                bar.update(sum(locations[o].length for o in group if o in locations))
            finally:
                await asyncio.to_thread(path.unlink, missing_ok=True)

    await asyncio.gather(*(one(g) for g in groups))
    return len(groups)
