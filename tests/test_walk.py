"""The one graph walker (children of each node kind, select/prepare per level), the
commit-graph walks over it, and the one step that applies a tree change."""

from __future__ import annotations

from pathlib import Path

import pytest

from oxen.errors import DirtyWorkingTree
from oxen.formats.nodes import (
    ChunkIndex,
    ChunkList,
    CommitNode,
    DirEntry,
    DirNode,
    FileEntry,
    VNode,
)
from oxen.repo import AsyncRepo
from oxen.trees import history
from oxen.trees.walk import Follow, children, reachable, walk_levels
from oxen.verbs.checkout import Record, apply_tree_change
from tests.conftest import write

X, Y, Z = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32


def test_children_of_each_kind_follow_only_the_edges_asked_for() -> None:
    commit = CommitNode(X, (Y, Z), "a", "a@b", 0, 0, "m")
    assert children(commit, Follow.ALL) == ([X, Y, Z], [])
    assert children(commit, Follow.PARENTS) == ([Y, Z], [])
    assert children(commit, Follow.TREES) == ([X], [])
    assert children(DirNode((X, Y), 0, 0, 0), Follow.PARENTS) == ([], [])
    vnode = VNode((DirEntry("d", X, 1, 1), FileEntry("f", Y, 1), FileEntry("g", Z, 9, X)))
    assert children(vnode, Follow.ALL) == ([X, X], [Y])
    assert children(vnode, Follow.TREES) == ([X], [Y])
    assert children(ChunkList((X, Y), (1, 2)), Follow.TREES) == ([], [X, Y])
    assert children(ChunkIndex((Y, Z), (3, 4), (1, 1)), Follow.ALL) == ([Y, Z], [])
    assert children(ChunkIndex((Y, Z), (3, 4), (1, 1)), Follow.TREES) == ([], [])


async def _history(repo: AsyncRepo, workdir: Path) -> dict[str, bytes]:
    """main: c1 - c2 - c4 (merge of c3); side: c1 - c3."""
    write(workdir, "a/one.txt", "1")
    await repo.add(["."])
    c1 = await repo.commit("c1")
    await repo.checkout("side", create=True)
    write(workdir, "b.txt", "side")
    await repo.add(["."])
    c3 = await repo.commit("c3")
    await repo.checkout("main")
    write(workdir, "a/two.bin", bytes(range(256)) * 2000)  # several chunks: a chunk list
    await repo.add(["."])
    c2 = await repo.commit("c2")
    c4 = (await repo.merge("side")).commit
    assert c4 is not None
    return {"c1": c1, "c2": c2, "c3": c3, "c4": c4}


async def test_walks_of_the_commit_graph(repo: AsyncRepo, workdir: Path) -> None:
    c = await _history(repo, workdir)
    objects = repo.objects
    assert set(await history.ancestors(objects, [c["c4"]])) == set(c.values())
    assert await history.ancestors(objects, [c["c4"]], stop=[c["c2"], c["c3"]]) == [c["c4"]]
    assert await history.is_ancestor(objects, c["c3"], c["c4"])
    assert not await history.is_ancestor(objects, c["c2"], c["c3"])
    assert await history.merge_base(objects, c["c2"], c["c3"]) == c["c1"]
    order = [cid async for cid, _ in history.newest_first(objects, c["c4"])]
    assert order[0] == c["c4"] and order[-1] == c["c1"] and len(order) == 4


async def test_reachability_and_selective_descent(repo: AsyncRepo, workdir: Path) -> None:
    c = await _history(repo, workdir)
    everything = await reachable(repo.objects, [c["c4"]])
    tip_only = await reachable(repo.objects, [c["c4"]], history=False)
    assert everything.commits == set(c.values()) and tip_only.commits == {c["c4"]}
    assert tip_only.nodes < everything.nodes and tip_only.chunks <= everything.chunks
    assert await repo.db.missing(everything.nodes | everything.chunks) == set()

    # select keeps only the root tree: the walk stops below it
    root = (await repo.read_commit(c["c4"])).tree
    seen: list[list[bytes]] = []

    async def only_root(level: list[bytes]) -> list[bytes]:
        seen.append(level)
        return [oid for oid in level if oid == root]

    levels = [lvl async for lvl in walk_levels(repo.objects, [root], Follow.ALL, select=only_root)]
    assert [lvl.ids for lvl in levels] == [[root], []] and len(seen) == 2

    prepared: list[list[bytes]] = []

    async def note(level: list[bytes]) -> None:
        prepared.append(level)

    walked = [lvl async for lvl in walk_levels(repo.objects, [c["c1"]], Follow.ALL, prepare=note)]
    assert prepared == [lvl.ids for lvl in walked]


async def test_a_tree_change_is_refused_whole_or_recorded_whole(
    repo: AsyncRepo, workdir: Path
) -> None:
    c = await _history(repo, workdir)
    old = (await repo.read_commit(c["c1"])).tree
    new = (await repo.read_commit(c["c4"])).tree
    changes = await repo.trees.diff(new, old)  # back to c1: two files go away
    assert {p for p, ch in changes.items() if ch.new is None} == {"a/two.bin", "b.txt"}

    write(workdir, "b.txt", "edited")  # uncommitted work on a path the change touches
    with pytest.raises(DirtyWorkingTree, match="b.txt"):
        await apply_tree_change(repo, changes)
    assert (workdir / "b.txt").read_text() == "edited" and (workdir / "a/two.bin").exists()
    await repo.restore(["b.txt"])

    class Stop(Exception):
        pass

    async def fail() -> None:
        raise Stop

    with pytest.raises(Stop):  # what runs inside the recording transaction rolls it back too
        await apply_tree_change(repo, changes, then=fail)
    assert set(await repo.db.head_files()) == {"a/one.txt", "a/two.bin", "b.txt"}

    await apply_tree_change(repo, changes, force=True, record=Record.STAGE)
    assert set(await repo.db.staged()) == {"a/two.bin", "b.txt"}
    assert not (workdir / "b.txt").exists()
