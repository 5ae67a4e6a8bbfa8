"""Incremental tree building: only touched VNodes are rewritten; diffs descend only where ids differ."""

from __future__ import annotations

import random

import pytest

from oxen.db.rows import FileRow
from oxen.errors import PathError
from oxen.formats.ids import hash_bytes
from oxen.formats.nodes import DirNode, VNode, decode_node
from oxen.repo import AsyncRepo
from oxen.trees.tree import Trees


def row(path: str, content: str) -> FileRow:
    data = content.encode()
    return FileRow(path, hash_bytes(data), len(data), None, 0o644)


async def build(
    trees: Trees, base: bytes | None, changes: dict[str, FileRow | None]
) -> tuple[bytes, int]:
    tree, nodes = await trees.apply(base, changes)
    await trees.objects.write_nodes(nodes)
    return tree, len(nodes)


async def test_flatten_round_trip(repo: AsyncRepo) -> None:
    trees = Trees(repo.objects, vnode_size=4)
    files = {
        f"d{i % 3}/sub{i % 2}/f{i}.txt": row(f"d{i % 3}/sub{i % 2}/f{i}.txt", str(i))
        for i in range(60)
    }
    files["top.txt"] = row("top.txt", "top")
    tree, _ = await build(trees, None, files)
    assert await trees.flatten(tree) == files
    root = await trees.dir_node(tree)
    assert root.count == 61 and root.size == sum(r.size for r in files.values())


async def test_same_content_same_tree_id_in_any_order(repo: AsyncRepo) -> None:
    trees = Trees(repo.objects, vnode_size=4)
    files = [row(f"a/{i}", str(i)) for i in range(30)]
    t1, _ = await build(trees, None, {r.path: r for r in files})
    t2, _ = await build(trees, None, {r.path: r for r in reversed(files[:10])})
    t2, _ = await build(trees, t2, {r.path: r for r in files[10:]})
    assert t1 == t2


async def test_adding_one_file_rewrites_one_vnode_per_level(repo: AsyncRepo) -> None:
    trees = Trees(repo.objects, vnode_size=100)
    files = {f"big/f{i:04d}": row(f"big/f{i:04d}", str(i)) for i in range(1000)}
    tree, _ = await build(trees, None, files)
    big = (await trees.dir_node(tree)).vnodes
    root_vnode = decode_node((await repo.objects.read_blobs(big))[big[0]])
    assert isinstance(root_vnode, VNode)
    bigdir = await trees.dir_node(root_vnode.entries[0].id)
    assert len(bigdir.vnodes) == 16  # 1000 entries at <=100 each -> 16 buckets
    tree2, created = await build(trees, tree, {"big/new": row("big/new", "new")})
    # one vnode + dir node for big/, one vnode + dir node for the root
    assert created == 4
    assert await trees.flatten(tree2) == {**files, "big/new": row("big/new", "new")}


async def test_growing_past_a_bucket_boundary_rebuckets(repo: AsyncRepo) -> None:
    trees = Trees(repo.objects, vnode_size=8)
    files = {f"f{i}": row(f"f{i}", str(i)) for i in range(8)}
    tree, _ = await build(trees, None, files)
    assert len((await trees.dir_node(tree)).vnodes) == 1
    more = {f"g{i}": row(f"g{i}", str(i)) for i in range(20)}
    tree2, _ = await build(trees, tree, more)
    assert len((await trees.dir_node(tree2)).vnodes) == 4
    assert await trees.flatten(tree2) == {**files, **more}
    tree3, _ = await build(trees, tree2, {p: None for p in more})
    assert await trees.flatten(tree3) == files
    assert tree3 == tree


async def test_removing_everything_in_a_dir_removes_the_dir(repo: AsyncRepo) -> None:
    trees = Trees(repo.objects, vnode_size=8)
    tree, _ = await build(trees, None, {"a/b/c": row("a/b/c", "1"), "x": row("x", "2")})
    tree2, _ = await build(trees, tree, {"a/b/c": None})
    assert await trees.flatten(tree2) == {"x": row("x", "2")}
    assert await trees.lookup(tree2, "a") is None


async def test_file_and_directory_swap(repo: AsyncRepo) -> None:
    trees = Trees(repo.objects, vnode_size=8)
    tree, _ = await build(trees, None, {"a": row("a", "file")})
    tree2, _ = await build(trees, tree, {"a": None, "a/inner": row("a/inner", "x")})
    assert await trees.flatten(tree2) == {"a/inner": row("a/inner", "x")}
    tree3, _ = await build(trees, tree2, {"a/inner": None, "a": row("a", "again")})
    assert await trees.flatten(tree3) == {"a": row("a", "again")}
    with pytest.raises(PathError):
        await trees.apply(tree3, {"a/under-a-file": row("a/under-a-file", "y")})


async def test_diff_matches_flat_comparison(repo: AsyncRepo) -> None:
    trees = Trees(repo.objects, vnode_size=4)
    rng = random.Random(5)
    files = {f"d{rng.randrange(4)}/f{i}": None for i in range(80)}
    base = {p: row(p, p) for p in files}
    t1, _ = await build(trees, None, base)
    changes: dict[str, FileRow | None] = {}
    for p in rng.sample(sorted(base), 20):
        changes[p] = None if rng.random() < 0.5 else row(p, p + "!")
    for i in range(5):
        changes[f"new{i}/x"] = row(f"new{i}/x", "n")
    t2, _ = await build(trees, t1, changes)
    diff = await trees.diff(t1, t2)
    after = await trees.flatten(t2)
    expected = {
        p: (base.get(p), after.get(p))
        for p in base.keys() | after.keys()
        if base.get(p) != after.get(p)
    }
    assert diff == expected
    assert await trees.diff(t1, t1) == {}


async def test_lookup(repo: AsyncRepo) -> None:
    trees = Trees(repo.objects, vnode_size=2)
    tree, _ = await build(trees, None, {f"a/b/f{i}": row(f"a/b/f{i}", str(i)) for i in range(10)})
    entry = await trees.lookup(tree, "a/b/f3")
    assert entry is not None and entry.id == hash_bytes(b"3")
    assert await trees.lookup(tree, "a/b/nope") is None
    assert await trees.lookup(tree, "a/b/f3/deeper") is None
    node = await trees.dir_node(tree)
    assert isinstance(node, DirNode)
