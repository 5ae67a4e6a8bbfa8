"""What a set of commits and staged files reaches: every commit, tree node, chunk list,
schema and chunk.  Both garbage collectors (a working copy's ``oxen gc`` and the
server's ``oxen-server gc``) keep exactly this and nothing else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from oxen.db.rows import FileRow
from oxen.formats.nodes import ChunkIndex
from oxen.objects import chunklists
from oxen.objects.object_store import ObjectStore
from oxen.trees.walk import Follow, walk_levels

# Those of some ids this store does not hold (a partial clone lacks some): not walked.
Absent = Callable[[Iterable[bytes]], Awaitable[set[bytes]]]


async def reached(
    objects: ObjectStore,
    tips: Iterable[bytes],
    staged: Iterable[FileRow],
    absent: Absent | None = None,
) -> set[bytes]:
    """The ids ``tips`` (commits) and ``staged`` (file entries not yet committed) reach.
    Without ``absent`` every one of them must be stored (MissingObject otherwise)."""
    out: set[bytes] = set()

    async def held(level: list[bytes]) -> list[bytes]:
        lacking = await absent(level) if absent is not None else set()
        return [oid for oid in level if oid not in lacking]

    async for level in walk_levels(
        objects, set(tips), Follow.ALL, select=held if absent else None, cache=False
    ):
        out.update(level.ids)
        out |= level.chunks
    rows = [r for r in staged if r.id is not None]
    out.update(r.id for r in rows if r.id is not None)
    out.update(r.schema for r in rows if r.schema is not None)
    lists = {r.chunks: r.size for r in rows if r.chunks is not None}
    if absent is not None:
        lacking = await absent(lists)
        lists = {k: v for k, v in lists.items() if k not in lacking}
    for top, (ids, _) in (await chunklists.expand(objects, lists)).items():
        out.add(top)
        out.update(ids)
    for node in (await objects.read_nodes(lists, cache=False)).values():
        if isinstance(node, ChunkIndex):  # the lists under an index are nodes too
            out.update(node.lists)
    return out
