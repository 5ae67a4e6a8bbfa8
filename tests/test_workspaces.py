"""Workspaces on the server side (no HTTP): staging checked against the store, commits
onto a branch that moved, conflicts that keep the workspace, expiry, racing changes."""

from __future__ import annotations

import asyncio
import itertools
import random
from pathlib import Path

import pytest

from oxen.db.rows import FileRow
from oxen.errors import InvalidInput, MergeConflict, NotFound, RefConflict
from oxen.formats.nodes import CommitNode
from oxen.repo import AsyncRepo
from oxen.serving.registry import RepoRegistry
from oxen.serving.served_repo import ServedRepo
from oxen.serving.workspaces import Workspaces
from oxen.storage.local import LocalStore
from oxen.sync.push import push, send_objects
from tests.conftest import write
from tests.test_serving import InProcessRemote, commit_files

AUTHOR = ("Ada", "ada@example.com")
_SIDES = itertools.count()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def served(tmp_path: Path):
    registry = RepoRegistry(LocalStore(tmp_path / "bucket"), tmp_path / "cache")
    await registry.create("ns", "ws")
    async with registry.use("ns", "ws") as repo:
        yield repo
    await registry.close()


async def files_of(served: ServedRepo, commit: bytes) -> dict[str, bytes]:
    node = await served.objects.read_node(commit)
    assert isinstance(node, CommitNode)
    return {p: r.id for p, r in (await served.trees.flatten(node.tree)).items()}  # type: ignore[misc]


async def staged_rows(
    repo: AsyncRepo, served: ServedRepo, files: dict[str, bytes]
) -> list[FileRow]:
    """Entries of ``files`` whose objects the server holds (sent on a side branch here;
    no branch moves there)."""
    branch = (await repo.head()).branch
    assert branch is not None
    side = f"side-{next(_SIDES)}"
    await repo.create_branch(side)
    await repo.checkout(side)
    for path, data in files.items():
        write(repo.root, path, data)
    await repo.add(["."])
    commit = await repo.commit("side")
    await send_objects(repo, InProcessRemote(served), commit)
    rows = await repo.trees.subtree_files((await repo.read_commit(commit)).tree, "")
    await repo.checkout(branch)
    return [rows[p] for p in files]


async def test_stage_and_commit_onto_the_branch(repo: AsyncRepo, workdir: Path, served) -> None:
    base = await commit_files(repo, workdir, {"a.txt": "a", "keep/b.txt": "b"}, "base")
    await push(repo, InProcessRemote(served), "origin", "main")
    spaces = Workspaces(served)
    ws = await spaces.create("main", "ada@example.com", name="mine")
    big = random.Random(1).randbytes(400_000)  # several chunks: a chunk list
    rows = await staged_rows(repo, served, {"new/big.bin": big, "a.txt": b"changed"})
    await spaces.stage("mine", rows)
    await spaces.remove(ws.id, ["keep"])
    status = await spaces.status("mine")
    assert (status["added"], status["modified"], status["removed"]) == (
        ["new/big.bin"],
        ["a.txt"],
        ["keep/b.txt"],
    )
    listing = await spaces.listing("mine", "")
    assert [(e["name"], e["type"]) for e in listing["entries"]] == [
        ("a.txt", "file"),
        ("new", "dir"),
    ]
    cid = await spaces.commit("mine", "from the workspace", AUTHOR)
    assert (await served.refs())["main"] == cid
    node = await served.objects.read_node(cid)
    assert isinstance(node, CommitNode) and node.parents == (base,) and node.author == "Ada"
    assert set(await files_of(served, cid)) == {"a.txt", "new/big.bin"}
    after = await spaces.get("mine")  # empty, and starting from its commit
    assert after.changes == {} and after.base == cid


async def test_a_moved_branch_gets_the_commit_on_top_unless_paths_overlap(
    repo: AsyncRepo, workdir: Path, served
) -> None:
    await commit_files(repo, workdir, {"a.txt": "a", "b.txt": "b"}, "base")
    await push(repo, InProcessRemote(served), "origin", "main")
    spaces = Workspaces(served)
    ws = await spaces.create("main", "ada@example.com")
    await spaces.stage(ws.id, await staged_rows(repo, served, {"b.txt": b"from ws"}))
    moved = await commit_files(repo, workdir, {"a.txt": "moved"}, "someone else")
    await push(repo, InProcessRemote(served), "origin", "main")
    assert (await spaces.status(ws.id))["branch_moved"]
    cid = await spaces.commit(ws.id, "on top", AUTHOR)
    node = await served.objects.read_node(cid)
    assert isinstance(node, CommitNode) and node.parents == (moved,)
    files = await files_of(served, cid)
    assert files["a.txt"] == (await files_of(served, moved))["a.txt"]

    # the branch moves again (another workspace's commit) at a path this one stages too:
    # refused, naming it; nothing is committed and the workspace keeps its changes
    await spaces.stage(ws.id, await staged_rows(repo, served, {"a.txt": b"ws version"}))
    other = await spaces.create("main", "bob@example.com")
    await spaces.stage(other.id, await staged_rows(repo, served, {"a.txt": b"bob's"}))
    theirs = await spaces.commit(other.id, "bob", ("Bob", "bob@example.com"))
    with pytest.raises(MergeConflict) as refused:
        await spaces.commit(ws.id, "overlaps", AUTHOR)
    assert refused.value.paths == ["a.txt"]
    assert (await served.refs())["main"] == theirs
    assert list((await spaces.get(ws.id)).changes) == ["a.txt"]
    await spaces.unstage(ws.id, ["a.txt"])
    with pytest.raises(InvalidInput, match="nothing to commit"):
        await spaces.commit(ws.id, "empty", AUTHOR)


