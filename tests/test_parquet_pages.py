"""Telling parquet written with content-defined pages from its page headers."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oxen.worktree.parquet_pages import page_cuts


def table(n: int = 60_000) -> pa.Table:
    rng = random.Random(7)
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "text": ["".join(rng.choices("abcdefgh", k=rng.randrange(50, 250))) for _ in range(n)],
            "tags": [[1, 2, 3][: rng.randrange(4)] for _ in range(n)],
        }
    )


def written(t: pa.Table, **options: object) -> io.BytesIO:
    out = io.BytesIO()
    pq.write_table(t, out, **options)  # type: ignore[arg-type]
    out.seek(0)
    return out


@pytest.mark.parametrize("options", [{}, {"use_dictionary": False}, {"data_page_version": "2.0"}])
def test_pyarrow_pages_cut_by_content_or_by_size(options: dict[str, object]) -> None:
    t = table()
    fixed = page_cuts(written(t, **options))
    cdc = page_cuts(written(t, use_content_defined_chunking=True, **options))
    assert fixed.verdict == "fixed" and fixed.by_content == 0 and fixed.pages >= 4
    assert cdc.verdict == "content-defined" and cdc.by_content >= 2
    assert "use_content_defined_chunking=True" in fixed.describe()


def test_other_writers_and_small_files_are_unknown(tmp_path: Path) -> None:
    import duckdb

    out = tmp_path / "d.parquet"
    duckdb.sql(f"COPY (SELECT range AS id FROM range(100000)) TO '{out}' (FORMAT parquet)")
    with open(out, "rb") as f:
        other = page_cuts(f)
    assert other.verdict == "unknown" and "written by DuckDB" in other.describe()
    small = page_cuts(written(pa.table({"a": [1, 2, 3]})))
    assert small.verdict == "unknown" and "too small" in small.describe()


def test_a_damaged_header_is_a_value_error() -> None:
    data = bytearray(written(table(5_000)).getvalue())
    start = pq.ParquetFile(io.BytesIO(bytes(data))).metadata.row_group(0).column(0)
    offset = start.dictionary_page_offset or start.data_page_offset
    data[offset : offset + 64] = b"\xff" * 64  # field headers of an unknown type
    with pytest.raises(ValueError):
        page_cuts(io.BytesIO(bytes(data)))


def test_info_says_how_a_stored_and_a_working_parquet_were_cut(
    oxen: Callable, workdir: Path
) -> None:
    oxen("init", check=True)
    pq.write_table(table(), workdir / "plain.parquet")
    oxen("add", "plain.parquet", check=True)
    oxen("commit", "-m", "plain", check=True)
    stored = json.loads(oxen("info", "plain.parquet", "--json").stdout)
    assert stored["tracked"] and stored["pages"].startswith("fixed-size")
    # Parquet that oxen writes has content-defined pages.
    oxen("df", "plain.parquet", "--rev", "HEAD", "--output", "copy.parquet", check=True)
    local = json.loads(oxen("info", "copy.parquet", "--json").stdout)
    assert not local["tracked"] and local["pages"].startswith("content-defined")
    (workdir / "broken.parquet").write_bytes(b"PAR1" + b"\0" * 64 + b"PAR1")
    broken = oxen("info", "broken.parquet", check=True).stdout
    assert "pages" in broken and "unknown (cannot read its pages" in broken
