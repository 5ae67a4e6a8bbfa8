"""The workloads: what each tool is asked to do, run by run, and what is recorded."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import datagen
from bench.measure import Sample, StepFailed, dir_size, log, run_cmd
from bench.paths import LOGS, RUNS
from bench.report import Extra, Table, fmt_bytes, fmt_seconds
from bench.settings import Settings
from bench.tools import Argv, Tool
from bench.trash import discard

# A first add+commit that grows the store by less than this share of the data is
# reported as a failure: the tool exited 0 but cannot have stored the data.
MIN_STORED_SHARE = 0.25

GROWTH = Extra("growth", "store growth", fmt_bytes)
MBPS = Extra("mbps", "MB/s", lambda v: f"{v:.0f}")
GROWTH_PCT = Extra("growth_pct", "growth / file", lambda v: f"{v:.1f}%")


class Driver:
    """Runs one tool's commands for one workload and remembers the step in progress."""

    def __init__(self, tool: Tool, workload: str, settings: Settings) -> None:
        self.tool = tool
        self.workload = workload
        self.settings = settings
        self.env = tool.env()
        self.step = ""
        self.last_stdout = b""  # stdout of the last command run

    def run(self, step: str, cmds: Sequence[Argv], repo: Path, what: str = "") -> Sample:
        self.step = step
        _sync()  # untimed: no step pays for the writeback of what ran before it
        sample = Sample()
        slug = re.sub(r"[^a-z0-9]+", "-", (what or step).lower()).strip("-")
        for i, argv in enumerate(cmds):
            stem = LOGS / self.workload / self.tool.name / f"{slug}-{i}"
            res = run_cmd(argv, repo, self.env, stem, self.settings.timeout)
            if res.returncode != 0:
                raise StepFailed(f"{what or _cmd_name(argv)}: {res.first_error_line()}")
            sample.add(res)
            self.last_stdout = res.stdout_path.read_bytes()
        return sample

    def init(self, step: str, repo: Path, lfs_patterns: Sequence[str]) -> None:
        """Untimed `init`; its failure is charged to `step` (the first measured one)."""
        self.run(step, self.tool.init_cmds(lfs_patterns), repo, what="init")
        if not (repo / self.tool.marker).exists():
            raise StepFailed(f"init exited 0 but created no {self.tool.marker}")

    def store_size(self, repo: Path) -> int:
        return dir_size(self.tool.store_dir(repo))


def _cmd_name(argv: Argv) -> str:
    """`oxen add`, `git commit`, `dvc add`, `python` (for oxenai's one-process scripts)."""
    name = Path(argv[0]).name
    if len(argv) > 1 and not argv[1].startswith("-"):
        name += f" {argv[1]}"
    return f"`{name}`"


def _check_stored(tool: Tool, grown: int, data_bytes: int) -> None:
    if grown < MIN_STORED_SHARE * data_bytes:
        raise StepFailed(
            f"exited 0 but {tool.store} grew by only {fmt_bytes(grown)} for {fmt_bytes(data_bytes)} of data"
        )


def _fresh_dir(workload: str, tool: Tool) -> Path:
    repo = RUNS / workload / tool.name
    discard(repo)
    repo.parent.mkdir(parents=True, exist_ok=True)
    return repo


def _run_all(
    table: Table, tools: Sequence[Tool], settings: Settings, body: Callable[[Driver, Path], None]
) -> None:
    """settings.runs rounds; in each, every tool still standing runs the body once in a
    fresh repo (tools interleaved, so slow drift of the machine hits all of them)."""
    for run in range(settings.runs):
        for tool in tools:
            if table.failed(tool.name):
                continue
            drv = Driver(tool, table.key.lower(), settings)
            repo = _fresh_dir(table.key.lower(), tool)
            drv.step = table.steps[0]
            log(f"[{table.key}] {tool.name}: run {run + 1}/{settings.runs}")
            try:
                body(drv, repo)
            except StepFailed as exc:
                log(f"[{table.key}] {tool.name}: {drv.step} failed: {exc}")
                table.fail(tool.name, drv.step, f"failed: {exc}")
            finally:
                discard(repo)


