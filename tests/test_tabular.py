"""Tabular files: schemas and row counts read at `add`, kept in the tree, shown by
`schemas`, `info` and `diff`; bad input never fails an add."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from oxen.db.repo_db import RepoDB
from oxen.formats.nodes import FileEntry, Schema, VNode, decode_node, encode_node, encode_with_id
from oxen.repo import AsyncRepo
from oxen.worktree.tabular import sniff
from tests.conftest import write

ID = bytes(range(32))


def test_csv_tsv_and_jsonl_are_sniffed_with_exact_row_counts(tmp_path: Path) -> None:
    p = write(tmp_path, "a.csv", "id,score,name,ok\n1,0.5,ann,true\n2,1,bob,false\n3,,cy,true")
    schema, rows = sniff(str(p), "csv")
    assert schema == Schema(
        "csv", (("id", "int64"), ("score", "double"), ("name", "string"), ("ok", "bool"))
    )
    assert rows == 3  # the last line has no newline
    p = write(tmp_path, "q.csv", 'id,text\n1,"two\nlines"\n2,plain\n')
    assert sniff(str(p), "csv")[1] == 2  # a quoted newline is not a row
    p = write(tmp_path, "t.tsv", "a\tb\nx\t1\n")
    assert sniff(str(p), "tsv") == (Schema("tsv", (("a", "string"), ("b", "int64"))), 1)
    p = write(tmp_path, "r.jsonl", '{"a": 1, "b": "x"}\n{"a": 2.5, "c": null}\n\n')
    schema, rows = sniff(str(p), "jsonl")
    assert schema.columns == (("a", "double"), ("b", "string"), ("c", "null")) and rows == 2


def test_parquet_and_arrow_come_from_their_footers(tmp_path: Path) -> None:
    table = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "label": ["a", "b", "c"]})
    pq.write_table(table, tmp_path / "t.parquet")
    assert sniff(str(tmp_path / "t.parquet"), "parquet") == (
        Schema("parquet", (("id", "int64"), ("label", "string"))),
        3,
    )
    with ipc.new_file(tmp_path / "t.arrow", table.schema) as w:
        w.write_table(table)
    assert sniff(str(tmp_path / "t.arrow"), "arrow")[1] == 3


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("bad.parquet", b"PAR1 this is not parquet"),
        ("bad.csv", b"\x00\x01\x02binary"),
        ("empty.csv", b""),
        ("ragged.csv", b"a,b\n1,2,3\n"),
        ("bad.jsonl", b"[1, 2]\n"),
        ("bad.arrow", b"ARROW1 nope"),
    ],
)
def test_malformed_tabular_files_get_a_reason_never_an_exception(
    tmp_path: Path, name: str, data: bytes
) -> None:
    p = write(tmp_path, name, data)
    schema, rows = sniff(str(p), name.rsplit(".", 1)[1])
    assert schema.error.startswith("not a readable") and rows is None


def test_entries_without_a_schema_keep_their_old_encoding_and_ids() -> None:
    plain = VNode((FileEntry("a.bin", ID, 10),))
    old_style = b"\x92\x03\x91\x96\x00\xa5a.bin\xc4\x20" + ID + b"\x0a\xc0\xcd\x01\xa4"
    assert encode_node(plain) == old_style  # byte for byte what a tree was before schemas
    tab = VNode((FileEntry("t.csv", ID, 10, None, 0o644, ID, 3),))
    assert decode_node(encode_node(tab)) == tab
    assert encode_with_id(tab)[0] != encode_with_id(plain)[0]
    schema = Schema("csv", (("id", "int64"),), "")
    assert decode_node(encode_node(schema)) == schema


async def test_add_keeps_schemas_in_the_tree_and_diff_reports_their_changes(
    repo: AsyncRepo, workdir: Path
) -> None:
    write(workdir, "data/train.csv", "id,label\n1,cat\n2,dog\n")
    pq.write_table(pa.table({"x": [1.0, 2.0]}), workdir / "data/feat.parquet")
    write(workdir, "data/broken.parquet", b"not parquet at all")
    write(workdir, "img.png", b"\x89PNG....")
    await repo.add([str(workdir)])
    await repo.commit("first")
    found = {s.path: s for s in await repo.schemas()}
    assert set(found) == {"data/train.csv", "data/feat.parquet", "data/broken.parquet"}
    assert found["data/train.csv"].columns == [("id", "int64"), ("label", "string")]
    assert found["data/train.csv"].rows == 2 and found["data/feat.parquet"].rows == 2
    assert found["data/broken.parquet"].error
    info = await repo.info("data/train.csv")
    assert (
        info.data_type == "tabular"
        and info.rows == 2
        and info.columns
        == [
            "id: int64",
            "label: string",
        ]
    )
    bad = await repo.info("data/broken.parquet")
    assert bad.data_type == "binary" and bad.note and "parquet" in bad.note

    write(workdir, "data/train.csv", "id,label,weight\n1,cat,0.5\n2,dog,1\n3,eel,2\n")
    [working] = [e for e in await repo.diff() if e.path == "data/train.csv"]
    assert working.schema is not None and working.schema.added == [("weight", "double")]
    await repo.add([str(workdir)])
    await repo.commit("add a column and a row")
    [entry] = await repo.diff("HEAD~1", "HEAD")
    assert entry.schema is not None
    assert entry.schema.added == [("weight", "double")] and not entry.schema.removed
    assert (entry.schema.old_rows, entry.schema.new_rows) == (2, 3)
    assert "columns added: weight (double); rows 2 -> 3" == entry.schema.describe()
    old = {s.path: s for s in await repo.schemas(rev="HEAD~1")}
    assert old["data/train.csv"].rows == 2


async def test_a_database_made_before_schemas_gets_the_columns(tmp_path: Path) -> None:
    db = tmp_path / "oxen.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE head_files (path TEXT PRIMARY KEY, id BLOB NOT NULL, "
            "size INTEGER NOT NULL, chunks BLOB, mode INTEGER NOT NULL) WITHOUT ROWID"
        )
        conn.execute(
            "CREATE TABLE staged (path TEXT PRIMARY KEY, id BLOB, size INTEGER, chunks BLOB, "
            "mode INTEGER) WITHOUT ROWID"
        )
        conn.execute("INSERT INTO head_files VALUES ('a.csv', ?, 3, NULL, 420)", (ID,))
    opened = await RepoDB.open(tmp_path)
    try:
        row = (await opened.head_files())["a.csv"]
        assert (row.id, row.schema, row.rows) == (ID, None, None)
    finally:
        await opened.close()


def test_schemas_command(oxen: Callable, workdir: Path) -> None:
    oxen("init", check=True)
    write(workdir, "t.csv", "a,b\n1,x\n")
    oxen("add", ".", check=True)
    oxen("commit", "-m", "t", check=True)
    out = oxen("schemas", check=True).stdout
    assert "t.csv  csv, 1 rows, 2 columns" in out and "    a: int64" in out
    assert '"format": "csv"' in oxen("schemas", "--json", check=True).stdout
    assert "columns" in oxen("info", "t.csv", check=True).stdout
