"""status: correct answers, no re-hashing of unchanged files, and the racy-timestamp case."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import oxen.status as status_mod
from oxen.repo import AsyncRepo
from oxen.status import compute_status
from tests.conftest import write


@pytest.fixture
def hash_counter(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = status_mod.hash_file

    def counting(path: str) -> bytes:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(status_mod, "hash_file", counting)
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