def _sync() -> None:
    """Flush dirty pages (our copies, the previous step's or tool's writes), so that no
    timed step pays for another's writeback: on this machine a peer's 400 MB of objects
    still being written back slowed the next tool's add+commit by a third."""
    os.sync()


# ---------------------------------------------------------------------------- W1


def run_w1(tools: Sequence[Tool], settings: Settings, n_files: int) -> Table:
    fs = datagen.w1_files(n_files, settings.seed)
    changes = datagen.w1_changed_files(fs, settings.seed)
    add, clean, changed = "add+commit", "status (clean)", f"status ({len(changes)} changed)"
    table = Table(
        "W1",
        f"{fs.n_files:,} files of 2–20 KiB in two folders ({fmt_bytes(fs.total_bytes)})",
        [add, clean, changed],
        [t.name for t in tools],
        [GROWTH],
        [
            "add+commit: after an untimed init, in a fresh copy of the files (page cache warm).",
            f"status (clean): {settings.status_repeats} calls per run right after the commit.",
            f"status ({len(changes)} changed): after rewriting {len(changes)} files with new "
            "content of the same size under the same names.",
        ],
    )

    def body(drv: Driver, repo: Path) -> None:
        _add_commit_and_status(drv, repo, fs, table, add, clean, "w1", settings.status_repeats)
        clean_stdout = drv.last_stdout
        for rel, content in changes:
            (repo / rel).write_bytes(content)
        _sync()
        out = table.outcome(changed, drv.tool.name)
        out.samples.append(drv.run(changed, drv.tool.status_cmds(), repo))
        if drv.last_stdout == clean_stdout:
            out.warning = "WARNING: printed the same as when clean (change not seen?)"

    _run_all(table, tools, settings, body)
    return table


def _add_commit_and_status(
    drv: Driver,
    repo: Path,
    fs: datagen.FileSet,
    table: Table,
    add: str,
    clean: str,
    message: str,
    repeats: int,
) -> None:
    """Copy a file set in, init, time add+commit (and the store's growth), then clean statuses."""
    shutil.copytree(fs.path, repo)
    _sync()
    drv.init(add, repo, fs.lfs_patterns)
    before = drv.store_size(repo)
    sample = drv.run(add, drv.tool.add_commit_cmds(fs.toplevel, message), repo)
    grown = drv.store_size(repo) - before
    _check_stored(drv.tool, grown, fs.total_bytes)
    table.outcome(add, drv.tool.name).samples.append(sample)
    table.outcome(add, drv.tool.name).add_extra("growth", grown)
    for _ in range(repeats):
        table.outcome(clean, drv.tool.name).samples.append(
            drv.run(clean, drv.tool.status_cmds(), repo)
        )


# ---------------------------------------------------------------------------- W2


