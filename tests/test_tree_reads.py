"""One folder of a revision listed on the server side (no HTTP): pages in name order across
a folder's VNode buckets, the buckets read in one batch, schemas of the page's tables,
and bad input refused."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oxen.errors import InvalidInput, NotFound, PathError
from oxen.formats.nodes import VNode
from oxen.repo import AsyncRepo
from oxen.serving.registry import RepoRegistry
from oxen.serving.served_repo import ServedRepo
from oxen.serving.tree_reads import list_folder
from oxen.sync.push import push
from tests.conftest import write
from tests.test_serving import InProcessRemote, registry  # noqa: F401 - a fixture

FILES = 200  # in many/: 16 buckets of about 13 entries


@pytest.fixture
async def served(repo: AsyncRepo, workdir: Path, registry: RepoRegistry):  # noqa: F811
    repo.trees.vnode_size = 16  # so that many/ spreads over several VNodes
    for i in range(FILES):
        write(workdir, f"many/f{i:04d}.txt", f"file {i}\n" * (i % 3 + 1))
    write(workdir, "many/sub/deep.txt", "deep")
    write(workdir, "top.txt", "top")
    pq.write_table(pa.table({"id": [1, 2, 3]}), workdir / "t.parquet")
    write(workdir, "not.csv", b"\xff\xfe\x00 not a table")
    await repo.add(["."])
    await repo.commit("one")
    await registry.create("ns", "r")
    async with registry.use("ns", "r") as served:
        await push(repo, InProcessRemote(served), "origin", "main")
        yield served


async def test_pages_follow_names_across_buckets(served: ServedRepo) -> None:
    names = sorted([f"f{i:04d}.txt" for i in range(FILES)] + ["sub"])
    seen: list[dict] = []
    offset: int | None = 0
    while offset is not None:
        page = await list_folder(served, "main", "many", offset, 37)
        assert page["total"] == FILES + 1 and page["offset"] == offset
        assert len(page["entries"]) <= 37
        seen += page["entries"]
        offset = page["next_offset"]
    assert [e["name"] for e in seen] == names
    sub = next(e for e in seen if e["name"] == "sub")
    assert (sub["type"], sub["count"], sub["size"]) == ("dir", 1, 4)
    f = next(e for e in seen if e["name"] == "f0002.txt")
    assert (f["type"], f["size"], len(f["id"])) == ("file", len("file 2\n") * 3, 64)
    assert "format" not in f and "count" not in f


async def test_a_page_reads_the_folders_buckets_in_one_batch(
    served: ServedRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await list_folder(served, "main", "many", 0, 10)
    served.objects._nodes.clear()  # as a server that has not read the folder yet
    batches: list[set[bytes]] = []
    real = served.objects.read_nodes

    async def read_nodes(ids, cache=True):  # type: ignore[no-untyped-def]
        ids = set(ids)
        batches.append(ids)
        return await real(ids, cache)

    monkeypatch.setattr(served.objects, "read_nodes", read_nodes)
    again = await list_folder(served, "main", "many", 0, 10)
    assert again == first
    vnode_batches = [b for b in batches if len(b) > 1]
    assert len(vnode_batches) == 1 and len(vnode_batches[0]) == 16  # every bucket at once
    nodes = await real(vnode_batches[0])
    assert all(isinstance(n, VNode) for n in nodes.values())

    batches.clear()  # a page past the end reads the Dir node alone
    past = await list_folder(served, "main", "many", 500, 10)
    assert past["entries"] == [] and past["next_offset"] is None and past["total"] == FILES + 1
    assert all(len(b) == 1 for b in batches)


async def test_the_top_with_tables(served: ServedRepo) -> None:
    page = await list_folder(served, "main", "")
    assert page["path"] == "" and page["next_offset"] is None
    by_name = {e["name"]: e for e in page["entries"]}
    assert list(by_name) == ["many", "not.csv", "t.parquet", "top.txt"]
    assert (by_name["t.parquet"]["format"], by_name["t.parquet"]["rows"]) == ("parquet", 3)
    assert "format" not in by_name["not.csv"]  # versioned as binary: no table to show
    assert by_name["many"]["count"] == FILES + 1
    pinned = await list_folder(served, page["commit"], "")
    assert pinned == page


async def test_bad_input(served: ServedRepo) -> None:
    with pytest.raises(InvalidInput, match="top.txt is a file at main"):
        await list_folder(served, "main", "top.txt")
    with pytest.raises(NotFound, match="no folder nope at main"):
        await list_folder(served, "main", "nope")
    with pytest.raises(NotFound, match="no folder many/nope"):
        await list_folder(served, "main", "many/nope")
    with pytest.raises(NotFound, match="no branch or commit dev"):
        await list_folder(served, "dev", "")
    with pytest.raises(NotFound):
        await list_folder(served, "ab" * 32, "")
    for bad in ("../x", "many/../many", "/many", ".oxen", "many//sub"):
        with pytest.raises(PathError):
            await list_folder(served, "main", bad)
    with pytest.raises(InvalidInput, match="limit must be 1 to 1000"):
        await list_folder(served, "main", "", 0, 1001)
    with pytest.raises(InvalidInput, match="limit must be 1 to 1000"):
        await list_folder(served, "main", "", 0, 0)
