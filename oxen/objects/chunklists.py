"""Chunk lists of files: built in content-defined groups, expanded in batches.

A file of one chunk needs no list (its id is its chunk's id).  A file of several chunks
points at a ChunkList node; past ``GROUP_TARGET`` chunks the list is cut into groups that
end after a chunk whose id's first two bytes are 0 mod ``GROUP_TARGET`` (so, like the
chunks themselves, group boundaries follow the content), and the file points at a
ChunkIndex of those groups.  Appending 1% to a 1 GiB file then rewrites one group of
~1,000 ids and the index, instead of a 16,000-id list.
"""

from __future__ import annotations

from collections.abc import Iterable

from oxen.errors import CorruptObject
from oxen.formats.nodes import ChunkIndex, ChunkList, encode_with_id
from oxen.objects.object_store import ObjectStore

GROUP_TARGET = 1024
GROUP_MAX = 4 * GROUP_TARGET


def build(ids: list[bytes], lengths: list[int]) -> tuple[bytes | None, list[tuple[bytes, bytes]]]:
    """(the id files point at, encoded nodes to store) for a file's chunks; None for one chunk."""
    if len(ids) <= 1:
        return None, []
    groups: list[tuple[int, int]] = []
    start = 0
    for i, cid in enumerate(ids):
        if (int.from_bytes(cid[:2], "big") % GROUP_TARGET == 0) or i + 1 - start >= GROUP_MAX:
            groups.append((start, i + 1))
            start = i + 1
    if start < len(ids):
        groups.append((start, len(ids)))
    if len(groups) == 1 or len(ids) <= GROUP_TARGET:
        node = encode_with_id(ChunkList(tuple(ids), tuple(lengths)))
        return node[0], [node]
    nodes = [encode_with_id(ChunkList(tuple(ids[a:b]), tuple(lengths[a:b]))) for a, b in groups]
    index = encode_with_id(
        ChunkIndex(
            tuple(oid for oid, _ in nodes),
            tuple(sum(lengths[a:b]) for a, b in groups),
            tuple(b - a for a, b in groups),
        )
    )
    return index[0], [*nodes, index]


async def expand(
    objects: ObjectStore, tops: Iterable[bytes]
) -> dict[bytes, tuple[list[bytes], list[int]]]:
    """top id -> (chunk ids, chunk lengths), reading each level of nodes in one batch."""
    tops = set(tops)
    if not tops:
        return {}
    first = await objects.read_nodes(tops)
    children = {c for n in first.values() if isinstance(n, ChunkIndex) for c in n.lists}
    second = await objects.read_nodes(children) if children else {}
    out: dict[bytes, tuple[list[bytes], list[int]]] = {}
    for top, node in first.items():
        if isinstance(node, ChunkList):
            out[top] = (list(node.ids), list(node.lengths))
        elif isinstance(node, ChunkIndex):
            ids: list[bytes] = []
            lengths: list[int] = []
            for child in node.lists:
                leaf = second[child]
                if not isinstance(leaf, ChunkList):
                    raise CorruptObject(f"chunk index {top.hex()} points at a non-list node")
                ids.extend(leaf.ids)
                lengths.extend(leaf.lengths)
            out[top] = (ids, lengths)
        else:
            raise CorruptObject(f"node {top.hex()} is not a chunk list")
    return out


def children(node: object) -> tuple[bytes, ...]:
    """The ChunkList ids under a ChunkIndex (none for anything else)."""
    return node.lists if isinstance(node, ChunkIndex) else ()
