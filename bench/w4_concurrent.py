"""W4's optional concurrent step (bench/w4.py, --w4-concurrent): 8 clients push to one
fresh oxen-server at once; the server's peak RSS is what it is for."""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import datagen
from bench.measure import CmdResult, Sample, StepFailed, log, run_cmd
from bench.paths import LOGS, RUNS
from bench.report import Table, fmt_bytes, fmt_seconds
from bench.services import DVC_S3, OURS_DISK, OURS_S3, ServiceError, Services, Target
from bench.settings import Settings
from bench.tools import Ours, Tool
from bench.trash import empty_trash
from bench.w4_ours import _ours_remote_setup
from bench.w4_steps import MIN_STORED_SHARE, _attempt, _cmd_name, _slug, _untimed
from bench.w4_tables import MBPS, S3_UP, SERVER_IDLE, SERVER_RSS, STORED, WIRE_UP, _skip_rows

CLIENTS = 8
DISK_FACTOR = 4.5  # free disk the concurrent step needs, as a multiple of all clients' data


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _run_concurrent(
    ours: Ours | None,
    settings: Settings,
    labels: list[str],
    requested: Sequence[str],
    active: Sequence[Tool],
    skipped: dict[str, str],
    bytes_each: int,
) -> Table:
    step = f"{CLIENTS} pushes of {fmt_bytes(bytes_each)} at once"
    table = Table(
        "W4 · concurrent",
        f"{CLIENTS} clients push {fmt_bytes(bytes_each)} each (distinct random data) to one server at once",
        [step],
        labels,
        [MBPS, WIRE_UP, S3_UP, STORED, SERVER_IDLE, SERVER_RSS],
        [
            f"Each client is its own repository holding one file of {fmt_bytes(bytes_each)} of "
            "seeded random bytes, committed beforehand (untimed); then all "
            f"{CLIENTS} `oxen push` start together against one fresh server. median wall = from the "
            "first start to the last exit; peak RSS = the largest client; MB/s = all the data "
            "(10^6 bytes) / that wall time. server RSS before = its RSS just before the pushes; "
            "server peak RSS = its VmHWM during them. One round (not repeated per --runs).",
            f"{DVC_S3}: not measured (dvc has no server; its clients write to S3 directly).",
        ],
        baseline=OURS_S3,
    )
    _skip_rows(table, requested, active, skipped)
    if DVC_S3 in labels:
        table.skip_tool(DVC_S3, "n/a: no server")
    if ours is None:
        return table
    total = CLIENTS * bytes_each
    empty_trash()  # untimed, and the step creates few files: see bench/trash.py
    need = DISK_FACTOR * total  # the data, each client's .oxen, the disk server, moto's spill
    free = shutil.disk_usage(RUNS.parent if RUNS.parent.exists() else Path.cwd()).free
    if free < need:
        for label in (OURS_DISK, OURS_S3):
            if label in labels:
                table.skip_tool(
                    label,
                    f"skipped: needs about {fmt_bytes(need)} of free disk, {fmt_bytes(free)} free",
                )
        return table
    log(f"[W4] concurrent: generating {CLIENTS} × {fmt_bytes(bytes_each)} (cached) ...")
    sets = datagen.w4_client_files(CLIENTS, bytes_each, settings.seed)
    exe = str(ours.exe)
    root = RUNS / "w4" / "concurrent"
    try:
        with Services(root, ours, None, "concurrent") as svc:
            repos = [root / f"client_{i:02d}" for i in range(CLIENTS)]
            try:
                for i, (fs, repo) in enumerate(zip(sets, repos, strict=True)):
                    # hard links, not copies: nothing writes to the data, and at full size
                    # this saves 8 GiB of disk
                    shutil.copytree(fs.path, repo, copy_function=_link_or_copy)
                    _untimed(
                        [[exe, "init"], [exe, "add", "."], [exe, "commit", "-m", f"client {i}"]],
                        repo, ours, f"concurrent commit {i}", settings.timeout,
                    )  # fmt: skip
                os.sync()
            except StepFailed as exc:
                for t in svc.ours_targets:
                    table.fail(t.label, step, f"failed: {exc}")
                return table
            for t in svc.ours_targets:
                _attempt(
                    table,
                    t.label,
                    step,
                    lambda t=t: _push_together(table, step, t, repos, bytes_each, settings.timeout),
                )
    except ServiceError as exc:
        for label in (OURS_DISK, OURS_S3):
            if label in labels and not table.failed(label):
                table.fail(label, step, f"failed: {exc}")
    return table


def _push_together(
    table: Table, step: str, t: Target, repos: list[Path], bytes_each: int, timeout: float
) -> None:
    exe = str(t.tool.exe)  # type: ignore[attr-defined]
    names = [f"c{i}" for i in range(len(repos))]
    for repo, name in zip(repos, names, strict=True):
        _ours_remote_setup(t, repo, name, timeout)
    assert t.server is not None
    up0, _ = t.wire.settle()
    s3_0 = t.s3wire.settle() if t.s3wire is not None else None
    idle = t.server.rss_kib()
    t.server.reset_peak_rss()

    def one(i: int) -> CmdResult:
        argv = [exe, "push", t.remote]
        return run_cmd(
            argv, repos[i], t.env, LOGS / "w4" / _slug(t.label) / f"concurrent-{i}", timeout
        )

    start = time.perf_counter()
    with ThreadPoolExecutor(len(repos)) as pool:
        results = list(pool.map(one, range(len(repos))))
    wall = time.perf_counter() - start
    peak = t.server.rss_kib()
    up1, _ = t.wire.settle()
    for i, res in enumerate(results):
        if res.returncode != 0:
            raise StepFailed(f"client {i}: {_cmd_name(list(res.argv))}: {res.first_error_line()}")
    total = bytes_each * len(repos)
    o = table.outcome(step, t.label)
    o.samples.append(Sample(wall, max(r.maxrss_kib for r in results)))
    o.add_extra("mbps", total / wall / 1e6)
    o.add_extra("wire_up", up1 - up0)
    if t.s3wire is not None and s3_0 is not None:
        o.add_extra("s3_up", t.s3wire.settle()[0] - s3_0[0])
    if idle is not None:
        o.add_extra("server_idle", idle[0])
    if peak is not None:
        o.add_extra("server_rss", peak[1])
    stored = sum(t.stored(name) for name in names)
    o.add_extra("stored", stored)
    secs = sorted(r.seconds for r in results)
    o.note = (
        f"per client: median {fmt_seconds(statistics.median(secs))}, "
        f"min {fmt_seconds(secs[0])}, max {fmt_seconds(secs[-1])}"
    )
    if stored < MIN_STORED_SHARE * total:
        raise StepFailed(
            f"exited 0 but the server holds only {fmt_bytes(stored)} for {fmt_bytes(total)}"
        )
