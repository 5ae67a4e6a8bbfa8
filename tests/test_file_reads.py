"""One file of a commit read on the server side (no HTTP): the chunks a span needs are
located in one batch and only those are read, a window at a time."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from oxen.errors import InvalidInput, NotFound, PathError
from oxen.repo import AsyncRepo
from oxen.serving import file_reads
from oxen.serving.file_reads import find_file, plan_read
from oxen.serving.registry import RepoRegistry
from oxen.serving.served_repo import ServedRepo
from oxen.sync.push import push
from tests.conftest import write
from tests.test_serving import InProcessRemote, registry  # noqa: F401 - a fixture

DATA = random.Random(5).randbytes(2_000_000)


@pytest.fixture
async def served(repo: AsyncRepo, workdir: Path, registry: RepoRegistry):  # noqa: F811
    write(workdir, "data/big.bin", DATA)
    write(workdir, "small.txt", "small")
    await repo.add(["."])
    await repo.commit("one")
    await registry.create("ns", "r")
    async with registry.use("ns", "r") as served:
        await push(repo, InProcessRemote(served), "origin", "main")
        yield served


async def read(served: ServedRepo, path: str, start: int, end: int, rev: str = "main") -> bytes:
    file = await find_file(served, rev, path)
    plan = await plan_read(served, file, start, end)
    return b"".join([piece async for piece in plan.pieces()])


async def test_spans_read_the_right_bytes(
    served: ServedRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_reads, "READ_WINDOW", 300_000)  # several windows
    size = len(DATA)
    for start, end in [(0, size), (0, 1), (1, 2), (size - 1, size), (123_456, 1_234_567)]:
        assert await read(served, "data/big.bin", start, end) == DATA[start:end]
    assert await read(served, "small.txt", 1, 3) == b"ma"


async def test_a_span_locates_its_chunks_at_once_and_reads_only_them(
    served: ServedRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = await find_file(served, "main", "data/big.bin")
    lengths = await file_reads.chunk_lengths(served, file)
    assert len(lengths) > 10
    located: list[set[bytes]] = []
    read_ids: list[bytes] = []
    real_locate, real_read = served.db.locate, served.objects.read_blobs

    async def locate(ids):  # type: ignore[no-untyped-def]
        located.append(set(ids))
        return await real_locate(ids)

    async def read_blobs(ids, known=None):  # type: ignore[no-untyped-def]
        read_ids.extend(ids)
        return await real_read(ids, known)

    monkeypatch.setattr(served.db, "locate", locate)
    monkeypatch.setattr(served.objects, "read_blobs", read_blobs)
    middle = sum(lengths[:5])  # the start of the sixth chunk
    plan = await plan_read(served, file, middle - 10, middle + 10)
    data = b"".join([piece async for piece in plan.pieces()])
    assert data == DATA[middle - 10 : middle + 10]
    assert located == [set(plan.run.ids)] and len(plan.run.ids) == 2
    assert read_ids == plan.run.ids  # the two chunks, and nothing more

    located.clear()
    read_ids.clear()
    whole = await plan_read(served, file, 0, len(DATA))
    assert b"".join([piece async for piece in whole.pieces()]) == DATA
    assert len(located) == 1  # one batch for every chunk of the file
    assert sorted(read_ids) == sorted(whole.run.ids)


async def test_what_is_not_a_file_of_the_revision(served: ServedRepo) -> None:
    with pytest.raises(NotFound, match="no file nope at main"):
        await find_file(served, "main", "nope")
    with pytest.raises(InvalidInput, match="data is a directory"):
        await find_file(served, "main", "data")
    with pytest.raises(NotFound, match="no branch or commit dev"):
        await find_file(served, "dev", "small.txt")
    for path in ("../x", "data/../small.txt", "/small.txt", ".oxen/config.toml", "a//b"):
        with pytest.raises(PathError):
            await find_file(served, "main", path)
    tip = (await served.refs())["main"]
    assert (await find_file(served, tip.hex().upper(), "small.txt")).commit == tip
