"""`python -m bench.df_engines [--quick] [--runs N]`: choose the data-frame engine of
`oxen df` and of the row-level diff by measurement on W2 (docs/benchmarks.md,
"Data-frame engine").

The runner (the project's venv) generates W2 (v1, v2 = v1 + 1% rows appended, v3 = v1
with 1% rows changed mid-file) and then runs every measurement in a fresh process of a
venv of its own, bench/.peers/df-engines (pyarrow, duckdb, polars; created on first use):
`<peers python> -m bench.df_engines --worker ENGINE TASK ARGS`, started through
bench/_wrap.py (its wall time and peak RSS from wait4, without the runner's own RSS). The
worker times the engine's import and the task apart and prints them and its answer as one
JSON line; the runner checks every answer against the generator's exact counts and prints
a markdown table of medians, also written to bench/results/df-engines-<UTC time>.md.

Tasks: import; head / tail 10 rows of v1; a filter (count) over v1; the row diff by key
`id` of v1 vs v3 and v1 vs v2 (counts of added / removed / modified rows, the rows changed
per column, the first ids of each kind), in up to three ways per engine:
- join: one full outer join of both files on every column (duckdb: with a memory limit
  and a temp directory, so it spills; polars: lazy scans, streaming engine);
- hash: a full outer join of (id, hash of the other columns) only, then the rows whose
  hashes differ joined in full (the second pass reads only those rows);
- buckets (pyarrow alone): both files cut by a hash of `id` into IPC files on disk, then
  one bucket at a time joined in memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.measure import StepFailed, log, rss_floor_kib, run_cmd
from bench.paths import INSTALL_LOG, LOGS, PEERS, RESULTS, ROOT, WORK
from bench.report import fmt_bytes, fmt_seconds

VENV = PEERS / "df-engines"
PACKAGES = ["pyarrow", "duckdb", "polars", "psutil"]
SPILL = WORK / "df-engines"
IMPORTS = {"pyarrow": "pyarrow.parquet", "duckdb": "duckdb", "polars": "polars"}
KEY = "id"
N_ROWS = 10  # head / tail
N_FIRST = 3  # first ids of each kind a diff reports
DUCKDB_MEMORY = "512MB"
BUCKETS = 32
FILTER_SQL = "category = 'category_03' AND value > 0.5"
TIMEOUT = 1800  # seconds per worker process
MAX_LOAD = 1.2  # wait before each measurement until the 1-minute load is below this
LOAD_POLL = 30
LOAD_GIVE_UP = 900

# ---------------------------------------------------------------------------- worker
# Everything below up to the runner runs in the peers venv, one task per process.

Args = dict[str, Any]
Result = dict[str, Any]


def _lit(path: str) -> str:
    """A SQL string literal."""
    return "'" + path.replace("'", "''") + "'"


def pyarrow_head(args: Args) -> Result:
    import pyarrow.parquet as pq

    # A buffered stream: without one the reader loads whole column chunks of the row group.
    pf = pq.ParquetFile(args["path"], buffer_size=1 << 20)
    batch = next(pf.iter_batches(batch_size=N_ROWS))
    return {"ids": batch.column(KEY).to_pylist()}


def pyarrow_tail(args: Args) -> Result:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(args["path"])
    parts: list[Any] = []
    rows = 0
    for i in reversed(range(pf.num_row_groups)):  # last row groups only
        parts.insert(0, pf.read_row_group(i))
        rows += parts[0].num_rows
        if rows >= N_ROWS:
            break
    table = pa.concat_tables(parts)
    return {"ids": table.slice(max(0, table.num_rows - N_ROWS)).column(KEY).to_pylist()}


def pyarrow_filter(args: Args) -> Result:
    import pyarrow.dataset as ds

    expr = (ds.field("category") == "category_03") & (ds.field("value") > 0.5)
    return {"count": ds.dataset(args["path"], format="parquet").count_rows(filter=expr)}


def duckdb_head(args: Args) -> Result:
    import duckdb

    rows = duckdb.connect().execute(
        f"SELECT * FROM read_parquet({_lit(args['path'])}) LIMIT {N_ROWS}"
    )
    return {"ids": [r[0] for r in rows.fetchall()]}


def duckdb_tail(args: Args) -> Result:
    import duckdb

    con = duckdb.connect()
    lit = _lit(args["path"])
    (n,) = con.execute(f"SELECT num_rows FROM parquet_file_metadata({lit})").fetchone()
    rows = con.execute(
        f"SELECT {KEY} FROM read_parquet({lit}, file_row_number = true) "
        f"WHERE file_row_number >= {n - N_ROWS} ORDER BY file_row_number"
    )
    return {"ids": [r[0] for r in rows.fetchall()]}


def duckdb_filter(args: Args) -> Result:
    import duckdb

    sql = f"SELECT count(*) FROM read_parquet({_lit(args['path'])}) WHERE {FILTER_SQL}"
    return {"count": duckdb.connect().execute(sql).fetchone()[0]}


def polars_head(args: Args) -> Result:
    import polars as pl

    return {"ids": pl.scan_parquet(args["path"]).head(N_ROWS).collect()[KEY].to_list()}


def polars_tail(args: Args) -> Result:
    import polars as pl

    return {"ids": pl.scan_parquet(args["path"]).tail(N_ROWS).collect()[KEY].to_list()}


def polars_filter(args: Args) -> Result:
    import polars as pl

    expr = (pl.col("category") == "category_03") & (pl.col("value") > 0.5)
    frame = pl.scan_parquet(args["path"]).filter(expr).select(pl.len())
    return {"count": frame.collect(engine="streaming").item()}


# -- the diff: every method ends with a small table of the rows that differ, columns
# a_<col> (old side) and b_<col> (new side) for the key and every compared column.


def _differs(x: Any, y: Any) -> Any:
    """Element-wise: x and y differ (a null and a value differ; two nulls do not)."""
    import pyarrow.compute as pc

    either = pc.not_equal(pc.is_null(x), pc.is_null(y))
    return pc.fill_null(pc.or_kleene(pc.not_equal(x, y), either), False)


def _first_ids(ids: Any, mask: Any) -> list[int]:
    import pyarrow.compute as pc

    chosen = pc.filter(ids, mask)
    return pc.take(chosen, pc.sort_indices(chosen)[:N_FIRST]).to_pylist()


def _summary(d: Any, cols: list[str]) -> Result:
    """Counts and first ids of each kind, and modified rows per column, from diff rows."""
    import pyarrow.compute as pc

    added, removed = pc.is_null(d[f"a_{KEY}"]), pc.is_null(d[f"b_{KEY}"])
    both = pc.invert(pc.or_(added, removed))
    per = {c: pc.and_(both, _differs(d[f"a_{c}"], d[f"b_{c}"])) for c in cols}
    modified = pc.and_(both, _any(list(per.values()))) if per else both
    ids = pc.coalesce(d[f"a_{KEY}"], d[f"b_{KEY}"])
    kinds = {"added": added, "removed": removed, "modified": modified}
    return {
        "counts": {k: pc.sum(m).as_py() or 0 for k, m in kinds.items()},
        "columns": {c: pc.sum(m).as_py() or 0 for c, m in per.items()},
        "first": {k: _first_ids(ids, m) for k, m in kinds.items()},
    }


def _any(masks: list[Any]) -> Any:
    import pyarrow.compute as pc

    out = masks[0]
    for m in masks[1:]:
        out = pc.or_(out, m)
    return out


def _duckdb_connect(spill: str) -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{DUCKDB_MEMORY}'")
    con.execute(f"SET temp_directory = {_lit(spill)}")
    con.execute("SET preserve_insertion_order = false")
    return con


def _duckdb_columns(con: Any, path: str) -> list[str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet({_lit(path)})").fetchall()
    return [r[0] for r in rows if r[0] != KEY]


def _duckdb_diff_rows(con: Any, a_sql: str, b_sql: str, cols: list[str]) -> Any:
    names = [KEY, *cols]
    select = ", ".join(f'a."{c}" AS "a_{c}", b."{c}" AS "b_{c}"' for c in names)
    differs = [f"a.{KEY} IS NULL", f"b.{KEY} IS NULL"]
    differs += [f'a."{c}" IS DISTINCT FROM b."{c}"' for c in cols]
    sql = (
        f"SELECT {select} FROM {a_sql} a FULL OUTER JOIN {b_sql} b ON a.{KEY} = b.{KEY} "
        f"WHERE {' OR '.join(differs)}"
    )
    return con.execute(sql).to_arrow_table()


def _duckdb_hash_candidates(con: Any, a_sql: str, b_sql: str, cols: list[str]) -> None:
    """Temp table m(a_id, b_id): the ids whose rows may differ, from (id, row hash) alone."""
    h = "hash(" + ", ".join(f'"{c}"' for c in cols) + ")"
    con.execute(
        f"CREATE TEMP TABLE m AS SELECT a.{KEY} AS a_id, b.{KEY} AS b_id "
        f"FROM (SELECT {KEY}, {h} AS h FROM {a_sql}) a "
        f"FULL OUTER JOIN (SELECT {KEY}, {h} AS h FROM {b_sql}) b ON a.{KEY} = b.{KEY} "
        f"WHERE a.{KEY} IS NULL OR b.{KEY} IS NULL OR a.h <> b.h"
    )


def duckdb_diff(args: Args, hashed: bool) -> Result:
    con = _duckdb_connect(args["spill"])
    cols = _duckdb_columns(con, args["a"])
    a_sql, b_sql = (
        f"read_parquet({_lit(args['a'])})",
        f"read_parquet({_lit(args['b'])})",
    )
    if hashed:
        _duckdb_hash_candidates(con, a_sql, b_sql, cols)
        a_sql = f"(SELECT * FROM {a_sql} WHERE {KEY} IN (SELECT a_id FROM m))"
        b_sql = f"(SELECT * FROM {b_sql} WHERE {KEY} IN (SELECT b_id FROM m))"
    return _summary(_duckdb_diff_rows(con, a_sql, b_sql, cols), cols)


def _polars_prefixed(frame: Any, names: list[str], prefix: str) -> Any:
    return frame.select(names).rename({c: f"{prefix}{c}" for c in names})


def _polars_diff_rows(a: Any, b: Any, cols: list[str]) -> Any:
    import polars as pl

    names = [KEY, *cols]
    joined = _polars_prefixed(a, names, "a_").join(
        _polars_prefixed(b, names, "b_"),
        left_on=f"a_{KEY}",
        right_on=f"b_{KEY}",
        how="full",
        coalesce=False,
    )
    differs = [pl.col(f"a_{KEY}").is_null(), pl.col(f"b_{KEY}").is_null()]
    differs += [pl.col(f"a_{c}").ne_missing(pl.col(f"b_{c}")) for c in cols]
    return joined.filter(pl.any_horizontal(differs)).collect(engine="streaming").to_arrow()


def _polars_hash_candidates(a: Any, b: Any, cols: list[str]) -> tuple[Any, Any]:
    import polars as pl

    def side(frame: Any, prefix: str) -> Any:
        return frame.select(
            pl.col(KEY).alias(f"{prefix}id"), pl.struct(cols).hash().alias(f"{prefix}h")
        )

    joined = side(a, "a_").join(
        side(b, "b_"), left_on="a_id", right_on="b_id", how="full", coalesce=False
    )
    differs = pl.col("a_id").is_null() | pl.col("b_id").is_null() | (pl.col("a_h") != pl.col("b_h"))
    m = joined.filter(differs).select("a_id", "b_id").collect(engine="streaming")
    return m["a_id"].drop_nulls(), m["b_id"].drop_nulls()


def polars_diff(args: Args, hashed: bool) -> Result:
    import polars as pl

    a, b = pl.scan_parquet(args["a"]), pl.scan_parquet(args["b"])
    cols = [c for c in a.collect_schema().names() if c != KEY]
    if hashed:
        a_ids, b_ids = _polars_hash_candidates(a, b, cols)
        a, b = a.filter(pl.col(KEY).is_in(a_ids)), b.filter(pl.col(KEY).is_in(b_ids))
    return _summary(_polars_diff_rows(a, b, cols), cols)


def _buckets_of(ids: Any) -> Any:
    """Bucket 0..BUCKETS-1 of each int64 key: the top bits of a multiplicative hash."""
    import pyarrow as pa
    import pyarrow.compute as pc

    golden = pa.scalar(-7046029254386353131, pa.int64())  # 0x9E3779B97F4A7C15, wraps
    top = pc.shift_right(pc.multiply(ids, golden), 64 - (BUCKETS.bit_length() - 1))
    return pc.bit_wise_and(top, pa.scalar(BUCKETS - 1, pa.int64()))


def _partition(src: str, folder: Path, tag: str) -> list[str]:
    """Cut src into BUCKETS IPC files by the key's bucket, one row group at a time
    (ParquetFile.iter_batches holds far more memory here)."""
    import pyarrow.compute as pc
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(src)
    writers = [ipc.new_file(folder / f"{tag}{k}.arrow", pf.schema_arrow) for k in range(BUCKETS)]
    for i in range(pf.num_row_groups):
        for batch in pf.read_row_group(i).to_batches(max_chunksize=256 * 1024):
            buckets = _buckets_of(batch.column(KEY))
            ordered = batch.take(pc.sort_indices(buckets))
            counts = pc.value_counts(buckets)
            sizes = dict(
                zip(
                    counts.field("values").to_pylist(),
                    counts.field("counts").to_pylist(),
                    strict=True,
                )
            )
            offset = 0
            for k in range(BUCKETS):
                n = sizes.get(k, 0)
                if n:
                    writers[k].write_batch(ordered.slice(offset, n))
                    offset += n
    for w in writers:
        w.close()
    return [c for c in pf.schema_arrow.names if c != KEY]


def _bucket_diff(folder: Path, k: int, cols: list[str]) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.ipc as ipc

    names = [KEY, *cols]
    sides = []
    for tag in ("a", "b"):
        table = ipc.open_file(pa.OSFile(str(folder / f"{tag}{k}.arrow"))).read_all()
        sides.append(table.select(names).rename_columns([f"{tag}_{c}" for c in names]))
    joined = sides[0].join(
        sides[1],
        keys=f"a_{KEY}",
        right_keys=f"b_{KEY}",
        join_type="full outer",
        coalesce_keys=False,
    )
    differs = [pc.is_null(joined[f"a_{KEY}"]), pc.is_null(joined[f"b_{KEY}"])]
    differs += [_differs(joined[f"a_{c}"], joined[f"b_{c}"]) for c in cols]
    return joined.filter(_any(differs))


def pyarrow_diff(args: Args) -> Result:
    import pyarrow as pa

    with tempfile.TemporaryDirectory(dir=args["spill"]) as tmp:
        folder = Path(tmp)
        cols = _partition(args["a"], folder, "a")
        _partition(args["b"], folder, "b")
        parts = [_bucket_diff(folder, k, cols) for k in range(BUCKETS)]
    return _summary(pa.concat_tables(parts), cols)


TASKS: dict[tuple[str, str], Callable[[Args], Result]] = {
    ("pyarrow", "head"): pyarrow_head,
    ("pyarrow", "tail"): pyarrow_tail,
    ("pyarrow", "filter"): pyarrow_filter,
    ("pyarrow", "diff-buckets"): pyarrow_diff,
    ("duckdb", "head"): duckdb_head,
    ("duckdb", "tail"): duckdb_tail,
    ("duckdb", "filter"): duckdb_filter,
    ("duckdb", "diff-join"): lambda a: duckdb_diff(a, hashed=False),
    ("duckdb", "diff-hash"): lambda a: duckdb_diff(a, hashed=True),
    ("polars", "head"): polars_head,
    ("polars", "tail"): polars_tail,
    ("polars", "filter"): polars_filter,
    ("polars", "diff-join"): lambda a: polars_diff(a, hashed=False),
    ("polars", "diff-hash"): lambda a: polars_diff(a, hashed=True),
}


def installed() -> Result:
    """Versions and installed bytes (files in each distribution's RECORD) of the peers."""
    from importlib import metadata

    out: Result = {"python": sys.version.split()[0]}
    for dist in metadata.distributions():
        name = dist.metadata["Name"].lower()
        if name in PACKAGES or name.startswith("polars"):
            size = sum(f.locate().stat().st_size for f in dist.files or [] if f.locate().exists())
            out[name] = {"version": dist.version, "bytes": size}
    return out


def worker(engine: str, task: str, args: Args) -> None:
    if task == "installed":
        print(json.dumps({"result": installed()}))
        return
    t0 = time.perf_counter()
    importlib.import_module(IMPORTS[engine])
    t1 = time.perf_counter()
    result = TASKS[(engine, task)](args) if task != "import" else {}
    t2 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "task_s": t2 - t1, "result": result}))


