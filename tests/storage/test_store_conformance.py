"""The behaviour every store must have; run once per backend by the ``store`` fixture."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from oxen.storage import ByteRange, InvalidKey, Store
from oxen.storage.base import coalesce_ranges

MiB = 1024 * 1024


def blob(n: int, seed: int = 0) -> bytes:
    """Deterministic bytes without a short period (so offset bugs cannot hide)."""
    return random.Random(seed).randbytes(n)


async def collect(store: Store, prefix: str = "") -> list[str]:
    return sorted([k async for k in store.list(prefix)])


async def test_round_trip(store: Store) -> None:
    await store.put("a/b/c.bin", b"hello")
    assert await store.get("a/b/c.bin") == b"hello"
    assert await store.size("a/b/c.bin") == 5
    await store.put("a/b/c.bin", b"replaced")
    assert await store.get("a/b/c.bin") == b"replaced"
    await store.put("empty", b"")
    assert await store.get("empty") == b""
    assert await store.size("empty") == 0


async def test_missing_keys(store: Store) -> None:
    assert await store.get("nope") is None
    assert await store.get("no/such/dir/key") is None
    assert await store.get_range("nope", 0, 10) is None
    assert await store.get_range("nope", 0, 0) is None
    assert await store.get_ranges("nope", [ByteRange(0, 1)]) is None
    assert await store.size("nope") is None
    assert await store.exists_many(["nope", "x/y"]) == set()
    assert await collect(store) == []
    await store.delete("nope")  # not an error


async def test_ranges(store: Store) -> None:
    data = blob(1000)
    await store.put("r", data)
    assert await store.get_range("r", 0, 10) == data[:10]
    assert await store.get_range("r", 990, 10) == data[990:]
    assert await store.get_range("r", 995, 100) == data[995:]  # short at the end
    assert await store.get_range("r", 1000, 10) == b""  # at the end
    assert await store.get_range("r", 5000, 10) == b""  # past the end
    assert await store.get_range("r", 10, 0) == b""
    with pytest.raises(ValueError):
        await store.get_range("r", -1, 10)


async def test_get_ranges(store: Store) -> None:
    data = blob(100_000, seed=7)
    await store.put("pack", data)
    ranges = [
        ByteRange(50_000, 100),
        ByteRange(0, 10),
        ByteRange(20, 30),  # near the previous one: merged
        ByteRange(0, 10),  # duplicate
        ByteRange(99_990, 100),  # runs past the end
        ByteRange(200_000, 5),  # entirely past the end
        ByteRange(60, 0),
    ]
    got = await store.get_ranges("pack", ranges)
    assert got == [data[r.start : r.end] for r in ranges]
    assert await store.get_ranges("pack", []) == []


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


async def test_put_file(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(blob(12345, seed=3))
    await store.put_file("files/src.bin", src)
    assert src.exists()
    assert await store.get("files/src.bin") == blob(12345, seed=3)

    moved = tmp_path / "moved.bin"
    moved.write_bytes(b"move me")
    await store.put_file("files/moved.bin", moved, move=True)
    assert await store.get("files/moved.bin") == b"move me"


async def test_large_objects(store: Store, tmp_path: Path) -> None:
    """Above the S3 fixture's multipart threshold (6 MiB, parts of 5 MiB): three parts."""
    data = os.urandom(11 * MiB + 123)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    await store.put_file("big/file", src)
    assert await store.size("big/file") == len(data)
    assert await store.get("big/file") == data
    await store.put("big/bytes", data)
    assert await store.get_range("big/bytes", 5 * MiB - 10, 20) == data[5 * MiB - 10 : 5 * MiB + 10]
    assert await store.put_if_absent("big/bytes", data) is False
    assert await store.put_if_absent("big/new", data) is True
    assert await store.get("big/new") == data
    # nothing but the objects themselves is visible
    assert await collect(store) == ["big/bytes", "big/file", "big/new"]


async def test_put_if_absent(store: Store) -> None:
    assert await store.put_if_absent("obj", b"first") is True
    assert await store.put_if_absent("obj", b"second") is False
    assert await store.get("obj") == b"first"


async def test_put_if_absent_race(store: Store) -> None:
    results = await asyncio.gather(
        *(store.put_if_absent("race/obj", f"writer {i}".encode()) for i in range(16))
    )
    assert sum(results) == 1
    winner = results.index(True)
    assert await store.get("race/obj") == f"writer {winner}".encode()