def run_w2(tools: Sequence[Tool], settings: Settings, target_bytes: int, cdc: bool) -> Table:
    try:
        versions = datagen.w2_parquet(target_bytes, settings.seed, cdc)
    except ImportError:
        table = Table("W2", "parquet versions", ["v1 add+commit"], [t.name for t in tools])
        for tool in tools:
            table.skip_tool(tool.name, "skipped: pyarrow is not installed in this venv")
        return table
    sizes = versions.sizes()
    steps = {
        "v1": f"v1 add+commit ({versions.rows:,} rows)",
        "v2": f"v2 add+commit (+{versions.appended_rows:,} rows appended)",
        "v3": f"v3 add+commit ({versions.changed_rows:,} rows changed mid-file)",
    }
    writer = "use_content_defined_chunking=True" if cdc else "pyarrow defaults"
    table = Table(
        "W2",
        f"parquet file of {fmt_bytes(sizes['v1'])} (pyarrow {versions.pyarrow_version}, {writer})",
        list(steps.values()),
        [t.name for t in tools],
        [MBPS, GROWTH, GROWTH_PCT],
        [
            "One file `data.parquet`: v1 is added and committed, then replaced by v2 (v1's rows "
            "+ 1% appended), committed, then by v3 (v1 with 1% of the rows in the middle given "
            "new values), committed. Columns: int64 id, int64 user_id, float64 value, "
            "16-char random string, 16-value category.",
            "MB/s = file size (10^6 bytes) / wall time. store growth = growth of the tool's store "
            "(ours, oxenai: .oxen; git-lfs: .git; dvc: .dvc/cache) during that add+commit; "
            "growth / file = that as a share of the file committed.",
            "File sizes: " + ", ".join(f"{k} {fmt_bytes(v)}" for k, v in sizes.items()) + ".",
        ],
    )

    def body(drv: Driver, repo: Path) -> None:
        repo.mkdir()
        target = repo / "data.parquet"
        shutil.copyfile(versions.v1, target)
        _sync()
        drv.init(steps["v1"], repo, ["*.parquet"])
        for name, step in steps.items():
            if name != "v1":
                shutil.copyfile(getattr(versions, name), target)
                _sync()
            before = drv.store_size(repo)
            sample = drv.run(step, drv.tool.add_commit_cmds(["data.parquet"], f"w2 {name}"), repo)
            grown = drv.store_size(repo) - before
            if name == "v1":
                _check_stored(drv.tool, grown, sizes["v1"])
            out = table.outcome(step, drv.tool.name)
            out.samples.append(sample)
            out.add_extra("mbps", sizes[name] / sample.seconds / 1e6)
            out.add_extra("growth", grown)
            out.add_extra("growth_pct", 100 * grown / sizes[name])

    _run_all(table, tools, settings, body)
    return table


# ---------------------------------------------------------------------------- W3


def run_w3(tools: Sequence[Tool], settings: Settings, n_files: int) -> Table:
    fs = datagen.w3_files(n_files, settings.seed)
    add, clean = "add+commit", "status (clean)"
    table = Table(
        "W3",
        f"{fs.n_files:,} small files of 0.5–4 KiB ({fmt_bytes(fs.total_bytes)}, folders of ≤10,000)",
        [add, clean],
        [t.name for t in tools],
        [GROWTH],
        [f"status (clean): {settings.status_repeats} calls per run after add+commit."],
    )

    def body(drv: Driver, repo: Path) -> None:
        _add_commit_and_status(drv, repo, fs, table, add, clean, "w3", settings.status_repeats)

    _run_all(table, tools, settings, body)
    return table


# ---------------------------------------------------------------------------- W4


def run_w4(
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
    """Server push / clone: ours (oxen-server on disk and on moto S3) against dvc on the
    same moto (bench/w4.py; docs/benchmarks.md says what is measured)."""
    from bench import w4  # the S3/server machinery is only loaded when W4 runs

    try:
        import boto3  # noqa: F401  (moto's bucket and sizes; in the project venv)
    except ImportError:
        table = Table("W4", "server push / clone", ["push"], list(requested))
        for name in requested:
            table.skip_tool(name, "skipped: boto3 not importable (run with .venv/bin/python)")
        return [table]
    return w4.run(
        active, settings, requested, skipped, w1_files, w2_bytes, w2_cdc, concurrent_bytes,
        full_size,
    )  # fmt: skip


def measure_startup(tool: Tool, argv: Argv, settings: Settings, repeats: int = 3) -> float | None:
    """Median wall time of a do-nothing process of a tool (e.g. `import oxen`)."""
    times: list[float] = []
    for i in range(repeats):
        try:
            res = run_cmd(
                argv, LOGS, tool.env(), LOGS / "startup" / f"{tool.name}-{i}", settings.timeout
            )
        except StepFailed:
            return None
        if res.returncode != 0:
            return None
        times.append(res.seconds)
    times.sort()
    return times[len(times) // 2]


def startup_note(tool: Tool, seconds: float) -> str:
    return (
        f"{tool.name} is driven through its Python bindings: every process pays "
        f"{fmt_seconds(seconds)} for `import oxen` alone (measured, median of 3)."
    )
