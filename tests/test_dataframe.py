"""`df`: rows of a tabular file at any revision, reading only what the rows asked for need."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from oxen.errors import InvalidInput, PathError
from oxen.repo import AsyncRepo
from oxen.verbs import dataframe
from oxen.verbs.dataframe import Rows
from oxen.verbs.table_diff import TableDiff
from tests.conftest import write

N = 200_000


def big_table(n: int = N) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "score": pa.array([i * 0.25 for i in range(n)]),
            "name": [f"row-{i:07d}-{'x' * 20}" for i in range(n)],
        }
    )


@pytest.fixture
async def committed(repo: AsyncRepo, workdir: Path) -> AsyncRepo:
    pq.write_table(big_table(), workdir / "big.parquet", row_group_size=N // 10)
    write(workdir, "t.csv", 'id,label\n1,cat\n2,dog\n3,"two\nlines"\n4,eel\n')
    write(workdir, "r.jsonl", '{"a": 1}\n{"a": 2}\n')
    with ipc.new_file(workdir / "t.arrow", big_table(10).schema) as w:
        w.write_table(big_table(10))
    write(workdir, "fake.parquet", b"PAR1 not really")
    await repo.add([str(workdir)])
    await repo.commit("tables")
    return repo


async def test_head_of_a_stored_parquet_reads_its_footer_and_first_row_group(
    committed: AsyncRepo,
) -> None:
    frame = await dataframe.df(committed, "big.parquet", "HEAD", Rows(head=5))
    assert frame.table.column("id").to_pylist() == [0, 1, 2, 3, 4]
    assert frame.total_rows == N
    size = (committed.root / "big.parquet").stat().st_size
    assert frame.bytes_read is not None and frame.bytes_read < 0.3 * size


async def test_tail_slice_and_columns_at_a_revision(committed: AsyncRepo) -> None:
    tail = await dataframe.df(committed, "big.parquet", "HEAD", Rows(tail=2), ["name", "id"])
    assert tail.table.column_names == ["name", "id"]
    assert tail.table.column("id").to_pylist() == [N - 2, N - 1]
    part = await dataframe.df(committed, "big.parquet", "HEAD", Rows.parse_slice("19999..20002"))
    assert part.table.column("id").to_pylist() == [19999, 20000, 20001]  # across row groups
    csv = await dataframe.df(committed, "t.csv", "HEAD", Rows(tail=2))
    assert csv.table.column("label").to_pylist() == ["two\nlines", "eel"]
    assert (await dataframe.df(committed, "r.jsonl", "HEAD")).table.num_rows == 2
    assert (await dataframe.df(committed, "t.arrow", None, Rows(head=3))).table.num_rows == 3


async def test_the_working_tree_file_by_default(committed: AsyncRepo, workdir: Path) -> None:
    write(workdir, "t.csv", "id,label\n9,new\n")
    frame = await dataframe.df(committed, "t.csv")
    assert frame.table.to_pylist() == [{"id": 9, "label": "new"}]
    old = await dataframe.df(committed, "t.csv", "HEAD", Rows(head=1))
    assert old.table.to_pylist() == [{"id": 1, "label": "cat"}]


async def test_mistakes_get_one_line(committed: AsyncRepo) -> None:
    with pytest.raises(InvalidInput, match="stored as a binary file"):
        await dataframe.df(committed, "fake.parquet", "HEAD")
    with pytest.raises(InvalidInput, match="no column 'nope'"):
        await dataframe.df(committed, "big.parquet", "HEAD", Rows(head=1), ["nope"])
    with pytest.raises(PathError, match="no file"):
        await dataframe.df(committed, "missing.csv", "HEAD")
    with pytest.raises(InvalidInput, match="A..B"):
        Rows.parse_slice("3")


def test_written_parquet_round_trips(tmp_path: Path) -> None:
    table = big_table(1000)
    dataframe.write_out(table, tmp_path / "out.parquet")
    assert pq.read_table(tmp_path / "out.parquet").equals(table)
    dataframe.write_out(table.slice(0, 2), tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text().splitlines()[0] == '"id","score","name"'
    with pytest.raises(InvalidInput, match="--output"):
        dataframe.write_out(table, tmp_path / "out.xlsx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.parquet"]


def test_df_command(oxen: Callable, workdir: Path) -> None:
    oxen("init", check=True)
    write(workdir, "t.csv", "id,label\n1,cat\n2,dog\n")
    oxen("add", ".", check=True)
    oxen("commit", "-m", "t", check=True)
    out = oxen("df", "t.csv", "--rev", "HEAD", check=True).stdout
    assert out.splitlines()[0].split() == ["id", "|", "label"] and "(2 rows of 2" in out
    assert '"label": "dog"' in oxen("df", "t.csv", "--json", check=True).stdout
    bad = oxen("df", "t.csv", "--columns", "x")
    assert bad.returncode == 1 and bad.stderr.startswith("error: no column 'x'")
    assert "Traceback" not in bad.stderr


async def test_row_diff_by_key_counts_each_kind_and_the_changed_columns(
    committed: AsyncRepo, workdir: Path
) -> None:
    from oxen.verbs.table_diff import diff_table

    table = big_table()
    score = table.column("score").to_pylist()
    for i in range(1000, 1100):
        score[i] = -1.0
    name = table.column("name").to_pylist()
    name[20] = "renamed"
    changed = table.set_column(1, "score", pa.array(score)).set_column(2, "name", pa.array(name))
    extra = big_table(N + 3).slice(N)  # three new ids
    pq.write_table(pa.concat_tables([changed.slice(10), extra]), workdir / "big.parquet")
    result = await diff_table(committed, "big.parquet", None, None, ["id"])
    assert (result.added, result.removed, result.modified) == (3, 10, 101)
    assert result.changed_columns == {"score": 100, "name": 1}
    assert [r["id"] for r in result.first["added"]] == [N, N + 1, N + 2]
    only_names = await diff_table(committed, "big.parquet", None, None, ["id"], ["name"])
    assert only_names.modified == 1 and only_names.changed_columns == {"name": 1}
    whole = await diff_table(committed, "big.parquet", None, None, [])
    assert (whole.added, whole.removed) == (3 + 101, 10 + 101)
    out = workdir.parent / "changes.parquet"
    await diff_table(committed, "big.parquet", None, None, ["id"], output=out)
    written = pq.read_table(out)
    assert written.num_rows == 3 + 10 + 101
    assert set(written.column("_oxen_status").to_pylist()) == {"added", "removed", "modified"}
    with pytest.raises(InvalidInput, match="key column 'nope'"):
        await diff_table(committed, "big.parquet", None, None, ["nope"])


def test_row_diff_two_passes_agree_with_a_value_by_value_join(tmp_path: Path) -> None:
    """The first pass filters by a hash of the compared columns; what it passes on is
    compared value by value: two-column keys, nulls, and a column retyped with equal values."""
    from oxen.verbs.table_diff import diff_files

    before = pa.table(
        {
            "day": ["mon", "mon", "tue", "tue", "wed"],
            "n": pa.array([1, 2, 1, 2, 1], pa.int32()),
            "v": [1.0, None, 3.0, 4.0, 5.0],
            "w": ["a", "b", None, "d", "e"],
        }
    )
    after = pa.table(
        {
            "day": ["mon", "mon", "tue", "tue", "thu"],
            "n": pa.array([1, 2, 1, 2, 1], pa.int64()),  # retyped: equal values
            "v": [1.0, 2.0, 3.0, 4.0, 5.0],  # null -> 2.0
            "w": ["a", "b", None, "D", "e"],  # null stays null; d -> D
        }
    )
    pq.write_table(before, tmp_path / "a.parquet")
    pq.write_table(after, tmp_path / "b.parquet")
    (tmp_path / "tmp").mkdir()
    result = diff_files(
        tmp_path / "a.parquet",
        tmp_path / "b.parquet",
        "parquet",
        ["day", "n"],
        None,
        None,
        tmp_path / "tmp",
    )
    assert (result.added, result.removed, result.modified) == (1, 1, 2)
    assert result.changed_columns == {"v": 1, "w": 1}
    assert [(r["day"], r["n"]) for r in result.first["modified"]] == [("mon", 2), ("tue", 2)]


async def test_filter_and_sql_stream_through_duckdb(committed: AsyncRepo) -> None:
    hits = await dataframe.df(committed, "big.parquet", "HEAD", Rows(), ["id"], "score < 1")
    assert hits.table.column("id").to_pylist() == [0, 1, 2, 3]
    n = await dataframe.df(committed, "t.csv", "HEAD", sql="SELECT count(*) AS n FROM df")
    assert n.table.to_pylist() == [{"n": 4}]
    with pytest.raises(InvalidInput, match="query failed"):
        await dataframe.df(committed, "t.csv", "HEAD", sql="SELECT nonsense")


def test_diff_command_on_a_table(oxen: Callable, workdir: Path) -> None:
    oxen("init", check=True)
    write(workdir, "t.csv", "id,label\n1,cat\n2,dog\n")
    oxen("add", ".", check=True)
    oxen("commit", "-m", "t", check=True)
    write(workdir, "t.csv", "id,label\n1,cat\n2,wolf\n3,eel\n")
    out = oxen("diff", "t.csv", "--keys", "id", check=True).stdout
    assert "1 added, 0 removed, 1 modified" in out and "label (1)" in out
    assert '"modified": 1' in oxen("diff", "HEAD", "t.csv", "--keys", "id", "--json").stdout
    bad = oxen("diff", "--keys", "id")
    assert bad.returncode == 1 and "tabular file" in bad.stderr


def test_python_api_df_schemas_and_row_diff(workdir: Path) -> None:
    import oxen

    r = oxen.Repo.init(workdir / "api")
    write(r.root, "t.csv", "id,label\n1,cat\n2,dog\n")
    r.add(r.root)
    r.commit("t")
    write(r.root, "t.csv", "id,label\n1,cat\n2,wolf\n")
    table = r.df(r.root / "t.csv", "HEAD", head=1)
    assert table.to_pylist() == [{"id": 1, "label": "cat"}]
    assert r.df(r.root / "t.csv").column("label").to_pylist() == ["cat", "wolf"]
    assert [s.path for s in r.schemas()] == ["t.csv"]
    changes = r.diff_table(r.root / "t.csv", keys=["id"])
    assert (changes.added, changes.removed, changes.modified) == (0, 0, 1)
    same = r.diff(path=r.root / "t.csv", keys=["id"])  # Repo.diff with the tabular result
    assert isinstance(same, TableDiff) and same.changed_columns == {"label": 1}
    assert [e.path for e in r.diff()] == ["t.csv"]  # without a path: the paths changed


def test_slices_of_each_format_from_a_file_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """read_frame streams csv, jsonl and arrow (file or stream format) from a seekable
    file: a slice in the middle lets go of the batches before it."""
    import io

    table = big_table(3000)
    ipc_file, ipc_stream = pa.BufferOutputStream(), pa.BufferOutputStream()
    with ipc.new_file(ipc_file, table.schema) as w:
        w.write_table(table, max_chunksize=500)
    with ipc.new_stream(ipc_stream, table.schema) as w:
        w.write_table(table, max_chunksize=500)
    sources = {
        "arrow": ipc_file.getvalue().to_pybytes(),
        "arrow stream": ipc_stream.getvalue().to_pybytes(),
        "csv": b"id,name\n" + b"".join(b"%d,n%d\n" % (i, i) for i in range(3000)),
        "jsonl": b"".join(b'{"id": %d, "name": "n%d"}\n' % (i, i) for i in range(3000)),
        "jsonl streamed": b"".join(b'{"id": %d, "name": "n%d"}\n' % (i, i) for i in range(3000)),
    }
    for kind, data in sources.items():
        fmt = kind.split()[0]
        monkeypatch.setattr(dataframe, "JSONL_WHOLE", 1000 if kind == "jsonl streamed" else 1 << 26)
        frame = dataframe.read_frame(
            io.BytesIO(data), fmt, Rows(start=1234, stop=1237), ["id"], None, None
        )
        assert frame.table.column("id").to_pylist() == [1234, 1235, 1236], kind
        whole = dataframe.read_frame(io.BytesIO(data), fmt, Rows(start=2990), None, None, None)
        assert whole.total_rows == 3000 and whole.table.num_rows == 10, kind
        past = dataframe.read_frame(io.BytesIO(data), fmt, Rows(start=5000), None, None, None)
        assert past.table.num_rows == 0 and "id" in past.table.column_names, kind
