"""Merges: fast-forward, clean three-way, conflicts that lose nothing, and --abort."""

from __future__ import annotations

from pathlib import Path

import pytest

from oxen.errors import DirtyWorkingTree, MergeConflict, OxenError
from oxen.repo import AsyncRepo
from tests.conftest import write


async def setup_base(repo: AsyncRepo, workdir: Path) -> bytes:
    write(workdir, "shared.csv", "id\n1\n")
    write(workdir, "left.txt", "left base")
    write(workdir, "right.txt", "right base")
    await repo.add(["."])
    return await repo.commit("base")


async def test_fast_forward(repo: AsyncRepo, workdir: Path) -> None:
    await setup_base(repo, workdir)
    await repo.checkout("feature", create=True)
    write(workdir, "new.txt", "new")
    await repo.add(["new.txt"])
    tip = await repo.commit("feature")
    await repo.checkout("main")
    result = await repo.merge("feature")
    assert result.kind == "fast-forward" and result.commit == tip
    assert (await repo.head())[1] == tip
    assert (workdir / "new.txt").read_text() == "new"
    assert (await repo.merge("feature")).kind == "up-to-date"


async def test_clean_three_way_merge(repo: AsyncRepo, workdir: Path) -> None:
    base = await setup_base(repo, workdir)
    await repo.checkout("feature", create=True)
    write(workdir, "right.txt", "right changed")
    write(workdir, "dir/added.txt", "theirs")
    await repo.add(["."])
    theirs = await repo.commit("theirs")
    await repo.checkout("main")
    write(workdir, "left.txt", "left changed")
    (workdir / "shared.csv").unlink()
    await repo.add(["."])
    ours = await repo.commit("ours")
    result = await repo.merge("feature")
    assert result.kind == "merged"
    merged = await repo.read_commit(result.commit)
    assert merged.parents == (ours, theirs)
    assert await repo.merge_base(ours, theirs) == base
    files = await repo.trees.flatten(merged.tree)
    assert sorted(files) == ["dir/added.txt", "left.txt", "right.txt"]
    assert (workdir / "right.txt").read_text() == "right changed"
    assert (workdir / "left.txt").read_text() == "left changed"
    assert (await repo.status()).clean


async def make_conflict(repo: AsyncRepo, workdir: Path) -> tuple[bytes, bytes]:
    await setup_base(repo, workdir)
    await repo.checkout("feature", create=True)
    write(workdir, "shared.csv", "id\n1\n2-theirs\n")
    write(workdir, "right.txt", "right changed")
    await repo.add(["."])
    theirs = await repo.commit("theirs")
    await repo.checkout("main")
    write(workdir, "shared.csv", "id\n1\n2-ours\n")
    await repo.add(["."])
    ours = await repo.commit("ours")
    return ours, theirs


async def test_conflict_keeps_both_sides_and_commit_resolves(
    repo: AsyncRepo, workdir: Path
) -> None:
    ours, theirs = await make_conflict(repo, workdir)
    with pytest.raises(MergeConflict) as info:
        await repo.merge("feature")
    assert info.value.paths == ["shared.csv"]
    assert (workdir / "shared.csv").read_text() == "id\n1\n2-ours\n"
    assert (workdir / "shared.csv.theirs").read_text() == "id\n1\n2-theirs\n"
    assert (workdir / "right.txt").read_text() == "right changed"
    st = await repo.status()
    assert st.merging and st.conflicts == ["shared.csv"]
    with pytest.raises(OxenError):
        await repo.commit("too early")
    write(workdir, "shared.csv", "id\n1\n2-ours\n2-theirs\n")
    await repo.add(["shared.csv"])
    merge_commit = await repo.commit("merged by hand")
    commit = await repo.read_commit(merge_commit)
    assert commit.parents == (ours, theirs)
    files = await repo.trees.flatten(commit.tree)
    assert sorted(files) == ["left.txt", "right.txt", "shared.csv"]
    assert not (workdir / "shared.csv.theirs").exists()
    st = await repo.status()
    assert st.clean and not st.merging and not st.untracked


async def test_merge_abort_restores_everything(repo: AsyncRepo, workdir: Path) -> None:
    ours, _ = await make_conflict(repo, workdir)
    with pytest.raises(MergeConflict):
        await repo.merge("feature")
    await repo.merge_abort()
    assert (workdir / "shared.csv").read_text() == "id\n1\n2-ours\n"
    assert (workdir / "right.txt").read_text() == "right base"
    assert not (workdir / "shared.csv.theirs").exists()
    st = await repo.status()
    assert st.clean and not st.merging and not st.untracked
    assert (await repo.head())[1] == ours
    with pytest.raises(OxenError):
        await repo.merge_abort()


async def test_merge_with_a_dirty_tree_is_refused(repo: AsyncRepo, workdir: Path) -> None:
    await make_conflict(repo, workdir)
    write(workdir, "left.txt", "uncommitted")
    with pytest.raises(DirtyWorkingTree):
        await repo.merge("feature")
    assert (workdir / "left.txt").read_text() == "uncommitted"
    assert not (await repo.status()).merging


async def test_modify_delete_conflict(repo: AsyncRepo, workdir: Path) -> None:
    await setup_base(repo, workdir)
    await repo.checkout("feature", create=True)
    (workdir / "left.txt").unlink()
    await repo.add(["left.txt"])
    await repo.commit("delete on feature")
    await repo.checkout("main")
    write(workdir, "left.txt", "modified on main")
    await repo.add(["left.txt"])
    await repo.commit("modify on main")
    with pytest.raises(MergeConflict) as info:
        await repo.merge("feature")
    assert info.value.paths == ["left.txt"]
    assert (workdir / "left.txt").read_text() == "modified on main"
    await repo.rm(["left.txt"])
    commit = await repo.read_commit(await repo.commit("take the delete"))
    assert "left.txt" not in await repo.trees.flatten(commit.tree)
