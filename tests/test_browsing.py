"""What the web pages show, read on the server side (no HTTP): repositories by namespace,
branches, pages of history, folders with each entry's last change, files by kind, a
commit's changes with how its tables changed, comparisons and row diffs."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oxen.errors import InvalidInput, NotFound
from oxen.repo import AsyncRepo
from oxen.serving import browsing
from oxen.serving.registry import RepoRegistry
from oxen.serving.served_repo import ServedRepo
from oxen.sync.push import push
from tests.conftest import write
from tests.test_serving import InProcessRemote, registry  # noqa: F401 - a fixture

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc00000000301010018dd8db00000000049454e44ae426082"
)


@pytest.fixture
async def served(repo: AsyncRepo, workdir: Path, registry: RepoRegistry):  # noqa: F811
    """Three commits on main: c1 adds data/, c2 edits table.csv and adds a file, c3 edits
    notes.txt only; a branch `side` from c2."""
    repo.trees.vnode_size = 4  # so that data/ spreads over several VNodes
    for i in range(30):
        write(workdir, f"data/f{i:02d}.txt", f"file {i}\n")
    write(workdir, "table.csv", "id,label\n1,a\n2,b\n3,c\n")
    write(workdir, "notes.txt", "first notes\n")
    write(workdir, "img.png", PNG)
    write(workdir, "blob.bin", b"\x00\x01\x02" * 100)
    pq.write_table(
        pa.table({"id": list(range(10)), "v": [i * 0.5 for i in range(10)]}), workdir / "t.parquet"
    )
    await repo.add(["."])
    c1 = await repo.commit("first")
    write(workdir, "table.csv", "id,label\n1,a\n2,B\n4,d\n")
    write(workdir, "data/new.txt", "new")
    await repo.add(["."])
    c2 = await repo.commit("second")
    await repo.create_branch("side")
    write(workdir, "notes.txt", "second notes\n")
    await repo.add(["."])
    c3 = await repo.commit("third")
    await registry.create("ns", "r")
    async with registry.use("ns", "r") as served:
        await push(repo, InProcessRemote(served), "origin", "main")
        await push(repo, InProcessRemote(served), "origin", "side")
        served.ids = (c1, c2, c3)  # type: ignore[attr-defined]
        yield served


async def test_repositories_by_namespace(registry: RepoRegistry) -> None:  # noqa: F811
    for ns, name in (("a", "x"), ("a", "y"), ("b", "z")):
        await registry.create(ns, name)
    assert await browsing.repositories(registry, None) == {"a": ["x", "y"], "b": ["z"]}
    seen = await browsing.repositories(registry, ["b", "empty", "../bad"])
    assert seen == {"b": ["z"], "empty": []}


async def test_branches_main_first(served: ServedRepo) -> None:
    c1, c2, c3 = served.ids  # type: ignore[attr-defined]
    got = await browsing.branches(served)
    assert [(b.name, b.tip.id) for b in got] == [("main", c3), ("side", c2)]
    assert got[0].tip.message == "third"


async def test_history_pages(served: ServedRepo) -> None:
    c1, c2, c3 = served.ids  # type: ignore[attr-defined]
    first = await browsing.history(served, "main", 0, 2)
    assert [c.id for c in first.commits] == [c3, c2] and first.next_offset == 2
    rest = await browsing.history(served, "main", 2, 2)
    assert [c.id for c in rest.commits] == [c1] and rest.next_offset is None
    assert (await browsing.history(served, c2.hex())).commits[0].id == c2
    with pytest.raises(NotFound):
        await browsing.history(served, "nope")
    with pytest.raises(InvalidInput):
        await browsing.history(served, "main", 0, 0)


async def test_folder_pages_with_last_change(served: ServedRepo) -> None:
    c1, c2, c3 = served.ids  # type: ignore[attr-defined]
    top = await browsing.folder(served, "main")
    by_name = {e.name: e for e in top.entries}
    assert by_name["data"].type == "dir" and by_name["data"].count == 31
    assert by_name["notes.txt"].last.id == c3  # type: ignore[union-attr]
    assert by_name["table.csv"].last.id == c2  # type: ignore[union-attr]
    assert by_name["img.png"].last.id == c1  # type: ignore[union-attr]
    assert by_name["data"].last.id == c2  # type: ignore[union-attr]
    assert by_name["table.csv"].format == "csv" and by_name["table.csv"].rows == 3
    names: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = await browsing.folder(served, "main", "data", offset, 7)
        names += [e.name for e in page.entries]
        assert all(e.path == f"data/{e.name}" for e in page.entries)
        assert {e.last.id for e in page.entries} <= {c1, c2}  # type: ignore[union-attr]
        offset = page.next_offset
    assert names == sorted([f"f{i:02d}.txt" for i in range(30)] + ["new.txt"])
    new = await browsing.folder(served, "main", "data", 30, 1)
    assert new.entries[0].name == "new.txt" and new.entries[0].last.id == c2  # type: ignore[union-attr]


async def test_last_change_stops_at_its_bound(served: ServedRepo) -> None:
    c1, c2, c3 = served.ids  # type: ignore[attr-defined]
    browsing._last_seen.clear()  # answers kept by other tests (the same commit ids)
    found = await browsing.last_changes(served, c3, "", ["img.png", "notes.txt"], max_commits=1)
    assert found.keys() == {"notes.txt"}


async def test_files_by_kind(served: ServedRepo) -> None:
    assert (await browsing.file_view(served, "main", "img.png")).kind == "image"
    blob = await browsing.file_view(served, "main", "blob.bin")
    assert blob.kind == "binary" and blob.text is None
    notes = await browsing.file_view(served, "main", "notes.txt")
    assert (notes.kind, notes.text, notes.truncated) == ("text", "second notes\n", False)
    table = await browsing.file_view(served, "main", "t.parquet")
    assert table.kind == "table" and table.schema["rows"] == 10  # type: ignore[index]
    page = await browsing.table_page(served, table, 8, 5)
    assert [r["id"] for r in page["rows"]] == [8, 9] and page["next_offset"] is None
    with pytest.raises(NotFound):
        await browsing.file_view(served, "main", "nope.txt")


def test_text_is_cut_at_a_whole_character() -> None:
    assert browsing.decode_text("h\u00e9".encode()[:-1], final=False) == "h"
    assert browsing.decode_text(b"\xff\xfe" * 10) is None
    assert browsing.decode_text(b"a\x00b") is None


async def test_a_commit_and_its_tables(served: ServedRepo) -> None:
    c1, c2, c3 = served.ids  # type: ignore[attr-defined]
    view = await browsing.commit_view(served, c2.hex())
    assert [p.id for p in view.parents] == [c1] and view.commit.message == "second"
    changes = {c.path: c for c in view.changes.entries}
    assert changes.keys() == {"table.csv", "data/new.txt"}
    table = changes["table.csv"]
    assert (table.change, table.row_diff, table.keys, table.format) == (
        "modified",
        True,
        ("id",),
        "csv",
    )
    assert table.structure is not None and table.structure.old_rows == 3
    assert changes["data/new.txt"].change == "added" and changes["data/new.txt"].new_size == 3
    first = await browsing.commit_view(served, c1.hex(), 0, 10)
    assert first.parents == [] and first.changes.total == 35 and first.changes.added == 35
    assert len(first.changes.entries) == 10 and first.changes.next_offset == 10
    diff = await browsing.row_diff(served, "table.csv", c1.hex(), c2.hex(), ["id"])
    assert (diff["added"], diff["removed"], diff["modified"]) == (1, 1, 1)


async def test_compare(served: ServedRepo) -> None:
    c1, c2, c3 = served.ids  # type: ignore[attr-defined]
    got = await browsing.compare_revisions(served, "side", "main")
    assert [c.id for c in got.commits] == [c3] and got.merge_base.id == c2  # type: ignore[union-attr]
    assert [c.path for c in got.changes.entries] == ["notes.txt"]
    back = await browsing.compare_revisions(served, c1.hex(), "side")
    assert [c.id for c in back.commits] == [c2] and back.changes.modified == 1
