"""The async core end to end on a local repository: staging, commits, dedup, checkout, diff."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from oxen.errors import DirtyWorkingTree, NothingToCommit, OxenError, PathError, RefError
from oxen.formats.packs import Kind
from oxen.repo import AsyncRepo
from tests.conftest import write


def store_bytes(repo: AsyncRepo) -> int:
    packs = repo.oxen_dir / "objects" / "packs"
    return sum(f.stat().st_size for f in packs.rglob("*.pack"))


async def chunk_count(repo: AsyncRepo) -> int:
    return await repo.db.count_objects(Kind.CHUNK)


async def test_add_commit_log(repo: AsyncRepo, workdir: Path) -> None:
    write(workdir, "a.txt", "hello")
    write(workdir, "d/b.bin", os.urandom(300_000))
    await repo.add(["."])
    st = await repo.status()
    assert st.staged_added == ["a.txt", "d/b.bin"]
    c1 = await repo.commit("first")
    st = await repo.status()
    assert st.clean and not st.untracked
    write(workdir, "a.txt", "hello again")
    await repo.add(["a.txt"])
    c2 = await repo.commit("second")
    log = await repo.log()
    assert [c.id for c in log] == [c2, c1]
    assert log[0].parents == (c1,) and log[0].author == "Test User"
    assert await repo.resolve("HEAD~1") == c1
    assert await repo.resolve(c1.hex()[:8]) == c1


async def test_nothing_to_commit(repo: AsyncRepo, workdir: Path) -> None:
    with pytest.raises(NothingToCommit):
        await repo.commit("empty")
    write(workdir, "a", "1")
    await repo.add(["a"])
    await repo.commit("one")
    await repo.add(["a"])  # unchanged: stages nothing
    with pytest.raises(NothingToCommit):
        await repo.commit("again")


async def test_same_bytes_under_another_name_are_stored_once(
    repo: AsyncRepo, workdir: Path
) -> None:
    data = os.urandom(1_000_000)
    write(workdir, "one.bin", data)
    await repo.add(["."])
    await repo.commit("one")
    before, chunks = store_bytes(repo), await chunk_count(repo)
    write(workdir, "copy/two.bin", data)
    await repo.add(["."])
    await repo.commit("copy")
    assert await chunk_count(repo) == chunks
    assert store_bytes(repo) - before < 10_000  # only new nodes


async def test_same_bytes_on_another_branch_are_stored_once(repo: AsyncRepo, workdir: Path) -> None:
    data = os.urandom(700_000)
    write(workdir, "x.bin", data)
    await repo.add(["."])
    await repo.commit("base")
    await repo.checkout("other", create=True)
    write(workdir, "y.bin", data)
    await repo.add(["y.bin"])
    await repo.commit("same bytes, other branch")
    chunks = await chunk_count(repo)
    await repo.checkout("main")
    assert not (workdir / "y.bin").exists()
    write(workdir, "z.bin", data)
    await repo.add(["z.bin"])
    await repo.commit("again on main")
    assert await chunk_count(repo) == chunks


async def test_large_file_with_a_few_rows_changed_stores_only_new_chunks(
    repo: AsyncRepo, workdir: Path
) -> None:
    rng = random.Random(11)
    rows = [f"{i},{rng.random():.12f},{rng.getrandbits(64):x}\n".encode() for i in range(400_000)]
    write(workdir, "table.csv", b"".join(rows))
    await repo.add(["table.csv"])
    await repo.commit("v1")
    size1, chunks1 = store_bytes(repo), await chunk_count(repo)
    assert chunks1 > 100
    for i in (1000, 200_000, 399_000):
        rows[i] = f"{i},changed,row\n".encode()
    rows.extend(f"{i},appended\n".encode() for i in range(400_000, 404_000))
    write(workdir, "table.csv", b"".join(rows))
    result = await repo.add(["table.csv"])
    await repo.commit("v2")
    new_chunks = await chunk_count(repo) - chunks1
    assert new_chunks <= 8
    assert result.bytes_stored < 8 * 128 * 1024 + 100_000
    assert store_bytes(repo) - size1 < 1_500_000


async def test_checkout_rewrites_only_differing_files(repo: AsyncRepo, workdir: Path) -> None:
    for i in range(20):
        write(workdir, f"f{i}", f"content {i}")
    await repo.add(["."])
    await repo.commit("base")
    await repo.checkout("feature", create=True)
    write(workdir, "f3", "changed on feature")
    (workdir / "f4").unlink()
    write(workdir, "new", "only on feature")
    await repo.add(["."])
    await repo.commit("feature work")
    inodes = {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in workdir.iterdir() if p.is_file()
    }
    await repo.checkout("main")
    assert (workdir / "f3").read_text() == "content 3"
    assert (workdir / "f4").read_text() == "content 4"
    assert not (workdir / "new").exists()
    for i in range(20):
        if i in (3, 4):
            continue
        p = workdir / f"f{i}"
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == inodes[p.name], p.name
    assert (await repo.status()).clean


async def test_checkout_refuses_to_overwrite_changes_and_changes_nothing(
    repo: AsyncRepo, workdir: Path
) -> None:
    write(workdir, "a", "base")
    write(workdir, "b", "base")
    await repo.add(["."])
    await repo.commit("base")
    await repo.checkout("feature", create=True)
    write(workdir, "a", "feature")
    await repo.add(["a"])
    await repo.commit("feature")
    await repo.checkout("main")
    write(workdir, "a", "local edit")
    with pytest.raises(DirtyWorkingTree):
        await repo.checkout("feature")
    assert (workdir / "a").read_text() == "local edit"
    assert (await repo.head())[0] == "main"
    # an untracked file where the target has a file: refused too
    write(workdir, "a", "base")
    await repo.checkout("feature")
    write(workdir, "extra", "mine")
    await repo.checkout("main")
    assert (workdir / "extra").read_text() == "mine"  # untracked files are never deleted
    # changes to files the checkout does not touch are carried along
    write(workdir, "b", "edited b")
    await repo.checkout("feature")
    assert (workdir / "b").read_text() == "edited b"


async def test_untracked_file_in_the_way_blocks_checkout(repo: AsyncRepo, workdir: Path) -> None:
    write(workdir, "a", "x")
    await repo.add(["."])
    await repo.commit("base")
    await repo.checkout("feature", create=True)
    write(workdir, "data.bin", "tracked on feature")
    await repo.add(["data.bin"])
    await repo.commit("f")
    await repo.checkout("main")
    write(workdir, "data.bin", "precious untracked")
    with pytest.raises(DirtyWorkingTree):
        await repo.checkout("feature")
    assert (workdir / "data.bin").read_text() == "precious untracked"


async def test_detached_checkout_and_unknown_refs(repo: AsyncRepo, workdir: Path) -> None:
    write(workdir, "a", "1")
    await repo.add(["a"])
    c1 = await repo.commit("1")
    write(workdir, "a", "2")
    await repo.add(["a"])
    await repo.commit("2")
    branch, cid = await repo.checkout(c1.hex()[:10])
    assert branch is None and cid == c1
    assert (workdir / "a").read_text() == "1"
    with pytest.raises(RefError):
        await repo.checkout("no-such-branch")
    with pytest.raises(RefError):
        await repo.resolve("main~5")


async def test_rm_and_restore(repo: AsyncRepo, workdir: Path) -> None:
    write(workdir, "keep", "k")
    write(workdir, "d/x", "x")
    write(workdir, "d/y", "y")
    await repo.add(["."])
    await repo.commit("base")
    with pytest.raises(PathError):
        await repo.rm(["d"])
    await repo.rm(["d"], recursive=True)
    assert not (workdir / "d").exists()
    st = await repo.status()
    assert st.staged_removed == ["d/x", "d/y"]
    await repo.restore(["d"], staged=True)
    await repo.restore(["d"])
    assert (workdir / "d" / "x").read_text() == "x"
    assert (await repo.status()).clean
    write(workdir, "keep", "edited")
    with pytest.raises(DirtyWorkingTree):
        await repo.rm(["keep"])
    await repo.rm(["keep"], staged_only=True)
    st = await repo.status()
    assert st.staged_removed == ["keep"] and "keep" in st.untracked
    await repo.commit("untrack keep")
    await repo.restore(["keep"], source="HEAD~1")
    assert (workdir / "keep").read_text() == "k"


async def test_add_stages_deletions_and_paths_outside_fail(
    repo: AsyncRepo, workdir: Path, tmp_path: Path
) -> None:
    write(workdir, "d/a", "1")
    write(workdir, "d/b", "2")
    await repo.add(["d"])
    await repo.commit("base")
    (workdir / "d" / "a").unlink()
    await repo.add(["d"])
    assert (await repo.status()).staged_removed == ["d/a"]
    with pytest.raises(PathError):
        await repo.add([str(tmp_path / "elsewhere")])
    with pytest.raises(PathError):
        await repo.add(["missing-file"])
    with pytest.raises(PathError):
        await repo.add([".oxen"])


async def test_diff(repo: AsyncRepo, workdir: Path) -> None:
    write(workdir, "a", "1")
    write(workdir, "b", "2")
    await repo.add(["."])
    c1 = await repo.commit("base")
    write(workdir, "a", "111")
    (workdir / "b").unlink()
    write(workdir, "c", "new")
    await repo.add(["c"])
    changes = {(e.path, e.change) for e in await repo.diff()}
    assert changes == {("a", "modified"), ("b", "removed"), ("c", "added")}
    await repo.add(["."])
    c2 = await repo.commit("next")
    entries = await repo.diff(c1.hex(), c2.hex())
    assert [(e.path, e.change, e.old_size, e.new_size) for e in entries] == [
        ("a", "modified", 1, 3),
        ("b", "removed", 1, None),
        ("c", "added", None, 3),
    ]
    assert await repo.diff(c2.hex()) == []


async def test_info_reports_last_change(repo: AsyncRepo, workdir: Path) -> None:
    write(workdir, "data/train.csv", "a,b\n1,2\n")
    write(workdir, "other", "x")
    await repo.add(["."])
    c1 = await repo.commit("one")
    write(workdir, "other", "y")
    await repo.add(["."])
    await repo.commit("two")
    info = await repo.info("data/train.csv")
    assert info.last_commit == c1.hex()
    assert info.data_type == "tabular" and info.mime_type == "text/csv"
    assert info.extension == "csv" and info.size == 8
    with pytest.raises(PathError):
        await repo.info("nope")


async def test_executable_bit_is_versioned(repo: AsyncRepo, workdir: Path) -> None:
    script = write(workdir, "run.sh", "#!/bin/sh\n")
    script.chmod(0o755)
    await repo.add(["."])
    await repo.commit("script")
    script.unlink()
    await repo.restore(["run.sh"])
    assert os.access(workdir / "run.sh", os.X_OK)


async def test_add_spanning_many_packs(repo: AsyncRepo, workdir: Path) -> None:
    """Several packs sealed concurrently in the background while the add goes on."""
    repo.objects.pack_size = 1 << 20
    data = random.Random(2).randbytes(36_000_000)  # three 16 MiB blocks, a pack each
    write(workdir, "big.bin", data)
    for i in range(300):
        write(workdir, f"small/{i}", random.Random(i).randbytes(9000))
    await repo.add(["."])
    await repo.commit("many packs")
    report = await repo.fsck()
    assert report.problems == [] and report.packs >= 4
    (workdir / "big.bin").unlink()
    await repo.restore(["big.bin"])
    assert (workdir / "big.bin").read_bytes() == data


async def test_remotes_from_python(repo: AsyncRepo) -> None:
    url = "http://127.0.0.1:3000/team/data"
    await repo.add_remote("origin", url)
    with pytest.raises(OxenError, match="remote origin already exists"):
        await repo.add_remote("origin", url)
    with pytest.raises(OxenError, match="invalid remote name"):
        await repo.add_remote("a/b", url)
    await repo.refs.set_remotes("origin", {"main": b"\xaa" * 32})
    assert await repo.rename_remote("origin", "upstream") == 1
    assert repo.remotes() == {"upstream": url}
    assert await repo.refs.remote_branches("upstream") == {"main": b"\xaa" * 32}
    assert await repo.remove_remote("upstream") == 1
    assert repo.remotes() == {} and await repo.refs.remote_branches("upstream") == {}