# ---------------------------------------------------------------------------- runner


@dataclass(frozen=True)
class Case:
    engine: str
    task: str  # import | head | tail | filter | diff-join | diff-hash | diff-buckets
    pair: str = ""  # diffs: "v3" or "v2" (against v1)

    @property
    def label(self) -> str:
        if self.task.startswith("diff-"):
            return f"diff v1→{self.pair} ({self.task.removeprefix('diff-')})"
        return {"head": f"head {N_ROWS}", "tail": f"tail {N_ROWS}"}.get(self.task, self.task)


@dataclass
class Row:
    case: Case
    wall: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    error: str = ""
    correct: bool | None = None
    note: str = ""


def cases() -> list[Case]:
    out = [Case(e, t) for t in ("import", "head", "tail", "filter") for e in IMPORTS]
    diffs = [("duckdb", "diff-join"), ("duckdb", "diff-hash"), ("polars", "diff-join")]
    diffs += [("polars", "diff-hash"), ("pyarrow", "diff-buckets")]
    return out + [Case(e, t, pair) for pair in ("v3", "v2") for e, t in diffs]


def peers_python() -> Path:
    return VENV / "bin" / "python"


def ensure_peers() -> None:
    """Create the peers venv with PACKAGES on first use (output to the install log)."""
    if peers_python().exists():
        return
    log(f"installing {', '.join(PACKAGES)} into {VENV.relative_to(ROOT)}")
    PEERS.mkdir(parents=True, exist_ok=True)
    with open(INSTALL_LOG, "a") as out:
        subprocess.run(
            [sys.executable, "-m", "venv", str(VENV)],
            stdout=out,
            stderr=out,
            check=True,
        )
        pip = [str(peers_python()), "-m", "pip", "install", "-q", *PACKAGES]
        subprocess.run(pip, stdout=out, stderr=out, check=True)