async def test_compare_and_swap(store: Store) -> None:
    assert await store.compare_and_swap("refs/main", b"x", b"a") is False  # missing
    assert await store.get("refs/main") is None
    assert await store.compare_and_swap("refs/main", None, b"a") is True  # create
    assert await store.compare_and_swap("refs/main", None, b"b") is False  # exists now
    assert await store.compare_and_swap("refs/main", b"zzz", b"b") is False  # wrong value
    assert await store.get("refs/main") == b"a"
    assert await store.compare_and_swap("refs/main", b"a", b"b") is True
    assert await store.get("refs/main") == b"b"
    assert await store.compare_and_swap("refs/main", b"b", b"b") is True  # no-op swap
    await store.delete("refs/main")
    assert await store.compare_and_swap("refs/main", b"b", b"c") is False
    assert await store.compare_and_swap("refs/main", None, b"c") is True


async def test_compare_and_swap_race(store: Store) -> None:
    await store.put("refs/race", b"v0")
    results = await asyncio.gather(
        *(store.compare_and_swap("refs/race", b"v0", f"v{i + 1}".encode()) for i in range(16))
    )
    assert sum(results) == 1
    assert await store.get("refs/race") == f"v{results.index(True) + 1}".encode()


async def test_compare_and_swap_counter(store: Store) -> None:
    """Writers that re-read and retry never lose an increment."""

    async def increment() -> None:
        while True:
            current = await store.get("counter")
            value = int(current or b"0")
            if await store.compare_and_swap("counter", current, str(value + 1).encode()):
                return

    await asyncio.gather(*(increment() for _ in range(8)))
    assert await store.get("counter") == b"8"


async def test_exists_many(store: Store) -> None:
    present = [f"objs/{i:04d}" for i in range(0, 300, 2)]
    await asyncio.gather(*(store.put(k, b"x") for k in present))
    await store.put("other/0001", b"x")
    asked = [f"objs/{i:04d}" for i in range(300)] + ["other/0001", "other/0002", "zzz"]
    assert await store.exists_many(asked) == set(present) | {"other/0001"}
    assert await store.exists_many(iter(["objs/0000", "objs/0001"])) == {"objs/0000"}
    assert await store.exists_many([]) == set()
    # a few wanted keys among many stored ones (the sparse path of listing backends)
    sparse = [f"objs/{i:04d}" for i in range(0, 300, 37)] + [f"objs/{i:04d}x" for i in range(20)]
    assert await store.exists_many(sparse) == {k for k in sparse if k in set(present)}


async def test_list(store: Store) -> None:
    keys = [f"packs/{i % 7}/{i:05d}.pack" for i in range(123)]  # more than one S3 page
    keys += ["nodes/aa/1", "nodes/ab/2", "top"]
    await asyncio.gather(*(store.put(k, b"") for k in keys))
    assert await collect(store) == sorted(keys)
    assert await collect(store, "packs/") == sorted(k for k in keys if k.startswith("packs/"))
    assert await collect(store, "packs/3/") == sorted(k for k in keys if k.startswith("packs/3/"))
    assert await collect(store, "nodes/a") == ["nodes/aa/1", "nodes/ab/2"]
    assert await collect(store, "nodes/aa") == ["nodes/aa/1"]
    assert await collect(store, "t") == ["top"]
    assert await collect(store, "missing/") == []


async def test_delete(store: Store) -> None:
    await store.put("d/1", b"1")
    await store.put("d/2", b"2")
    await store.delete("d/1")
    assert await store.get("d/1") is None
    assert await store.exists_many(["d/1", "d/2"]) == {"d/2"}
    assert await collect(store) == ["d/2"]
    assert await store.put_if_absent("d/1", b"again") is True


BAD_KEYS = ["", "/abs", "a/../b", "..", "a//b", "a/./b", "trailing/", "a\\b", "sp ace", "#tmp/x"]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_invalid_keys(store: Store, key: str) -> None:
    with pytest.raises(InvalidKey):
        await store.get(key)
    with pytest.raises(InvalidKey):
        await store.put(key, b"x")
    with pytest.raises(InvalidKey):
        await store.put_if_absent(key, b"x")
    with pytest.raises(InvalidKey):
        await store.compare_and_swap(key, None, b"x")
    with pytest.raises(InvalidKey):
        await store.exists_many(["ok", key])
    with pytest.raises(InvalidKey):
        await store.delete(key)


@pytest.mark.parametrize("prefix", ["../", "/etc", "a/../", "a//"])
async def test_invalid_prefixes(store: Store, prefix: str) -> None:
    with pytest.raises(InvalidKey):
        await collect(store, prefix)


async def test_reopen_by_url(store: Store) -> None:
    from oxen.storage import open_store

    await store.put("k", b"v")
    kwargs = {}
    if store.url.startswith("s3://"):
        kwargs = {"access_key_id": "testing", "secret_access_key": "testing"}
    async with open_store(store.url, **kwargs) as again:
        assert type(again) is type(store)
        assert await again.get("k") == b"v"
