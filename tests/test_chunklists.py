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


def expected_span(ids: list[bytes], lengths: list[int], start: int, end: int) -> tuple:
    """(offset of the first chunk, ids, lengths) of the chunks holding start..end."""
    out, offset, first = [], 0, None
    for cid, length in zip(ids, lengths, strict=True):
        if offset < end and offset + length > start:
            first = offset if first is None else first
            out.append((cid, length))
        offset += length
    return (first if first is not None else start, [c for c, _ in out], [n for _, n in out])


@pytest.mark.parametrize("count", [2, 300, 9000])  # a flat list; an index of lists
async def test_a_span_expands_to_the_chunks_that_hold_it(repo: AsyncRepo, count: int) -> None:
    ids, lengths = fake_chunks(count)
    top, nodes = chunklists.build(ids, lengths)
    await repo.objects.write_nodes(nodes)
    size = sum(lengths)
    rng = random.Random(count)
    bounds = [0, 1, lengths[0] - 1, lengths[0], lengths[0] + 1, size // 2, size - 1, size]
    spans = [(a, b) for a in bounds for b in bounds if a < b]
    spans += sorted((rng.randrange(size), rng.randrange(size)) for _ in range(20))
    for start, end in spans:
        if start >= end:
            continue
        run = await chunklists.expand_span(repo.objects, b"f" * 32, top, size, start, end)
        assert (run.offset, run.ids, run.lengths) == expected_span(ids, lengths, start, end)


async def test_a_span_of_a_large_file_reads_only_the_lists_it_touches(repo: AsyncRepo) -> None:
    ids, lengths = fake_chunks(9000)
    top, nodes = chunklists.build(ids, lengths)
    await repo.objects.write_nodes(nodes)
    index = decode_node(dict(nodes)[top])
    assert isinstance(index, ChunkIndex)
    read: list[bytes] = []
    real = repo.objects.read_nodes

    async def counting(wanted, cache=True):  # type: ignore[no-untyped-def]
        read.extend(wanted)
        return await real(wanted, cache)

    repo.objects.read_nodes = counting  # type: ignore[method-assign]
    await chunklists.expand_span(repo.objects, b"f" * 32, top, sum(lengths), 0, 10)
    assert read == [top, index.lists[0]]


async def test_a_file_of_one_chunk_is_its_own_chunk(repo: AsyncRepo) -> None:
    run = await chunklists.expand_span(repo.objects, b"f" * 32, None, 100, 10, 20)
    assert (run.offset, run.ids, run.lengths) == (0, [b"f" * 32], [100])
    empty = await chunklists.expand_span(repo.objects, b"f" * 32, None, 0, 0, 0)
    assert empty.ids == []