def wait_for_load(max_load: float) -> float:
    """Wait (up to LOAD_GIVE_UP s) until the 1-minute load is below max_load; return it."""
    waited = 0
    while os.getloadavg()[0] >= max_load and waited < LOAD_GIVE_UP:
        log(f"load {os.getloadavg()[0]:.2f} >= {max_load}: waiting {LOAD_POLL} s")
        time.sleep(LOAD_POLL)
        waited += LOAD_POLL
    return os.getloadavg()[0]


def run_worker(engine: str, task: str, args: Args, log_name: str) -> tuple[float, int, Result]:
    """One fresh peers process under bench/_wrap.py (so the runner's own RSS stays out of
    the child's ru_maxrss): (its wall time, its peak RSS in KiB, its JSON line)."""
    cmd = [str(peers_python()), "-m", "bench.df_engines", "--worker", engine, task]
    res = run_cmd(
        [*cmd, json.dumps(args)],
        ROOT,
        os.environ,
        LOGS / "df-engines" / log_name,
        TIMEOUT,
    )
    if res.returncode != 0:
        raise StepFailed(res.first_error_line())
    return (
        res.seconds,
        res.maxrss_kib,
        json.loads(res.stdout_path.read_text().splitlines()[-1]),
    )


def case_args(case: Case, data: Any) -> Args:
    if case.pair:
        spill = SPILL / "spill"
        shutil.rmtree(spill, ignore_errors=True)
        spill.mkdir(parents=True)
        other = data.v3 if case.pair == "v3" else data.v2
        return {"a": str(data.v1), "b": str(other), "spill": str(spill)}
    return {"path": str(data.v1)}


