"""W4: push and clone through a server, ours side by side with dvc on the same moto S3.

Per run, fresh: a moto S3 server with bucket `bench-w4`, oxen-server on local disk and
oxen-server on that bucket (`--storage s3://bench-w4/oxen`), and a counting proxy
(bench/netproxy.py) in front of each thing a tool talks to:

    oxen client --proxy--> oxen-server (disk)
    oxen client --proxy--> oxen-server (s3) --proxy--> moto
    dvc         --proxy--> moto

so "bytes on the wire" is measured the same way for every tool. Everything is stopped
and deleted at the end of the run, on failure too. The data are W1's files and W2's
parquet versions (the same cached data sets as W1 and W2). See docs/benchmarks.md.

The pieces: bench/services.py (moto, oxen-server, the proxies: `Services`),
bench/w4_steps.py (running and recording one step), bench/w4_ours.py and
bench/w4_dvc.py (each tool's steps), bench/w4_concurrent.py (--w4-concurrent),
bench/w4_tables.py (columns, rows, notes).
"""

from __future__ import annotations

import signal
import statistics
from collections.abc import Sequence
from types import FrameType

from bench import datagen
from bench.measure import log
from bench.paths import RUNS
from bench.report import Table, fmt_bytes
from bench.services import OURS_S3, ServiceError, Services
from bench.settings import Settings
from bench.tools import DVC, Ours, Tool
from bench.w4_concurrent import _run_concurrent
from bench.w4_dvc import _dvc_w1, _dvc_w2
from bench.w4_ours import _ours_w1, _ours_w2
from bench.w4_tables import (
    COMMON_NOTES,
    GROWN,
    MBPS,
    PER_NEW,
    S3_DOWN,
    S3_UP,
    SAID,
    SERVER_RSS,
    STORED,
    WIRE_DOWN,
    WIRE_UP,
    _finish_notes,
    _labels,
    _skip_rows,
    _v2_target_notes,
)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # run the cleanups (finally / ExitStack) on SIGTERM


def run(
    active: Sequence[Tool],
    settings: Settings,
    requested: Sequence[str],
    skipped: dict[str, str],
    w1_files: int,
    w2_bytes: int,
    w2_cdc: bool,
    concurrent_bytes: int | None,
    full_size: bool,
) -> list[Table]:
    """W4's tables: push/clone of W1, of W2 (v1, v2), and optionally the concurrent push."""
    ours = next((t for t in active if isinstance(t, Ours)), None)
    dvc = next((t for t in active if isinstance(t, DVC)), None)
    labels = _labels(requested)
    fs = datagen.w1_files(w1_files, settings.seed)
    versions = datagen.w2_parquet(w2_bytes, settings.seed, w2_cdc)
    sizes = versions.sizes()

    s1 = {"push": f"push ({fs.n_files:,} files)", "clone": "clone"}
    t1 = Table(
        "W4 · W1",
        f"push / clone of {fs.n_files:,} files of 2–20 KiB in two folders ({fmt_bytes(fs.total_bytes)})",
        list(s1.values()),
        labels,
        [MBPS, WIRE_UP, WIRE_DOWN, S3_UP, S3_DOWN, SAID, STORED, SERVER_RSS],
        ["MB/s = W1's bytes (10^6) / wall time.", *COMMON_NOTES],
        baseline=OURS_S3,
    )
    s2 = {
        "v1 push": "v1 push",
        "v1 clone": "v1 clone",
        "v2 push": f"v2 push (+{versions.appended_rows:,} rows)",
        "v2 pull": "v2 pull (into the v1 clone)",
    }
    writer = "use_content_defined_chunking=True" if w2_cdc else "pyarrow defaults"
    t2 = Table(
        "W4 · W2",
        f"push / clone of a parquet file of {fmt_bytes(sizes['v1'])} ({writer}), then v2 "
        f"= +1% rows ({fmt_bytes(sizes['v2'])}) pushed again and pulled",
        list(s2.values()),
        labels,
        [MBPS, WIRE_UP, WIRE_DOWN, S3_UP, S3_DOWN, SAID, STORED, GROWN, PER_NEW, SERVER_RSS],
        [
            "v1 push / v1 clone: `data.parquet` v1 (MB/s = its size / wall time). v2 push: the "
            "second push, after v2 (v1 + 1% rows appended) is committed; stored + = what the "
            "target grew by. v2 pull: ours `oxen pull` in the v1 clone; dvc: the new "
            "`data.parquet.dvc` copied in (what `git pull` would do), then `dvc pull`.",
            "wire ↑ / new chunks = the push's wire ↑ / the bytes of v2's new chunks, as ours' "
            "`oxen add` of v2 reported them (`stored X new`, median "
            "{new}): the data that really changed, at 64 KiB chunk granularity. The issue's "
            "target for ours: ≤ 2x, and at full size (1 GiB) ≤ 12 MB and ≤ 1.5 s.",
            *COMMON_NOTES,
        ],
        baseline=OURS_S3,
    )
    tables = [t1, t2]
    for table in tables:
        _skip_rows(table, requested, active, skipped)

    new_chunks: list[int] = []
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        if ours is not None or dvc is not None:
            for r in range(settings.runs):
                log(f"[W4] run {r + 1}/{settings.runs}")
                try:
                    with Services(RUNS / "w4" / f"run{r}", ours, dvc, f"r{r}") as svc:
                        if ours is not None:
                            log("[W4] W1: ours (disk, s3)")
                            _ours_w1(svc, t1, s1, fs, settings.timeout)
                        if dvc is not None:
                            log("[W4] W1: dvc")
                            _dvc_w1(svc, t1, s1, fs, settings.timeout)
                        new_bytes = None
                        if ours is not None:
                            log("[W4] W2: ours (disk, s3)")
                            new_bytes = _ours_w2(svc, t2, s2, versions, settings.timeout)
                            if new_bytes:
                                new_chunks.append(new_bytes)
                        if dvc is not None:
                            log("[W4] W2: dvc")
                            _dvc_w2(svc, t2, s2, versions, new_bytes, settings.timeout)
                except ServiceError as exc:
                    log(f"[W4] services failed: {exc}")
                    for table in tables:
                        for label in table.tools:
                            if not table.failed(label):
                                table.fail(label, table.steps[0], f"failed: {exc}")
                    break
        for table in tables:
            _finish_notes(table)
        _v2_target_notes(t2, s2["v2 push"], full_size)
        new = fmt_bytes(statistics.median(new_chunks)) if new_chunks else "n/a"
        t2.notes[1] = t2.notes[1].replace("{new}", new)
        if concurrent_bytes:
            tables.append(
                _run_concurrent(
                    ours, settings, labels, requested, active, skipped, concurrent_bytes
                )
            )
    finally:
        signal.signal(signal.SIGTERM, previous)
    return tables
