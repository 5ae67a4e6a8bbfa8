"""Chunk lists of files: built in content-defined groups, expanded in batches.

A file of one chunk needs no list (its id is its chunk's id).  A file of several chunks
points at a ChunkList node; past ``GROUP_TARGET`` chunks the list is cut into groups that
end after a chunk whose id's first two bytes are 0 mod ``GROUP_TARGET`` (so, like the
chunks themselves, group boundaries follow the content), and the file points at a
ChunkIndex of those groups.  Appending 1% to a 1 GiB file then rewrites one group of
~1,000 ids and the index, instead of a 16,000-id list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

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


def declared_sizes(files: Iterable[tuple[bytes | None, int]]) -> dict[bytes, int]:
    """Chunk list id -> the size its files declare, from (chunk list id or None, size) of
    each file; CorruptObject when two files of one list declare different sizes."""
    out: dict[bytes, int] = {}
    for top, size in files:
        if top is not None and out.setdefault(top, size) != size:
            raise CorruptObject(f"files of chunk list {top.hex()} declare different sizes")
    return out


async def expand(
    objects: ObjectStore, sizes: Mapping[bytes, int]
) -> dict[bytes, tuple[list[bytes], list[int]]]:
    """top id -> (chunk ids, chunk lengths), reading each level of nodes in one batch.

    ``sizes``: each top's file size, as its tree declares it (:func:`declared_sizes`).
    Lengths must add up to it and every chunk hold a byte, checked before a list is
    expanded: a list naming one chunk over and over, or an index naming one list over
    and over, cannot expand past the size the tree declares (CorruptObject instead).
    """
    if not sizes:
        return {}
    first = await objects.read_nodes(sizes)
    for top, node in first.items():
        if isinstance(node, ChunkList):
            _check_list(top, node, sizes[top])
        elif isinstance(node, ChunkIndex):
            _check_index(top, node, sizes[top])
        else:
            raise CorruptObject(f"node {top.hex()} is not a chunk list")
    children = {c for n in first.values() if isinstance(n, ChunkIndex) for c in n.lists}
    second = await objects.read_nodes(children) if children else {}
    out: dict[bytes, tuple[list[bytes], list[int]]] = {}
    for top, node in first.items():
        if isinstance(node, ChunkList):
            out[top] = (list(node.ids), list(node.lengths))
            continue
        assert isinstance(node, ChunkIndex)
        ids: list[bytes] = []
        lengths: list[int] = []
        for child, size, count in zip(node.lists, node.sizes, node.counts, strict=True):
            leaf = second[child]
            if not isinstance(leaf, ChunkList) or len(leaf.ids) != count:
                raise CorruptObject(f"chunk index {top.hex()} does not match its lists")
            _check_list(child, leaf, size)
            ids.extend(leaf.ids)
            lengths.extend(leaf.lengths)
        out[top] = (ids, lengths)
    return out


def _check_list(oid: bytes, node: ChunkList, size: int) -> None:
    covered = sum(node.lengths)
    if covered != size or 0 in node.lengths:
        raise CorruptObject(
            f"chunk list {oid.hex()} covers {covered} bytes in {len(node.ids)} chunks, "
            f"but its file is {size} bytes"
        )


def _check_index(oid: bytes, node: ChunkIndex, size: int) -> None:
    covered = sum(node.sizes)
    pairs = zip(node.counts, node.sizes, strict=True)  # each list: a chunk, a byte per chunk
    if covered != size or any(n < 1 or n > s for n, s in pairs):
        raise CorruptObject(
            f"chunk index {oid.hex()} covers {covered} bytes in {sum(node.counts)} chunks, "
            f"but its file is {size} bytes"
        )


def children(node: object) -> tuple[bytes, ...]:
    """The ChunkList ids under a ChunkIndex (none for anything else)."""
    return node.lists if isinstance(node, ChunkIndex) else ()


@dataclass(frozen=True, slots=True)
class ChunkRun:
    """Consecutive chunks of a file, the first starting at byte ``offset`` of it."""

    offset: int
    ids: list[bytes]
    lengths: list[int]


async def expand_span(
    objects: ObjectStore, file_id: bytes, top: bytes | None, size: int, start: int, end: int
) -> ChunkRun:
    """The chunks holding bytes ``start`` to ``end`` (exclusive) of a file of ``size``
    bytes whose id is ``file_id`` and chunk list ``top`` (None: one chunk, the file id).

    Of a ChunkIndex only the lists the span touches are read; checked as :func:`expand`
    checks them, and not kept in the node cache (a large file's lists are read once).
    """
    if top is None:
        return ChunkRun(0, [file_id], [size]) if size and start < end else ChunkRun(0, [], [])
    node = (await objects.read_nodes([top], cache=False))[top]
    if isinstance(node, ChunkList):
        _check_list(top, node, size)
        return _within(ChunkRun(0, list(node.ids), list(node.lengths)), start, end)
    if not isinstance(node, ChunkIndex):
        raise CorruptObject(f"node {top.hex()} is not a chunk list")
    _check_index(top, node, size)
    offset, first, picked = 0, 0, []
    for child, covered, count in zip(node.lists, node.sizes, node.counts, strict=True):
        if offset < end and offset + covered > start:
            if not picked:
                first = offset
            picked.append((child, covered, count))
        offset += covered
    leaves = await objects.read_nodes({c for c, _, _ in picked}, cache=False)
    ids: list[bytes] = []
    lengths: list[int] = []
    for child, covered, count in picked:
        leaf = leaves[child]
        if not isinstance(leaf, ChunkList) or len(leaf.ids) != count:
            raise CorruptObject(f"chunk index {top.hex()} does not match its lists")
        _check_list(child, leaf, covered)
        ids.extend(leaf.ids)
        lengths.extend(leaf.lengths)
    return _within(ChunkRun(first, ids, lengths), start, end)


def _within(run: ChunkRun, start: int, end: int) -> ChunkRun:
    """The chunks of ``run`` that hold a byte of ``start`` to ``end``."""
    offset, lo, hi = run.offset, None, 0
    for i, length in enumerate(run.lengths):
        if offset >= end:
            break
        if offset + length > start:
            lo = i if lo is None else lo
            hi = i + 1
        offset += length
    if lo is None:
        return ChunkRun(start, [], [])
    skipped = run.offset + sum(run.lengths[:lo])
    return ChunkRun(skipped, run.ids[lo:hi], run.lengths[lo:hi])
