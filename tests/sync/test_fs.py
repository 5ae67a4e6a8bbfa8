"""The ``oxen://`` fsspec filesystem against a real `oxen-server`: listing, reading any
revision with pyarrow and DuckDB (only the ranges they need), a file pinned to the commit
it was opened at, writes committed through workspaces, and errors as file APIs raise them."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import oxen
from oxen.errors import RemoteError
from oxen.sync.fs import OxenFileSystem, SequentialReadAhead
from tests.conftest import write
from tests.sync.conftest import Server
from tests.sync.test_sync_e2e import new_repo, ok

ROWS = 400_000
GROUPS = 8  # row groups of big.parquet


def table(version: int) -> pa.Table:
    rng = random.Random(version)
    return pa.table(
        {
            "id": pa.array(range(ROWS), pa.int64()),
            "x": pa.array([rng.random() + version for _ in range(ROWS)], pa.float64()),
        }
    )


@dataclass
class Pushed:
    one: str  # commit ids
    two: str
    clone: Path
    root: str  # oxen://HOST/team/fs

    def at(self, rev: str, path: str = "") -> str:
        return f"{self.root}@{rev}" + (f"/{path}" if path else "")


@pytest.fixture
def fs(server: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[OxenFileSystem]:
    """A filesystem of its own (none cached from another test's server), with the CLI's
    token lookup: OXEN_AUTH_TOKEN for the test's server."""
    monkeypatch.setenv("OXEN_AUTH_TOKEN", server.token)
    OxenFileSystem.clear_instance_cache()
    yield OxenFileSystem(skip_instance_cache=True)
    OxenFileSystem.clear_instance_cache()


@pytest.fixture
def pushed(tmp_path: Path, server: Server) -> Pushed:
    """team/fs: "one" holds data/big.parquet (multi-MB, eight row groups) and a text
    file; "two" changes the parquet file and adds data/notes.txt."""
    a = new_repo(tmp_path, server, "team/fs")
    (a / "data").mkdir()
    pq.write_table(table(1), a / "data" / "big.parquet", row_group_size=ROWS // GROUPS)
    write(a, "readme.txt", "hello\n")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "one")
    pq.write_table(table(2), a / "data" / "big.parquet", row_group_size=ROWS // GROUPS)
    write(a, "data/notes.txt", "notes\n")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "two")
    ok(a, "push", token=server.token)
    commits = {c.message: c.id.hex() for c in oxen.Repo(a).log("main")}
    return Pushed(commits["one"], commits["two"], a, f"oxen://{server.host}/team/fs")


def test_ls_and_info(fs: OxenFileSystem, pushed: Pushed) -> None:
    host = pushed.root.removeprefix("oxen://")
    assert fs.ls(pushed.root, detail=False) == [f"{host}/data", f"{host}/readme.txt"]
    top = fs.ls(pushed.at("main"))
    assert [(e["name"], e["type"]) for e in top] == [
        (f"{host}@main/data", "directory"),
        (f"{host}@main/readme.txt", "file"),
    ]
    assert top[0]["count"] == 2 and top[1]["size"] == 6 and len(top[1]["id"]) == 64
    data = {e["name"].rsplit("/", 1)[1]: e for e in fs.ls(pushed.at("main", "data"))}
    assert (data["big.parquet"]["format"], data["big.parquet"]["rows"]) == ("parquet", ROWS)
    assert "format" not in data["notes.txt"]
    old = fs.ls(pushed.at(pushed.one, "data"), detail=False)
    assert old == [f"{host}@{pushed.one}/data/big.parquet"]

    big = pushed.clone / "data" / "big.parquet"
    info = fs.info(pushed.at("main", "data/big.parquet"))
    assert (info["type"], info["size"], info["commit"]) == ("file", big.stat().st_size, pushed.two)
    assert info["id"] == data["big.parquet"]["id"]
    assert fs.ls(pushed.at("main", "readme.txt")) == [fs.info(pushed.at("main", "readme.txt"))]
    assert fs.info(pushed.at("main", "data"))["type"] == "directory"
    assert fs.info(pushed.root)["commit"] == pushed.two
    assert fs.isdir(pushed.at("main", "data")) and fs.isfile(pushed.at("main", "readme.txt"))
    assert not fs.exists(pushed.at("main", "nope.txt"))
    assert fs.cat_file(pushed.at("main", "readme.txt")) == b"hello\n"
    assert fs.cat_file(pushed.at("main", "readme.txt"), start=1, end=-1) == b"ello"
    assert fs.cat_file(pushed.at("main", "readme.txt"), start=-3) == b"lo\n"
    assert fs.cat_file(pushed.at("main", "readme.txt"), start=10) == b""
    assert sorted(fs.find(pushed.root)) == [
        f"{host}/data/big.parquet",
        f"{host}/data/notes.txt",
        f"{host}/readme.txt",
    ]
    assert fs.glob(f"{pushed.root}/data/*.parquet") == [f"{host}/data/big.parquet"]


def test_pyarrow_reads_any_revision_and_only_the_ranges_it_needs(
    fs: OxenFileSystem, pushed: Pushed
) -> None:
    size = (pushed.clone / "data" / "big.parquet").stat().st_size
    assert size > 5_000_000
    for rev, version in (("main", 2), (pushed.one, 1)):
        got = pq.read_table(pushed.at(rev, "data/big.parquet"), filesystem=fs)
        assert got.equals(table(version))
    with fsspec.open(pushed.at(pushed.one, "data/big.parquet")) as f:  # the entry point
        assert pq.read_table(f).equals(table(1))
    # with a filesystem given, pyarrow takes paths without the protocol (as for s3fs)
    folder = pushed.at("main", "data").removeprefix("oxen://")
    dataset = ds.dataset(folder, filesystem=fs, format="parquet", exclude_invalid_files=True)
    assert [Path(f).name for f in dataset.files] == ["big.parquet"]  # not notes.txt
    assert dataset.to_table(filter=ds.field("id") < 10).column("id").to_pylist() == list(range(10))

    before = fs.bytes_received
    with fs.open(pushed.at("main", "data/big.parquet")) as f:
        meta = pq.ParquetFile(f).metadata
        footer = fs.bytes_received - before
        assert (meta.num_rows, meta.num_row_groups) == (ROWS, GROUPS)
        group = pq.ParquetFile(f).read_row_group(0)
        one_group = fs.bytes_received - before
    assert group.equals(table(2).slice(0, ROWS // GROUPS))
    assert footer <= 65_536  # Arrow reads the last 64 KiB for the footer
    assert one_group < size * 0.15  # the footer and an eighth of the file


def test_reads_ahead_only_when_sequential() -> None:
    """A read that goes on where the last ended asks for a block at least; one that
    seeks asks for its bytes alone."""
    data = bytes(range(256)) * 400  # 102,400 bytes
    asked: list[tuple[int, int]] = []

    def fetch(start: int, end: int) -> bytes:
        asked.append((start, end))
        return data[start:end]

    cache = SequentialReadAhead(10_000, fetch, len(data))
    assert cache._fetch(0, 100) == data[:100] and asked == [(0, 10_000)]
    assert cache._fetch(100, 9_000) == data[100:9_000] and len(asked) == 1  # held
    assert cache._fetch(9_000, 12_000) == data[9_000:12_000]  # the rest, and a block
    assert asked[-1] == (10_000, 20_000)
    assert cache._fetch(90_000, 91_000) == data[90_000:91_000]  # a seek: exactly that
    assert asked[-1] == (90_000, 91_000)
    assert cache._fetch(50_000, 70_000) == data[50_000:70_000] and asked[-1] == (50_000, 70_000)
    assert cache._fetch(70_000, 70_010) == data[70_000:70_010] and asked[-1] == (70_000, 80_000)
    assert cache._fetch(100_000, 200_000) == data[100_000:]  # cut at the end
    assert cache._fetch(len(data), len(data) + 5) == b""


def test_duckdb_reads_through_the_filesystem(fs: OxenFileSystem, pushed: Pushed) -> None:
    con = duckdb.connect()
    con.register_filesystem(fs)
    for rev, version in (("main", 2), (pushed.one, 1)):
        count, total = con.execute(
            f"SELECT count(*), sum(x) FROM read_parquet('{pushed.at(rev, 'data/big.parquet')}')"
        ).fetchone()
        assert count == ROWS
        assert total == pytest.approx(sum(table(version).column("x").to_pylist()))
    con.close()


def test_an_open_file_stays_at_its_commit(fs: OxenFileSystem, pushed: Pushed) -> None:
    path = pushed.at("main", "readme.txt")
    with fs.open(path) as f:
        assert f.read(2) == b"he" and f.commit == pushed.two
        fs.pipe_file(path, b"a newer version\n")  # main moves on
        f.seek(0)
        assert f.read() == b"hello\n"  # still the version it was opened at
    assert fs.cat_file(path) == b"a newer version\n"
    assert fs.info(path)["commit"] != pushed.two


def test_writes_are_commits_on_a_branch(fs: OxenFileSystem, pushed: Pushed, tmp_path: Path) -> None:
    new = table(3).slice(0, 1000)
    with fs.open(pushed.at("main", "out/new.parquet"), "wb", message="a table") as f:
        pq.write_table(new, f)
    assert f.commit_id is not None
    assert pq.read_table(pushed.at("main", "out/new.parquet"), filesystem=fs).equals(new)
    listed = fs.ls(pushed.at("main", "out"))
    assert (listed[0]["format"], listed[0]["rows"]) == ("parquet", 1000)  # described as a table

    local = tmp_path / "up"
    write(local, "a.txt", "a")
    write(local, "sub/b.txt", "b")
    write(local, "c.bin", b"\x00c")
    fs.put_file(str(local / "a.txt"), pushed.at("main", "single/renamed.txt"))
    fs.put(str(local), pushed.at("main", "folder"), recursive=True, message="three files")
    assert fs.cat_file(pushed.at("main", "folder/sub/b.txt")) == b"b"
    assert fs.cat_file(pushed.at("main", "single/renamed.txt")) == b"a"
    ok(pushed.clone, "pull")
    log = ok(pushed.clone, "log", "--oneline", "-n", "4").splitlines()
    assert [line.split(" ", 1)[1] for line in log] == [
        "three files",  # the whole folder in one commit
        "Write single/renamed.txt",
        "a table",
        "two",
    ]

    with pytest.raises(IsADirectoryError, match="folder is a folder"):
        fs.rm(pushed.at("main", "folder"))
    assert fs.exists(pushed.at("main", "folder/a.txt"))  # nothing removed
    fs.rm(pushed.at("main", "folder/*.txt"))  # a pattern: what it matches, one commit
    assert fs.find(pushed.at("main", "folder"), detail=False) == [
        pushed.at("main", "folder/c.bin").removeprefix("oxen://"),
        pushed.at("main", "folder/sub/b.txt").removeprefix("oxen://"),
    ]
    fs.rm(pushed.at("main", "single/renamed.txt"))
    fs.rm(pushed.at("main", "folder"), recursive=True)
    assert not fs.exists(pushed.at("main", "folder"))
    assert not fs.exists(pushed.at("main", "single/renamed.txt"))
    with pytest.raises(FileNotFoundError):
        fs.rm(pushed.at("main", "nope.txt"))

    with pytest.raises(RuntimeError, match="changed my mind"):
        with fs.open(pushed.at("main", "half.txt"), "wb") as f:
            f.write(b"half")
            raise RuntimeError("changed my mind")
    assert not fs.exists(pushed.at("main", "half.txt"))  # nothing committed
    with pytest.raises(ValueError, match="is a commit id, and writes go to a branch"):
        fs.pipe_file(pushed.at(pushed.one, "x.txt"), b"x")
    with pytest.raises(ValueError, match="is a commit id"):
        fs.open(pushed.at(pushed.one, "x.txt"), "wb")


def test_errors(fs: OxenFileSystem, pushed: Pushed, server: Server) -> None:
    for missing in (
        pushed.at("main", "nope.txt"),
        pushed.at("main", "data/nope/x"),
        pushed.at("nobranch", "readme.txt"),
        pushed.at("ab" * 32, "readme.txt"),
        f"oxen://{server.host}/team/nothere/readme.txt",
    ):
        with pytest.raises(FileNotFoundError):
            fs.info(missing)
        with pytest.raises(FileNotFoundError):
            fs.open(missing)
        with pytest.raises(FileNotFoundError):
            fs.ls(missing)
    with pytest.raises(FileNotFoundError):
        pq.read_table(pushed.at("main", "nope.parquet"), filesystem=fs)
    with pytest.raises(IsADirectoryError):
        fs.open(pushed.at("main", "data"))
    with pytest.raises(IsADirectoryError):
        fs.cat_file(pushed.root)
    for bad in (
        "oxen://hostonly",
        f"oxen://{server.host}/team",
        f"oxen://{server.host}/team/fs@/x",
        f"oxen://{server.host}/team/fs/../x",
        f"http://{server.host}/team/fs/readme.txt",
    ):
        with pytest.raises(ValueError) as e:
            fs.info(bad)
        assert "\n" not in str(e.value) and str(e.value)
    with pytest.raises(RemoteError, match="not a branch name or commit id: 'a..b'"):
        fs.info(pushed.at("a..b", "readme.txt"))  # the reason, though a HEAD has no body
    with pytest.raises(ValueError, match="open as 'rb' or 'wb'"):
        fs.open(pushed.at("main", "readme.txt"), "ab")
    with pytest.raises(ValueError, match="scheme must be http or https"):
        OxenFileSystem(scheme="ftp", skip_instance_cache=True)
    stranger = OxenFileSystem(token="not-a-token", skip_instance_cache=True)
    with pytest.raises(PermissionError):
        stranger.info(pushed.at("main", "readme.txt"))
