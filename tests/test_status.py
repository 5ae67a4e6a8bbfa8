"""status: correct answers, no re-hashing of unchanged files, and the racy-timestamp case."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

import oxen.worktree.status as status_mod
from oxen.repo import AsyncRepo
from oxen.worktree.status import compute_status
from oxen.worktree.status_index import SELECT_TOKEN, SNAPSHOT_NAME
from tests.conftest import write


@pytest.fixture
def hash_counter(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = status_mod._file_hasher

    def hasher(oxen_dir: str) -> Callable[[str], bytes]:
        file_id_of = real(oxen_dir)

        def counting(path: str) -> bytes:
            calls.append(path)
            return file_id_of(path)

        return counting

    monkeypatch.setattr(status_mod, "_file_hasher", hasher)
    return calls


async def test_unchanged_tree_rehashes_nothing(
    repo: AsyncRepo, workdir: Path, hash_counter: list[str]
) -> None:
    for i in range(200):
        write(workdir, f"d{i % 4}/f{i}", f"file {i}")
    await repo.add(["."])
    await repo.commit("base")
    # whatever was racy right after writing has been refreshed by now
    compute_status(workdir)
    hash_counter.clear()
    st = compute_status(workdir)
    assert st.clean and not st.untracked
    assert hash_counter == []
    write(workdir, "d1/f1", "changed!")
    st = compute_status(workdir)
    assert st.modified == ["d1/f1"]
    assert len(hash_counter) == 1


async def test_change_in_the_same_timestamp_is_seen(repo: AsyncRepo, workdir: Path) -> None:
    path = write(workdir, "a.bin", b"A" * 1000)
    before = path.stat()
    await repo.add(["a.bin"])
    # rewrite with the same size and put the old mtime back: only ctime/racy logic can tell
    path.write_bytes(b"B" * 1000)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    st = compute_status(workdir)
    assert st.modified == ["a.bin"]


async def test_racy_entries_are_rehashed(
    repo: AsyncRepo, workdir: Path, hash_counter: list[str]
) -> None:
    """A cache entry whose file's mtime is not older than the hashing time is never trusted."""
    path = write(workdir, "future.bin", b"x" * 100)
    future = path.stat().st_mtime_ns + 3600 * 10**9
    os.utime(path, ns=(future, future))
    await repo.add(["future.bin"])
    rows = await repo.db.stat_rows(["future.bin"])
    assert rows["future.bin"].racy == 1
    hash_counter.clear()
    # same stat as recorded, but the entry is racy: status must look at the bytes
    st = compute_status(workdir)
    assert hash_counter and st.staged_added == ["future.bin"] and not st.modified


async def test_status_sections(repo: AsyncRepo, workdir: Path) -> None:
    write(workdir, "tracked", "1")
    write(workdir, "gone", "2")
    write(workdir, "staged-mod", "3")
    await repo.add(["."])
    await repo.commit("base")
    write(workdir, "tracked", "changed")
    (workdir / "gone").unlink()
    write(workdir, "staged-mod", "changed")
    await repo.add(["staged-mod"])
    write(workdir, "new", "untracked")
    write(workdir, "staged-new", "x")
    await repo.add(["staged-new"])
    st = compute_status(workdir)
    assert st.modified == ["tracked"]
    assert st.removed == ["gone"]
    assert st.staged_modified == ["staged-mod"]
    assert st.staged_added == ["staged-new"]
    assert st.untracked == ["new"]
    assert st.branch == "main" and st.head is not None
    sub = compute_status(workdir, "tracked")
    assert sub.modified == ["tracked"] and sub.untracked == []


def as_tuple(st: status_mod.Status) -> tuple:
    return (st.as_dict(), st.current)


