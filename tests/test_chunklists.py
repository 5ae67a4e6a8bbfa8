"""Chunk lists: content-defined groups, so an append rewrites one group and the index."""

from __future__ import annotations

import random

import pytest

from oxen.errors import CorruptObject
from oxen.formats.ids import hash_bytes
from oxen.formats.nodes import ChunkIndex, ChunkList, decode_node, encode_with_id
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
    assert (await chunklists.expand(objects, {top: sum(lengths)}))[top] == (ids, lengths)


async def test_lists_must_cover_exactly_their_file(repo: AsyncRepo) -> None:
    """Checked before a list is expanded, so none grows past the size its file declares."""
    objects: ObjectStore = repo.objects
    ids, lengths = fake_chunks(9000)
    index, nodes = chunklists.build(ids, lengths)
    flat, flat_nodes = chunklists.build(ids[:50], lengths[:50])
    assert index is not None and flat is not None
    one = hash_bytes(b"one chunk")
    repeated = encode_with_id(ChunkList((one,) * 1000, (5,) * 1000))
    leaf = encode_with_id(ChunkList((one,) * 2, (5, 5)))
    looping = encode_with_id(ChunkIndex((leaf[0],) * 100, (10,) * 100, (2,) * 100))
    liar = encode_with_id(ChunkIndex((leaf[0],) * 2, (10, 10), (1, 3)))  # counts disagree
    empty = encode_with_id(ChunkList((one, one), (0, 10)))
    await objects.write_nodes([*nodes, *flat_nodes, repeated, leaf, looping, liar, empty])
    assert await chunklists.expand(objects, {looping[0]: 1000}) is not None  # what it says
    refused = {
        index: sum(lengths) - 1,
        flat: sum(lengths[:50]) + 1,
        repeated[0]: 5,
        looping[0]: 10,
        liar[0]: 20,
        empty[0]: 10,
    }
    for top, size in refused.items():
        with pytest.raises(CorruptObject, match="covers|does not match"):
            await chunklists.expand(objects, {top: size})
    with pytest.raises(CorruptObject, match="different sizes"):
        chunklists.declared_sizes([(flat, 1), (None, 5), (flat, 2)])