def warm(args: Args) -> None:
    """Read the task's input files once (untimed), so every run finds them in the page
    cache: other work on the machine may have evicted them while the runner waited."""
    for key in ("path", "a", "b"):
        if key in args:
            with open(args[key], "rb") as f:
                while f.read(8 << 20):
                    pass


def measure(row: Row, data: Any, runs: int, max_load: float) -> None:
    for _ in range(runs):
        row.loads.append(wait_for_load(max_load))
        args = case_args(row.case, data)
        warm(args)
        c = row.case
        name = f"{c.engine}-{c.task}{'-' + c.pair if c.pair else ''}"
        try:
            wall, rss_kib, out = run_worker(c.engine, c.task, args, name)
        except StepFailed as exc:
            row.error = str(exc)
            return
        row.wall.append(wall)
        row.seconds.append(out["import_s"] if c.task == "import" else out["task_s"])
        row.rss_kib.append(rss_kib)
        row.results.append(out["result"])
    shutil.rmtree(SPILL / "spill", ignore_errors=True)


# -- checks against the generator's numbers


def expected_diff(pair: str, data: Any) -> Result:
    lo = data.rows // 2 - data.changed_rows // 2
    if pair == "v3":
        counts = {"added": 0, "removed": 0, "modified": data.changed_rows}
        first = {"added": [], "removed": [], "modified": list(range(lo, lo + N_FIRST))}
        return {
            "counts": counts,
            "first": first,
            "changed": {"user_id", "value", "label", "category"},
        }
    counts = {"added": data.appended_rows, "removed": 0, "modified": 0}
    first = {
        "added": list(range(data.rows, data.rows + N_FIRST)),
        "removed": [],
        "modified": [],
    }
    return {"counts": counts, "first": first, "changed": set()}