async def test_staging_is_checked_against_the_store(repo: AsyncRepo, workdir: Path, served) -> None:
    await commit_files(repo, workdir, {"dir/a.txt": "a"}, "base")
    await push(repo, InProcessRemote(served), "origin", "main")
    spaces = Workspaces(served)
    ws = await spaces.create("main", "ada@example.com")
    big = random.Random(2).randbytes(300_000)
    (row,) = await staged_rows(repo, served, {"x.bin": big})
    unknown = FileRow("y.bin", bytes(32), 5, None, 0o100644)
    with pytest.raises(InvalidInput, match="not stored"):
        await spaces.stage(ws.id, [unknown])
    with pytest.raises(InvalidInput, match="does not match"):
        await spaces.stage(ws.id, [row._replace(id=bytes(32))])
    with pytest.raises(InvalidInput, match="does not match"):
        await spaces.stage(ws.id, [row._replace(size=row.size + 1)])
    with pytest.raises(InvalidInput):  # a file where the branch has a folder
        await spaces.stage(ws.id, [row._replace(path="dir")])
    with pytest.raises(NotFound):
        await spaces.remove(ws.id, ["no/such/file"])
    with pytest.raises(NotFound):
        await spaces.create("no-such-branch", "ada@example.com")
    assert (await spaces.get(ws.id)).changes == {}


async def test_racing_changes_to_one_workspace_are_all_kept(
    repo: AsyncRepo, workdir: Path, served
) -> None:
    await commit_files(repo, workdir, {"a.txt": "a"}, "base")
    await push(repo, InProcessRemote(served), "origin", "main")
    spaces = Workspaces(served)
    ws = await spaces.create("main", "ada@example.com")
    rows = await staged_rows(repo, served, {f"f{i}.txt": f"{i}".encode() for i in range(8)})
    await asyncio.gather(*(spaces.stage(ws.id, [r]) for r in rows))
    assert sorted((await spaces.get(ws.id)).changes) == sorted(r.path for r in rows)


async def test_idle_workspaces_expire(repo: AsyncRepo, workdir: Path, served) -> None:
    await commit_files(repo, workdir, {"a.txt": "a"}, "base")
    await push(repo, InProcessRemote(served), "origin", "main")
    clock = Clock()
    spaces = Workspaces(served, idle=3600, clock=clock)
    old = await spaces.create("main", "ada@example.com", name="old")
    clock.now += 1800
    young = await spaces.create("main", "ada@example.com", name="young")
    clock.now += 1801  # old: idle 3601 s; young: 1801 s
    assert [w.id for w in await spaces.list()] == [young.id]
    with pytest.raises(NotFound):
        await spaces.get(old.id)
    with pytest.raises(NotFound):
        await spaces.get("old")
    await spaces.unstage("young", ["anything"])  # a change keeps it alive
    clock.now += 3000
    assert [w.id for w in await spaces.list()] == [young.id]
    await spaces.delete("young")
    assert await spaces.list() == []


async def test_a_name_goes_to_one_workspace_and_is_free_again_once_it_is_gone(
    repo: AsyncRepo, workdir: Path, served
) -> None:
    await commit_files(repo, workdir, {"a.txt": "a"}, "base")
    await push(repo, InProcessRemote(served), "origin", "main")
    clock = Clock()
    spaces = Workspaces(served, idle=60, clock=clock)
    results = await asyncio.gather(
        *(spaces.create("main", f"u{i}@example.com", name="shared") for i in range(6)),
        return_exceptions=True,
    )
    made = [r for r in results if not isinstance(r, BaseException)]
    assert len(made) == 1 and all(isinstance(r, RefConflict) for r in results if r not in made)
    assert (await spaces.get("shared")).id == made[0].id
    await spaces.delete("shared")
    again = await spaces.create("main", "ada@example.com", name="shared")  # free once deleted
    clock.now += 61
    later = await spaces.create("main", "bob@example.com", name="shared")  # and once expired
    assert later.id != again.id and (await spaces.get("shared")).owner == "bob@example.com"
