"""Chunk lists: content-defined groups, so an append rewrites one group and the index."""

from __future__ import annotations

import random

from oxen.formats.ids import hash_bytes
from oxen.formats.nodes import ChunkIndex, ChunkList, decode_node
from oxen.objects import chunklists
from oxen.objects.object_store import ObjectStore
from oxen.repo import AsyncRepo


def fake_chunks(n: int, seed: int = 1) -> tuple[list[bytes], list[int]]:
    rng = random.Random(seed)
    ids = [hash_bytes(rng.randbytes(8)) for _ in range(n)]
    return ids, [rng.randint(8192, 131072) for _ in range(n)]


def test_one_chunk_needs_no_list() -> None:
    assert chunklists.build([hash_bytes(b"x")], [1]) == (None, [])


def test_small_files_get_one_flat_list() -> None:
    ids, lengths = fake_chunks(300)
    top, nodes = chunklists.build(ids, lengths)
    assert len(nodes) == 1 and nodes[0][0] == top
    assert decode_node(nodes[0][1]) == ChunkList(tuple(ids), tuple(lengths))


def test_large_files_get_an_index_of_content_defined_groups() -> None:
    ids, lengths = fake_chunks(16_000)
    top, nodes = chunklists.build(ids, lengths)
    index = decode_node(dict(nodes)[top])
    assert isinstance(index, ChunkIndex)
    assert 4 <= len(index.lists) <= 64
    assert sum(index.counts) == 16_000 and sum(index.sizes) == sum(lengths)
    assert all(c <= chunklists.GROUP_MAX for c in index.counts)


def test_appending_rewrites_only_the_last_group() -> None:
    ids, lengths = fake_chunks(16_000)
    _, before = chunklists.build(ids, lengths)
    more_ids, more_lengths = fake_chunks(160, seed=2)
    _, after = chunklists.build(ids[:-1] + more_ids, lengths[:-1] + more_lengths)
    new = {oid for oid, _ in after} - {oid for oid, _ in before}
    assert len(new) <= 3  # the last group or two, and the index
    assert sum(len(data) for oid, data in after if oid in new) < 0.15 * sum(
        len(d) for _, d in after
    )


async def test_expand_round_trip(repo: AsyncRepo) -> None:
    objects: ObjectStore = repo.objects
    ids, lengths = fake_chunks(9000)
    top, nodes = chunklists.build(ids, lengths)
    await objects.write_nodes(nodes)
    assert (await chunklists.expand(objects, [top]))[top] == (ids, lengths)