def check_diff(row: Row, data: Any) -> None:
    want = expected_diff(row.case.pair, data)
    ok = True
    for r in row.results:
        changed = {c for c, n in r["columns"].items() if n}
        ok &= r["counts"] == want["counts"] and r["first"] == want["first"]
        ok &= changed == want["changed"]
    r = row.results[-1]
    c = r["counts"]
    cols = ", ".join(f"{k} {n:,}" for k, n in r["columns"].items() if n) or "none"
    row.correct = ok
    row.note = f"+{c['added']:,} −{c['removed']:,} ~{c['modified']:,}; changed: {cols}"


def check(rows: list[Row], data: Any) -> None:
    """Mark each row correct or not; filters must agree with pyarrow's count."""
    reference = next(
        (r.results[0]["count"] for r in rows if r.case.task == "filter" and r.results),
        None,
    )
    for row in rows:
        if row.error or not row.results:
            continue
        task = row.case.task
        if task == "import":
            row.correct = True
        elif task in ("head", "tail"):
            want = (
                list(range(N_ROWS))
                if task == "head"
                else list(range(data.rows - N_ROWS, data.rows))
            )
            row.correct = all(r["ids"] == want for r in row.results)
            row.note = f"ids {row.results[-1]['ids'][0]}…{row.results[-1]['ids'][-1]}"
        elif task == "filter":
            row.correct = all(r["count"] == reference for r in row.results)
            row.note = f"count {row.results[-1]['count']:,}"
        else:
            check_diff(row, data)
    check_columns_agree(rows)


