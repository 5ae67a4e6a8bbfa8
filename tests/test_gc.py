"""`oxen gc`: what nothing reaches goes, everything reached stays, and a repository that
changes while gc runs loses nothing."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from oxen.repo import AsyncRepo
from oxen.verbs import gc as gc_mod
from oxen.verbs.gc import RepositoryChanged, gc
from tests.conftest import write


def blob(seed: int, size: int = 300_000) -> bytes:
    return random.Random(seed).randbytes(size)


async def test_a_deleted_branch_s_objects_go_and_everything_reached_stays(
    repo: AsyncRepo, workdir: Path
) -> None:
    write(workdir, "keep.bin", blob(1))
    await repo.add(["."])
    await repo.commit("main")
    await repo.create_branch("tmp")
    await repo.checkout("tmp")
    write(workdir, "tmp.bin", blob(2, 2_000_000))  # its own pack's worth
    await repo.add(["."])
    await repo.commit("tmp")
    await repo.checkout("main")
    await repo.delete_branch("tmp", force=True)
    write(workdir, "staged.bin", blob(3))
    await repo.add(["staged.bin"])  # staged, not committed: reached

    dry = await gc(repo, dry_run=True)
    assert dry.removed > 0 and dry.bytes_freed >= 2_000_000 and dry.dry_run
    report = await gc(repo)
    assert (report.removed, report.bytes_freed) == (dry.removed, dry.bytes_freed)
    assert (await repo.fsck()).problems == []
    await repo.commit("staged")
    assert (await gc(repo)).removed == 0  # nothing more to remove
    (workdir / "keep.bin").unlink()
    await repo.restore(["keep.bin"], source="HEAD")  # read back from the rewritten packs
    assert (workdir / "keep.bin").read_bytes() == blob(1)


async def test_gc_stops_when_the_repository_changes_under_it(
    repo: AsyncRepo, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(workdir, "a.bin", blob(4))
    await repo.add(["."])
    await repo.commit("a")
    await repo.create_branch("old")
    await repo.checkout("old")
    write(workdir, "old.bin", blob(5, 1_000_000))
    await repo.add(["."])
    old = await repo.commit("old")
    await repo.checkout("main")
    await repo.delete_branch("old", force=True)

    real = gc_mod._reached

    async def reached_then_moved(r: AsyncRepo, roots: tuple) -> set[bytes]:
        found = await real(r, roots)  # marked; then, before any pack goes, the branch is back
        assert await r.refs.set_if_equals("old", None, old)
        return found

    monkeypatch.setattr(gc_mod, "_reached", reached_then_moved)
    with pytest.raises(RepositoryChanged):
        await gc(repo)
    monkeypatch.setattr(gc_mod, "_reached", real)
    await repo.checkout("old")  # every byte of the branch brought back is still there
    assert (workdir / "old.bin").read_bytes() == blob(5, 1_000_000)
    assert (await repo.fsck()).problems == []


def test_gc_command(oxen: Callable, workdir: Path) -> None:
    oxen("init", check=True)
    write(workdir, "a.bin", blob(6))
    oxen("add", ".", check=True)
    oxen("commit", "-m", "a", check=True)
    write(workdir, "a.bin", blob(7))
    oxen("add", ".", check=True)
    oxen("commit", "-m", "a again", check=True)
    out = oxen("gc", "--dry-run", check=True).stdout
    assert out.startswith("would remove 0 of")  # the old version is history: reached
    report = json.loads(oxen("gc", "--json", check=True).stdout)
    assert report["removed"] == 0 and not report["dry_run"]
