"""Remembered directory listings: an unchanged directory is not read again, and any
change to a directory's entries (or one in the same timestamp tick) is still seen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from oxen.repo import AsyncRepo
from oxen.worktree.listings import CACHE_NAME, Listings
from oxen.worktree.paths import iter_file_names
from oxen.worktree.status import compute_status
from tests.conftest import write


def _walk(root: Path, clock: int) -> tuple[set[str], Listings]:
    oxen_dir = root / ".oxen"
    oxen_dir.mkdir(exist_ok=True)
    listings = Listings(str(oxen_dir), clock)
    names = {rel for rel, _ in iter_file_names(root, "", listings)}
    listings.save()
    return names, listings


# A clock past every timestamp of the test: listings may be kept (a directory's ctime is
# "now" and could share the clock's tick; the test of that case sets its clocks itself).
LATER = 2**62


def test_unchanged_directories_are_not_read_again(tmp_path: Path) -> None:
    (tmp_path / ".oxen").mkdir()
    for i in range(5):
        write(tmp_path, f"a/b/f{i}", "x")
    first, listings = _walk(tmp_path, LATER)
    assert listings.reread == 3  # root, a, a/b
    again, listings = _walk(tmp_path, LATER)
    assert again == first == {f"a/b/f{i}" for i in range(5)}
    assert listings.reread == 0


def test_new_removed_and_renamed_entries_are_seen(tmp_path: Path) -> None:
    (tmp_path / ".oxen").mkdir()
    write(tmp_path, "a/keep", "x")
    write(tmp_path, "a/old", "x")
    _walk(tmp_path, LATER)
    (tmp_path / "a/old").rename(tmp_path / "a/new")
    write(tmp_path, "a/sub/deep", "x")
    names, listings = _walk(tmp_path, LATER)
    assert names == {"a/keep", "a/new", "a/sub/deep"}
    assert listings.reread == 2  # a (changed) and a/sub (new); the root was unchanged


def test_a_directory_changed_in_the_clock_tick_is_not_trusted(tmp_path: Path) -> None:
    """A listing is kept only if the directory's mtime is older than the clock read
    before it was listed: a later change in the same tick would leave the mtime equal."""
    (tmp_path / ".oxen").mkdir()
    write(tmp_path, "a/f", "x")
    mtime = (tmp_path / "a").stat().st_mtime_ns
    _, listings = _walk(tmp_path, clock=mtime)  # the clock has not moved past a's mtime
    assert "a/" not in listings.new or listings.new["a/"][1] is None
    write(tmp_path, "a/g", "x")
    os.utime(tmp_path / "a", ns=(mtime, mtime))  # same tick: the mtime did not change
    names, _ = _walk(tmp_path, clock=mtime + 1)
    assert names == {"a/f", "a/g"}


@pytest.mark.parametrize("garbage", [b"", b"\x00\x01garbage", b"\xe3" * 10])
def test_an_unreadable_cache_is_ignored(tmp_path: Path, garbage: bytes) -> None:
    write(tmp_path, "a/f", "x")
    (tmp_path / ".oxen").mkdir()
    (tmp_path / ".oxen" / CACHE_NAME).write_bytes(garbage)
    names, _ = _walk(tmp_path, LATER)
    assert names == {"a/f"}


async def test_status_with_remembered_listings(repo: AsyncRepo, workdir: Path) -> None:
    for i in range(30):
        write(workdir, f"d{i % 3}/f{i}", f"file {i}")
    await repo.add(["."])
    await repo.commit("base")
    assert compute_status(workdir).clean
    assert (workdir / ".oxen" / CACHE_NAME).exists()
    (workdir / "d1" / "f1").unlink()
    write(workdir, "d2/extra", "new")
    write(workdir, "d3/more", "new")
    for current in (True, False):
        st = compute_status(workdir, current=current)
        assert st.removed == ["d1/f1"]
        assert st.untracked == ["d2/extra", "d3/more"]
        assert not st.modified
        assert len(st.current) == (29 if current else 0)


def test_a_walk_below_a_prefix_keeps_the_other_listings(tmp_path: Path) -> None:
    (tmp_path / ".oxen").mkdir()
    write(tmp_path, "a/f", "x")
    write(tmp_path, "b/g", "x")
    _walk(tmp_path, LATER)
    write(tmp_path, "a/new", "x")
    oxen_dir = str(tmp_path / ".oxen")
    part = Listings(oxen_dir, LATER, "a")
    assert {rel for rel, _ in iter_file_names(tmp_path, "a", part)} == {"a/f", "a/new"}
    assert part.reread == 1
    part.save()
    names, listings = _walk(tmp_path, LATER)
    assert names == {"a/f", "a/new", "b/g"}
    assert listings.reread == 0  # a/ from the walk below the prefix, the root and b/ kept


def test_an_mtime_put_back_is_caught_by_the_ctime(tmp_path: Path) -> None:
    (tmp_path / ".oxen").mkdir()
    write(tmp_path, "a/f", "x")
    _walk(tmp_path, LATER)
    before = (tmp_path / "a").stat()
    write(tmp_path, "a/g", "x")
    os.utime(tmp_path / "a", ns=(before.st_atime_ns, before.st_mtime_ns))  # as tar -x does
    names, _ = _walk(tmp_path, LATER)
    assert names == {"a/f", "a/g"}
