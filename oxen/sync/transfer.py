"""Moving objects from a remote into the local store: history first, then data.

Metadata first: commits and every node of their trees that we lack, fetched level by
level in batches.  Then data: the chunks of the files asked for, fetched as ~16 MiB packs
with several requests in flight; each pack is verified (every blob against its id, every
node decoded, so no path can escape) before it is kept.  Shared by fetch, pull and clone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from oxen.core.repository import Repository
from oxen.db.rows import FileRow
from oxen.errors import OxenError
from oxen.objects import chunklists
from oxen.objects.object_store import ObjectStore
from oxen.objects.pack_index import ChunksCallback
from oxen.objects.temp_files import temp_path
from oxen.progress import Progress
from oxen.sync.protocol import Remote, pack_groups
from oxen.trees.tree import Within
from oxen.worktree.paths import Written
from oxen.worktree.stream_checkout import StreamingCheckout

MAX_FETCH_PACK = 512 * 1024 * 1024


@dataclass
class FetchResult:
    branches: dict[str, bytes] = field(default_factory=dict)
    nodes: int = 0
    chunks: int = 0
    bytes_received: int = 0


async def fetch_ids(
    objects: ObjectStore,
    remote: Remote,
    ids: list[bytes],
    sizes: dict[bytes, int],
    jobs: int,
    bar: Progress,
    on_chunks: ChunksCallback | None = None,
) -> None:
    """Fetch objects as packs of ~PACK_TARGET bytes, ``jobs`` requests at a time, in the
    order given."""
    if not ids:
        return
    groups = pack_groups(ids, lambda oid: sizes.get(oid, 4096))
    limit = asyncio.Semaphore(jobs)
    tmp = objects.tmp_dir
    await asyncio.to_thread(tmp.mkdir, parents=True, exist_ok=True)

    async def one(group: list[bytes]) -> None:
        async with limit:
            path = temp_path(tmp, "fetch", ".pack")
            try:
                await remote.fetch_pack(group, path)
                pack = await objects.add_verified_pack(path, MAX_FETCH_PACK, on_chunks)
                got = {e.id for e in pack.entries}
                if not set(group) <= got:
                    raise OxenError("the remote sent a pack without some objects we asked for")
                bar.update(sum(e.length for e in pack.entries))
            finally:
                await asyncio.to_thread(path.unlink, missing_ok=True)

    await asyncio.gather(*(one(g) for g in groups))


@dataclass
class DataPlan:
    """The data some trees need: every file's chunks, and which of them we lack."""

    chunk_ids: dict[bytes, list[bytes]]  # file id -> its ordered chunk ids
    lengths: dict[bytes, int]  # chunk id -> bytes
    # chunks to fetch, sorted by id: the order pushes send them in, so the server's packs
    # hold them in that order too and each fetched pack reads few of them (file order
    # made the server read 13x the data from S3)
    wanted: list[bytes]
    lists: list[tuple[bytes, bytes, list[bytes]]]  # (file id, chunk list id, chunk ids)
    nodes_fetched: int


async def plan_data(
    repo: Repository, remote: Remote, rows: list[FileRow], jobs: int, bar: Progress
) -> DataPlan:
    """Fetch the chunk lists of ``rows``' large files, then work out the chunks we lack."""
    files: dict[bytes, tuple[bytes | None, int]] = {
        row.id: (row.chunks, row.size) for row in rows if row.id is not None
    }
    lists = sorted({c for c, _ in files.values() if c is not None})
    lacking_lists = sorted(await repo.db.missing(lists))
    await fetch_ids(repo.objects, remote, lacking_lists, {}, jobs, bar)
    groups = {
        g for n in (await repo.objects.read_nodes(lists)).values() for g in chunklists.children(n)
    }
    lacking_groups = sorted(await repo.db.missing(groups))
    await fetch_ids(repo.objects, remote, lacking_groups, {}, jobs, bar)
    expanded = await chunklists.expand(repo.objects, chunklists.declared_sizes(files.values()))
    chunk_ids: dict[bytes, list[bytes]] = {}
    lengths: dict[bytes, int] = {}
    maps: list[tuple[bytes, bytes, list[bytes]]] = []
    for fid, (list_id, size) in files.items():
        if list_id is None:
            chunk_ids[fid] = [fid]
            lengths[fid] = size
        else:
            ids, sizes = expanded[list_id]
            chunk_ids[fid] = ids
            lengths.update(zip(ids, sizes, strict=True))
            maps.append((fid, list_id, ids))
    return DataPlan(
        chunk_ids=chunk_ids,
        lengths=lengths,
        wanted=sorted(await repo.db.missing(lengths)),
        lists=maps,
        nodes_fetched=len(lacking_lists) + len(lacking_groups),
    )


async def fetch_chunks(
    repo: Repository,
    remote: Remote,
    plan: DataPlan,
    jobs: int,
    bar: Progress,
    on_chunks: ChunksCallback | None = None,
) -> None:
    bar.reset(total=sum(plan.lengths[c] for c in plan.wanted))  # now the size is known
    await fetch_ids(repo.objects, remote, plan.wanted, plan.lengths, jobs, bar, on_chunks)
    await repo.db.add_chunk_maps(plan.lists)


async def commit_rows(
    repo: Repository, commits: list[bytes], within: Within | None = None
) -> list[FileRow]:
    """Every file of the commits' trees (one row per distinct file id is enough), or
    those in the folders ``within`` enters."""
    rows: dict[bytes | None, FileRow] = {}
    for cid in commits:
        tree = (await repo.read_commit(cid)).tree
        for row in (await repo.trees.flatten(tree, within=within)).values():
            rows.setdefault(row.id, row)
    return list(rows.values())


async def fetch_and_write(
    repo: Repository,
    remote: Remote,
    rows: list[FileRow],
    writes: list[FileRow],
    in_place: bool,
    jobs: int,
    bar: Progress,
) -> tuple[DataPlan, list[Written]]:
    """Fetch the data ``rows`` lack, writing the files ``writes`` as their chunks arrive
    (see ``stream_checkout``); returns the plan and (path, stat, id) of each file written."""
    plan = await plan_data(repo, remote, rows, jobs, bar)
    writer = StreamingCheckout(repo.root, writes, plan.chunk_ids, plan.lengths, in_place)
    try:
        await asyncio.to_thread(writer.begin)
        await fetch_chunks(repo, remote, plan, jobs, bar, writer.write_chunks)
        return plan, await writer.finish(repo.objects)
    except BaseException:
        await asyncio.to_thread(writer.abort)
        raise