def check_columns_agree(rows: list[Row]) -> None:
    """The rows changed per column are not known to the generator: engines must agree."""
    for pair in ("v3", "v2"):
        seen = [r for r in rows if r.case.pair == pair and r.results]
        answers = {json.dumps(r.results[-1]["columns"], sort_keys=True) for r in seen}
        if len(answers) > 1:
            for r in seen:
                r.correct = False
                r.note += " (engines disagree on columns)"


# -- report


def fmt_row(row: Row) -> str:
    c = row.case
    if row.error:
        return f"| {c.engine} | {c.label} | failed | | | no | {row.error} |"
    rss = fmt_bytes(max(row.rss_kib) * 1024)
    ok = {True: "yes", False: "**no**", None: ""}[row.correct]
    return (
        f"| {c.engine} | {c.label} | {fmt_seconds(statistics.median(row.seconds))} "
        f"| {fmt_seconds(statistics.median(row.wall))} | {rss} | {ok} | {row.note} |"
    )


def describe(peers: Result, data: Any, quick: bool, runs: int, rows: list[Row]) -> list[str]:
    mode = "quick" if quick else "full"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    versions = ", ".join(
        f"{name} {v['version']} ({fmt_bytes(v['bytes'])} installed)"
        for name, v in sorted(peers.items())
        if name != "python"
    )
    sizes = ", ".join(f"{k} {fmt_bytes(n)}" for k, n in data.sizes().items())
    loads = [x for r in rows for x in r.loads]
    return [
        f"# Data-frame engines on W2 ({mode}, {stamp} UTC, median of {runs})",
        "",
        f"Python {peers['python']}; {versions}.",
        f"W2: {data.rows:,} rows ({sizes}); v2 = +{data.appended_rows:,} rows, "
        f"v3 = {data.changed_rows:,} rows changed. Load at the start of each measurement: "
        f"{min(loads):.2f}–{max(loads):.2f}.",
        "",
    ]