async def make_dirty_tree(repo: AsyncRepo, workdir: Path) -> None:
    """Every section of status filled in, over several directories."""
    for i in range(120):
        write(workdir, f"d{i % 3}/sub{i % 2}/f{i}", f"file {i}")
    await repo.add(["."])
    await repo.commit("base")
    write(workdir, "d0/sub0/f0", "modified")
    (workdir / "d1/sub1/f1").unlink()
    write(workdir, "d2/new", "untracked")
    write(workdir, "d2/sub0/f2", "staged change")
    await repo.add(["d2/sub0/f2"])
    write(workdir, "staged-new", "x")
    await repo.add(["staged-new"])


async def test_snapshot_is_used_while_valid_and_dropped_on_any_change(
    repo: AsyncRepo, workdir: Path
) -> None:
    await make_dirty_tree(repo, workdir)
    first = compute_status(workdir)
    snapshot = workdir / ".oxen" / SNAPSHOT_NAME
    assert snapshot.is_file()
    assert as_tuple(compute_status(workdir)) == as_tuple(first)

    # a change through the core: the token goes, and status sees the new state
    await repo.add(["d0/sub0/f0"])
    st = compute_status(workdir)
    assert "d0/sub0/f0" in st.staged_modified and "d0/sub0/f0" not in st.modified

    # a change by any other writer is caught too (the triggers are in the database)
    conn = sqlite3.connect(workdir / ".oxen" / "oxen.db", isolation_level=None)
    try:
        assert conn.execute(SELECT_TOKEN).fetchone() is not None
        conn.execute("DELETE FROM staged WHERE path = 'staged-new'")
        assert conn.execute(SELECT_TOKEN).fetchone() is None
    finally:
        conn.close()
    st = compute_status(workdir)
    assert "staged-new" not in st.staged_added and "staged-new" in st.untracked

    # a snapshot that does not match the database's token is never trusted
    snapshot.write_bytes(b"\x93garbage")
    assert as_tuple(compute_status(workdir)) == as_tuple(st)


async def test_refresh_keeps_the_snapshot_in_step(
    repo: AsyncRepo, workdir: Path, hash_counter: list[str]
) -> None:
    await make_dirty_tree(repo, workdir)
    compute_status(workdir)
    write(workdir, "d1/sub0/f4", "changed after the snapshot")
    st = compute_status(workdir)  # hashes it, records its stat, rewrites the snapshot
    assert "d1/sub0/f4" in st.modified
    hash_counter.clear()
    again = compute_status(workdir)
    assert as_tuple(again) == as_tuple(st)
    assert "d1/sub0/f4" in again.modified
    assert not any(p.endswith("d1/sub0/f4") for p in hash_counter)  # known from the cache


@pytest.fixture
async def serial_answer(
    repo: AsyncRepo, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> status_mod.Status:
    """A dirty tree's status from one process; from here on, trees of 10 files fork."""
    await make_dirty_tree(repo, workdir)
    serial = compute_status(workdir)
    monkeypatch.setattr(status_mod, "PARALLEL_MIN", 10)
    return serial


async def test_parallel_walk_gives_the_same_answer(
    serial_answer: status_mod.Status, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = serial_answer
    forks: list[int] = []
    real_fork = os.fork

    def counting_fork() -> int:
        forks.append(1)
        return real_fork()

    monkeypatch.setattr(os, "fork", counting_fork)
    assert as_tuple(compute_status(workdir, parallel=True)) == as_tuple(serial)
    assert forks == [1]
    for prefix in ("d1", "d0/sub0/f0"):
        assert as_tuple(compute_status(workdir, prefix, parallel=True)) == as_tuple(
            compute_status(workdir, prefix)
        )


async def test_parallel_walk_survives_a_failed_helper(
    serial_answer: status_mod.Status, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = serial_answer

    def broken(names: list, rows: dict) -> bytes:
        raise RuntimeError("helper died")

    monkeypatch.setattr(status_mod, "_compare_part", broken)
    assert as_tuple(compute_status(workdir, parallel=True)) == as_tuple(serial)
