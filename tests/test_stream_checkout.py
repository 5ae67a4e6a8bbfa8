"""Writing a tree into an empty directory as its chunks arrive, in any order, from threads."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest

from oxen.db.rows import FileRow
from oxen.errors import PathError
from oxen.formats.nodes import EXEC_MODE
from oxen.objects import chunklists
from oxen.repo import AsyncRepo
from oxen.worktree.stream_checkout import StreamingCheckout
from tests.conftest import write


async def plan_of(repo: AsyncRepo) -> tuple[list[FileRow], dict, dict]:
    """HEAD's rows, file id -> chunk ids, chunk id -> length (what clone's plan holds)."""
    rows = sorted((await repo.db.head_files()).values())
    lists = chunklists.declared_sizes((r.chunks, r.size) for r in rows)
    expanded = await chunklists.expand(repo.objects, lists)
    chunk_ids: dict[bytes, list[bytes]] = {}
    lengths: dict[bytes, int] = {}
    for r in rows:
        if r.chunks is None:
            chunk_ids[r.id], lengths[r.id] = [r.id], r.size
        else:
            ids, sizes = expanded[r.chunks]
            chunk_ids[r.id] = ids
            lengths.update(zip(ids, sizes, strict=True))
    return rows, chunk_ids, lengths


async def test_files_fill_in_whatever_order_chunks_arrive(
    repo: AsyncRepo, workdir: Path, tmp_path: Path
) -> None:
    rng = random.Random(7)
    big = rng.randbytes(3_000_000)
    files = {
        "small.txt": b"hello",
        "empty": b"",
        "d/e/big.bin": big,
        "d/repeats.bin": big[:500_000] * 4,  # one chunk at several offsets
        "copy/big-again.bin": big,  # every chunk shared with another file
        "tool.sh": b"#!/bin/sh\necho hi\n",
    }
    for rel, data in files.items():
        write(workdir, rel, data)
    os.chmod(workdir / "tool.sh", 0o755)
    await repo.add(["."])
    await repo.commit("c")
    rows, chunk_ids, lengths = await plan_of(repo)
    assert any(r.mode == EXEC_MODE for r in rows)
    blobs = await repo.objects.read_blobs({c for ids in chunk_ids.values() for c in ids})

    dest = tmp_path / "clone"
    dest.mkdir()
    checkout = StreamingCheckout(dest, rows, chunk_ids, lengths)
    arrivals = list(blobs.items())
    rng.shuffle(arrivals)
    halves = [arrivals[::2], arrivals[1::2]]
    threads = [
        threading.Thread(target=lambda h=h: [checkout.on_chunk(c, b) for c, b in h]) for h in halves
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    written = await checkout.finish(repo.objects)

    assert {p: (dest / p).read_bytes() for p in files} == files
    assert os.access(dest / "tool.sh", os.X_OK)
    by_path = {p: (st, oid) for p, st, oid in written}
    assert sorted(by_path) == sorted(files)
    for row in rows:
        st, oid = by_path[row.path]
        real = os.stat(dest / row.path)
        assert oid == row.id
        assert (st.size, st.mtime_ns, st.ino) == (real.st_size, real.st_mtime_ns, real.st_ino)


async def test_what_never_arrives_is_written_from_the_store(
    repo: AsyncRepo, workdir: Path, tmp_path: Path
) -> None:
    """Chunks we already had are not fetched: finish() writes those files from the store."""
    big = random.Random(3).randbytes(2_000_000)
    write(workdir, "a.bin", big)
    write(workdir, "b.txt", b"local already")
    await repo.add(["."])
    await repo.commit("c")
    rows, chunk_ids, lengths = await plan_of(repo)
    a = next(r for r in rows if r.path == "a.bin")
    first = chunk_ids[a.id][0]
    dest = tmp_path / "clone"
    dest.mkdir()
    checkout = StreamingCheckout(dest, rows, chunk_ids, lengths)
    # only the first chunk of a.bin arrives; b.txt and the rest of a.bin never do
    checkout.on_chunk(first, (await repo.objects.read_blobs([first]))[first])
    written = await checkout.finish(repo.objects)
    assert (dest / "a.bin").read_bytes() == big
    assert (dest / "b.txt").read_bytes() == b"local already"
    assert sorted(p for p, _, _ in written) == ["a.bin", "b.txt"]


@pytest.mark.parametrize("bad", ["../escape.txt", "/abs.txt", ".oxen/config.toml", "a/../../x"])
def test_unsafe_paths_are_refused_and_nothing_is_written(tmp_path: Path, bad: str) -> None:
    dest = tmp_path / "clone"
    dest.mkdir()
    oid = b"\x01" * 32
    checkout = StreamingCheckout(
        dest, [FileRow(bad, oid, 3, None, 0o100644)], {oid: [oid]}, {oid: 3}
    )
    with pytest.raises(PathError):
        checkout.on_chunk(oid, b"bad")
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()
