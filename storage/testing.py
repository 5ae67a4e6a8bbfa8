"""The behaviour every :class:`~oxen.storage.base.Store` must have, as a pytest suite.

A backend's tests subclass :class:`StoreTests`, as zarr-python's stores subclass
``zarr.testing.store.StoreTests``.  This module imports pytest and pytest-asyncio, so only
test code imports it.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import pytest_asyncio

from oxen.storage.base import ByteRange, Store
from oxen.storage.errors import InvalidKey

__all__ = ["StoreTests"]

MiB = 1024 * 1024

#: Keys every store must refuse with InvalidKey.
BAD_KEYS = ["", "/abs", "a/../b", "..", "a//b", "a/./b", "trailing/", "a\\b", "sp ace", "#tmp/x"]
#: Listing prefixes every store must refuse with InvalidKey.
BAD_PREFIXES = ["../", "/etc", "a/../", "a//"]


def blob(n: int, seed: int = 0) -> bytes:
    """Deterministic bytes without a short period (so offset bugs cannot hide)."""
    return random.Random(seed).randbytes(n)


async def collect(store: Store, prefix: str = "") -> list[str]:
    """Every key under ``prefix``, sorted."""
    return sorted([k async for k in store.list(prefix)])


class StoreTests:
    """Conformance tests for a :class:`~oxen.storage.base.Store` backend.

    The shape is zarr-python's ``StoreTests``: a subclass named ``Test...`` sets
    ``store_cls`` and provides the ``store_kwargs`` fixture; the ``store`` fixture every
    test uses is ``store_cls(**store_kwargs)``, closed after the test.  Example, in the
    tests of a third-party backend::

        import pytest
        from oxen.storage.testing import StoreTests
        from mypkg.gcs import GcsStore

        class TestGcsStore(StoreTests):
            store_cls = GcsStore
            reopen_cls = None  # open_store() does not know gcs:// URLs: skip that test

            @pytest.fixture
            def store_kwargs(self, gcs_emulator, tmp_path):  # any fixtures
                return {"bucket": "test", "prefix": tmp_path.name, "endpoint": gcs_emulator}

    What a subclass provides:

    * ``store_cls``: the backend class.
    * ``store_kwargs``: a fixture returning the constructor's keyword arguments.  Every
      test must get an *empty* store (a fresh directory, a fresh prefix).  It may be a
      ``yield`` fixture (async too) that cleans up after the test.
    * ``store``: override this fixture instead when a store needs more than one
      constructor call; it must yield an empty store and close it afterwards.
    * ``reopen_cls``: the class :func:`~oxen.storage.open_store` returns for
      ``store.url`` (default ``store_cls``), or None to skip ``test_reopen_by_url``;
      ``reopen_options``: keyword options for that ``open_store`` call.

    Add backend-specific tests as more methods; turn an inherited test off by overriding
    it with one that calls ``pytest.skip``.  The tests need pytest-asyncio, in strict or
    auto mode (the class carries the ``asyncio`` mark).
    """

    pytestmark = [pytest.mark.asyncio]

    store_cls: ClassVar[type[Store]]
    reopen_cls: ClassVar[type[Store] | None]
    reopen_options: ClassVar[dict[str, Any]] = {}

    # -- fixtures ------------------------------------------------------------------------
    @pytest.fixture
    def store_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``store_cls`` for one empty store; subclasses override."""
        raise NotImplementedError(
            f"{type(self).__name__} must define the store_kwargs fixture (or override store)"
        )

    @pytest_asyncio.fixture
    async def store(self, store_kwargs: dict[str, Any]) -> AsyncIterator[Store]:
        store = self.store_cls(**store_kwargs)
        try:
            yield store
        finally:
            await store.close()

    # -- the store itself ----------------------------------------------------------------
    async def test_store_type(self, store: Store) -> None:
        assert isinstance(store, Store)
        assert isinstance(store, self.store_cls)
        assert isinstance(store.url, str) and store.url
        assert store.range_gap >= 0 and store.max_read >= 1

    # -- reads and writes ----------------------------------------------------------------
    async def test_round_trip(self, store: Store) -> None:
        await store.put("a/b/c.bin", b"hello")
        assert await store.get("a/b/c.bin") == b"hello"
        assert await store.size("a/b/c.bin") == 5
        await store.put("a/b/c.bin", b"replaced")
        assert await store.get("a/b/c.bin") == b"replaced"
        await store.put("empty", b"")
        assert await store.get("empty") == b""
        assert await store.size("empty") == 0

    async def test_keys_beside_folders_read_as_missing(self, store: Store) -> None:
        """A key below an object's key, or a key that only prefixes others, names nothing."""
        await store.put("refs/main", b"1")
        await store.put("refs/nest/x", b"2")
        for key in ("refs/main/x", "refs/nest"):
            assert await store.get(key) is None
            assert await store.get_range(key, 0, 1) is None
            assert await store.get_ranges(key, [ByteRange(0, 1)]) is None
            assert await store.size(key) is None
            assert await store.exists_many([key]) == set()

    async def test_missing_keys(self, store: Store) -> None:
        assert await store.get("nope") is None
        assert await store.get("no/such/dir/key") is None
        assert await store.get_range("nope", 0, 10) is None
        assert await store.get_range("nope", 0, 0) is None
        assert await store.get_ranges("nope", [ByteRange(0, 1)]) is None
        assert await store.get_ranges("nope", []) is None
        assert await store.size("nope") is None
        assert await store.exists_many(["nope", "x/y"]) == set()
        assert await collect(store) == []
        await store.delete("nope")  # not an error

    async def test_ranges(self, store: Store) -> None:
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

    async def test_get_ranges(self, store: Store) -> None:
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

    async def test_get_ranges_merged_reads(self, store: Store) -> None:
        """Ranges as a pack read asks for them: hundreds of adjacent chunks (more than
        ``max_read`` of them), one exactly ``range_gap`` further, one a byte further still,
        in shuffled order with duplicates; a range longer than ``max_read``; overlaps."""
        gap, chunk = store.range_gap, 64 * 1024
        dense = min(store.max_read, 16 * MiB) + 2 * chunk
        ranges = [ByteRange(offset, chunk) for offset in range(0, dense, chunk)]
        at_gap = ByteRange(dense + gap, 100)  # merged with the chunks before it
        apart = ByteRange(at_gap.end + gap + 1, 100)  # read on its own
        size = apart.start + 50  # so the last range runs past the end
        ranges += [at_gap, apart, ByteRange(size, 10)]
        data = blob(size, seed=11)
        await store.put("pack", data)
        shuffle = random.Random(5)
        shuffle.shuffle(ranges)
        ranges += shuffle.sample(ranges, 5)
        got = await store.get_ranges("pack", ranges)
        assert got is not None and len(got) == len(ranges)
        assert all(type(b) is bytes for b in got)
        assert got == [data[r.start : r.end] for r in ranges]

        whole = await store.get_ranges("pack", [ByteRange(0, size + 10)])
        assert whole == [data]
        overlapping = [ByteRange(chunk // 2, chunk), ByteRange(0, 2 * chunk), ByteRange(1, 1)]
        got = await store.get_ranges("pack", overlapping)
        assert got == [data[r.start : r.end] for r in overlapping]

    async def test_put_file(self, store: Store, tmp_path: Path) -> None:
        src = tmp_path / "src.bin"
        src.write_bytes(blob(12345, seed=3))
        await store.put_file("files/src.bin", src)
        assert src.exists()
        assert await store.get("files/src.bin") == blob(12345, seed=3)

        moved = tmp_path / "moved.bin"
        moved.write_bytes(b"move me")
        await store.put_file("files/moved.bin", moved, move=True)
        assert await store.get("files/moved.bin") == b"move me"

    async def test_large_objects(self, store: Store, tmp_path: Path) -> None:
        """11 MiB: above the multipart threshold of the project's S3 test fixture (6 MiB,
        parts of 5 MiB: three parts)."""
        data = os.urandom(11 * MiB + 123)
        src = tmp_path / "big.bin"
        src.write_bytes(data)
        await store.put_file("big/file", src)
        assert await store.size("big/file") == len(data)
        assert await store.get("big/file") == data
        await store.put("big/bytes", data)
        assert (
            await store.get_range("big/bytes", 5 * MiB - 10, 20)
            == data[5 * MiB - 10 : 5 * MiB + 10]
        )
        assert await store.put_if_absent("big/bytes", data) is False
        assert await store.put_if_absent("big/new", data) is True
        assert await store.get("big/new") == data
        # nothing but the objects themselves is visible
        assert await collect(store) == ["big/bytes", "big/file", "big/new"]

    # -- conditional writes --------------------------------------------------------------
    async def test_put_if_absent(self, store: Store) -> None:
        assert await store.put_if_absent("obj", b"first") is True
        assert await store.put_if_absent("obj", b"second") is False
        assert await store.get("obj") == b"first"

    async def test_put_if_absent_race(self, store: Store) -> None:
        results = await asyncio.gather(
            *(store.put_if_absent("race/obj", f"writer {i}".encode()) for i in range(16))
        )
        assert sum(results) == 1
        winner = results.index(True)
        assert await store.get("race/obj") == f"writer {winner}".encode()

    async def test_compare_and_swap(self, store: Store) -> None:
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

    async def test_compare_and_swap_race(self, store: Store) -> None:
        await store.put("refs/race", b"v0")
        results = await asyncio.gather(
            *(store.compare_and_swap("refs/race", b"v0", f"v{i + 1}".encode()) for i in range(16))
        )
        assert sum(results) == 1
        assert await store.get("refs/race") == f"v{results.index(True) + 1}".encode()

    async def test_compare_and_swap_counter(self, store: Store) -> None:
        """Writers that re-read and retry never lose an increment."""

        async def increment() -> None:
            while True:
                current = await store.get("counter")
                value = int(current or b"0")
                if await store.compare_and_swap("counter", current, str(value + 1).encode()):
                    return

        await asyncio.gather(*(increment() for _ in range(8)))
        assert await store.get("counter") == b"8"

    # -- metadata ------------------------------------------------------------------------
    async def test_exists_many(self, store: Store) -> None:
        present = [f"objs/{i:04d}" for i in range(0, 300, 2)]
        await asyncio.gather(*(store.put(k, b"x") for k in present))
        await store.put("other/0001", b"x")
        asked = [f"objs/{i:04d}" for i in range(300)] + ["other/0001", "other/0002", "zzz"]
        assert await store.exists_many(asked) == set(present) | {"other/0001"}
        assert await store.exists_many(iter(["objs/0000", "objs/0001"])) == {"objs/0000"}
        assert await store.exists_many([]) == set()
        # a few wanted keys among many stored ones (the sparse path of listing backends)
        sparse = [f"objs/{i:04d}" for i in range(0, 300, 37)]
        sparse += [f"objs/{i:04d}x" for i in range(20)]
        assert await store.exists_many(sparse) == {k for k in sparse if k in set(present)}

    async def test_list(self, store: Store) -> None:
        keys = [f"packs/{i % 7}/{i:05d}.pack" for i in range(123)]  # more than one S3 page
        keys += ["nodes/aa/1", "nodes/ab/2", "top"]
        await asyncio.gather(*(store.put(k, b"") for k in keys))
        assert await collect(store) == sorted(keys)
        assert await collect(store, "packs/") == sorted(k for k in keys if k.startswith("packs/"))
        assert await collect(store, "packs/3/") == sorted(
            k for k in keys if k.startswith("packs/3/")
        )
        assert await collect(store, "nodes/a") == ["nodes/aa/1", "nodes/ab/2"]
        assert await collect(store, "nodes/aa") == ["nodes/aa/1"]
        assert await collect(store, "t") == ["top"]
        assert await collect(store, "missing/") == []

    async def test_delete(self, store: Store) -> None:
        await store.put("d/1", b"1")
        await store.put("d/2", b"2")
        await store.delete("d/1")
        assert await store.get("d/1") is None
        assert await store.exists_many(["d/1", "d/2"]) == {"d/2"}
        assert await collect(store) == ["d/2"]
        assert await store.put_if_absent("d/1", b"again") is True

    # -- keys ----------------------------------------------------------------------------
    @pytest.mark.parametrize("key", BAD_KEYS)
    async def test_invalid_keys(self, store: Store, key: str) -> None:
        with pytest.raises(InvalidKey):
            await store.get(key)
        with pytest.raises(InvalidKey):
            await store.get_range(key, 0, 1)
        with pytest.raises(InvalidKey):
            await store.get_ranges(key, [ByteRange(0, 1)])
        with pytest.raises(InvalidKey):
            await store.size(key)
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

    @pytest.mark.parametrize("prefix", BAD_PREFIXES)
    async def test_invalid_prefixes(self, store: Store, prefix: str) -> None:
        with pytest.raises(InvalidKey):
            await collect(store, prefix)

    # -- URLs ----------------------------------------------------------------------------
    async def test_reopen_by_url(self, store: Store) -> None:
        from oxen.storage import open_store

        reopen_cls = getattr(self, "reopen_cls", self.store_cls)
        if reopen_cls is None:
            pytest.skip(f"open_store() does not open {self.store_cls.__name__} URLs")
        await store.put("k", b"v")
        async with open_store(store.url, **self.reopen_options) as again:
            assert type(again) is reopen_cls
            assert await again.get("k") == b"v"
