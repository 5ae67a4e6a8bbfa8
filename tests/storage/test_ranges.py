"""Range merging, done in one place: ``Store.get_ranges`` with ``range_gap`` and ``max_read``."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from oxen.storage import ByteRange, Store
from oxen.storage.base import coalesce_ranges, split_coalesced
from oxen.storage.local import LocalStore
from oxen.storage.prefixed import PrefixedStore

MiB = 1024 * 1024


class SpyStore(LocalStore):
    """A local store that records what ``get_ranges`` asks its backend hook to read."""

    range_gap = 10
    max_read = 100

    def __init__(self, root: Path) -> None:
        super().__init__(root, fsync=False)
        self.calls: list[tuple[str, list[tuple[int, int]]]] = []
        self.blobs: list[bytes] = []

    async def read_spans(self, key: str, spans: list[ByteRange]) -> list[bytes] | None:
        self.calls.append((key, [(s.start, s.end) for s in spans]))
        blobs = await super().read_spans(key, spans)
        self.blobs += blobs or []
        return blobs


def test_coalesce_ranges() -> None:
    ranges = [ByteRange(100, 10), ByteRange(0, 10), ByteRange(15, 5), ByteRange(1000, 1)]
    reads = coalesce_ranges(ranges, max_gap=10)
    assert [(r.start, r.end, sorted(r.members)) for r in reads] == [
        (0, 20, [1, 2]),
        (100, 110, [0]),
        (1000, 1001, [3]),
    ]
    # max_span keeps a merged read bounded
    reads = coalesce_ranges([ByteRange(i * 10, 10) for i in range(10)], max_gap=0, max_span=30)
    assert [(r.start, r.end) for r in reads] == [(0, 30), (30, 60), (60, 90), (90, 100)]


def test_split_coalesced_hands_whole_reads_over_without_a_copy() -> None:
    ranges = [ByteRange(0, 4), ByteRange(10, 2), ByteRange(12, 2), ByteRange(0, 4)]
    reads = coalesce_ranges(ranges, max_gap=0)
    assert [(r.start, r.end) for r in reads] == [(0, 4), (10, 14)]
    first, second = b"abcd", b"wxyz"
    out = split_coalesced(ranges, reads, [first, second])
    assert out == [b"abcd", b"wx", b"yz", b"abcd"]
    assert out[0] is first and out[3] is first  # each range is its whole read
    assert all(type(b) is bytes for b in out)
    # a backend that hands back bytearrays or memoryviews still yields bytes
    out = split_coalesced(ranges, reads, [bytearray(b"abcd"), memoryview(b"wxyz")])
    assert out == [b"abcd", b"wx", b"yz", b"abcd"] and all(type(b) is bytes for b in out)


async def test_get_ranges_merges_with_range_gap_and_max_read(tmp_path: Path) -> None:
    store = SpyStore(tmp_path / "s")
    data = random.Random(1).randbytes(1000)
    await store.put("p", data)
    ranges = [
        ByteRange(300, 10),  # lone
        ByteRange(0, 10),
        ByteRange(20, 10),  # gap of exactly range_gap: merged with the one before
        ByteRange(41, 10),  # gap of range_gap + 1: a read of its own
        ByteRange(55, 50),  # merged with it: 41..105 is 64 bytes
        ByteRange(105, 50),  # would make 41..155 longer than max_read: a new read
        ByteRange(500, 250),  # longer than max_read: read whole
        ByteRange(990, 100),  # runs past the end
    ]
    got = await store.get_ranges("p", ranges)
    assert got == [data[r.start : r.end] for r in ranges]
    assert store.calls == [
        ("p", [(0, 30), (41, 105), (105, 155), (300, 310), (500, 750), (990, 1090)])
    ]
    # lone ranges are the bytes objects the backend read, not copies
    by_start = {r.start: i for i, r in enumerate(ranges)}
    for blob, start in zip(store.blobs, [0, 41, 105, 300, 500, 990], strict=True):
        if start in (105, 300, 500, 990):
            assert got[by_start[start]] is blob

    store.calls.clear()
    assert await store.get_ranges("p", []) == []
    assert await store.get_ranges("missing", []) is None
    assert await store.get_ranges("missing", ranges) is None
    assert store.calls == [
        ("missing", [(0, 30), (41, 105), (105, 155), (300, 310), (500, 750), (990, 1090)])
    ]


async def test_chunks_of_a_pack(tmp_path: Path) -> None:
    """Hundreds of adjacent 64 KiB chunks: one read per ``max_read``, one hook call."""
    store = SpyStore(tmp_path / "s")
    store.range_gap, store.max_read = 256 * 1024, 16 * MiB
    chunk = 64 * 1024
    data = random.Random(2).randbytes(40 * MiB)
    await store.put("pack", data)
    ranges = [ByteRange(off, chunk) for off in range(0, len(data), chunk)]
    got = await store.get_ranges("pack", ranges)
    assert got == [data[r.start : r.end] for r in ranges]
    assert store.calls == [("pack", [(0, 16 * MiB), (16 * MiB, 32 * MiB), (32 * MiB, 40 * MiB)])]


async def test_default_read_spans_uses_get_range(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s", fsync=False)
    await store.put("k", b"0123456789")
    spans = [ByteRange(0, 2), ByteRange(5, 10)]
    assert await Store.read_spans(store, "k", spans) == [b"01", b"56789"]
    assert await Store.read_spans(store, "nope", spans) is None


async def test_prefixed_store_merges_in_its_inner_store(tmp_path: Path) -> None:
    inner = SpyStore(tmp_path / "s")
    store = PrefixedStore(inner, "repos/ns/name")
    assert (store.range_gap, store.max_read) == (10, 100)
    await store.put("p", bytes(range(100)))
    assert await store.get_ranges("p", [ByteRange(0, 5), ByteRange(10, 5)]) == [
        bytes(range(5)),
        bytes(range(10, 15)),
    ]
    assert inner.calls == [("repos/ns/name/p", [(0, 15)])]


def test_defaults_per_backend(tmp_path: Path) -> None:
    from oxen.storage.nfs import NfsStore

    for store in (LocalStore(tmp_path / "l"), NfsStore(tmp_path / "n")):
        assert (store.range_gap, store.max_read) == (256 * 1024, 16 * MiB)


def test_s3_range_options() -> None:
    pytest.importorskip("aiobotocore")
    from oxen.storage import open_store
    from oxen.storage.s3 import S3Store

    store = S3Store("b")
    assert (store.range_gap, store.max_read, store.max_gap) == (1 * MiB, 16 * MiB, 1 * MiB)
    store = S3Store("b", part_size=32 * MiB, max_gap=64 * 1024)  # the old name still works
    assert (store.range_gap, store.max_read, store.max_gap) == (64 * 1024, 32 * MiB, 64 * 1024)
    store = S3Store("b", range_gap=2 * MiB, max_read=4 * MiB)
    assert (store.range_gap, store.max_read) == (2 * MiB, 4 * MiB)
    store = open_store("s3://b/p?range_gap=1000&max_read=5000")
    assert (store.range_gap, store.max_read) == (1000, 5000)
    assert open_store("s3://b/p?max_gap=1000").range_gap == 1000
    assert S3Store.range_gap == 1 * MiB and Store.range_gap == 256 * 1024  # class defaults
    with pytest.raises(ValueError, match="old name"):
        S3Store("b", range_gap=1, max_gap=2)
    with pytest.raises(ValueError):
        S3Store("b", max_read=0)