def render(
    peers: Result, floor: int | None, data: Any, quick: bool, runs: int, rows: list[Row]
) -> str:
    lines = describe(peers, data, quick, runs, rows)
    lines += [
        "| engine | task | time | process wall | peak RSS | correct? | answer |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    lines += [fmt_row(r) for r in rows]
    lines += [
        "",
        "time: the import alone (import rows) or the task alone, in a fresh process; process "
        "wall: the whole process (interpreter start, import, task); peak RSS: the process's "
        "ru_maxrss from wait4 (the largest over the runs; the floor, `true`, is "
        f"{fmt_bytes((floor or 0) * 1024)}). Input files are read once before every run "
        "(page cache warm). duckdb diffs run with memory_limit "
        f"{DUCKDB_MEMORY} and a temp directory; filter: count of rows where {FILTER_SQL} "
        "(correct = pyarrow's count); diff answers: +added −removed ~modified, then the "
        f"modified rows per changed column; correct = the generator's counts, first {N_FIRST} "
        "ids of each kind and set of changed columns.",
    ]
    return "\n".join(lines) + "\n"


def run(quick: bool, runs: int, max_load: float) -> str:
    from bench import datagen

    ensure_peers()
    size = (32 if quick else 1024) * datagen.MIB
    log(f"generating W2 ({size // datagen.MIB} MiB) if not cached")
    data = datagen.w2_parquet(size, 0, False)
    _, _, peers = run_worker("", "installed", {}, "installed")
    floor = rss_floor_kib(LOGS / "df-engines")
    rows = [Row(c) for c in cases()]
    for row in rows:
        log(f"{row.case.engine}: {row.case.label}")
        measure(row, data, runs, max_load)
    check(rows, data)
    return render(peers["result"], floor, data, quick, runs, rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.df_engines", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="32 MiB W2, one run")
    parser.add_argument("--runs", type=int, help="runs per measurement (default 3, quick 1)")
    parser.add_argument("--max-load", type=float, default=MAX_LOAD, help="wait below this load")
    parser.add_argument("--worker", nargs=3, metavar=("ENGINE", "TASK", "ARGS"), help="internal")
    opts = parser.parse_args(argv)
    if opts.worker:
        engine, task, args = opts.worker
        worker(engine, task, json.loads(args))
        return
    runs = opts.runs or (1 if opts.quick else 3)
    text = run(opts.quick, runs, opts.max_load)
    print(text, end="")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M")
    out = RESULTS / f"df-engines-{'quick-' if opts.quick else ''}{stamp}.md"
    out.write_text(text)
    log(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
